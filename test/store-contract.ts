import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ArtifactStore } from '../core/store/artifact-store';
import { downloadVerified, readManifest, readVerified, writeManifest } from '../core/store/manifest';

/** The behaviour every ArtifactStore implementation must have; run against the file store and real S3. */
export function storeContract(makeStore: () => Promise<ArtifactStore>): void {
  let store: ArtifactStore;
  beforeEach(async () => {
    store = await makeStore();
  });

  it('compare-and-swap: of racing writers that read the same version, exactly one wins', async () => {
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    expect(await store.putBytesIfUnchanged('cas/p.json', 'v1', sha('other'))).toBe(false); // absent, not 'other'
    expect(await store.stat('cas/p.json')).toBeUndefined();
    expect(await store.putBytesIfUnchanged('cas/p.json', 'v1', undefined)).toBe(true);
    expect(await store.putBytesIfUnchanged('cas/p.json', 'v1b', undefined)).toBe(false); // exists now
    const wins = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.putBytesIfUnchanged('cas/p.json', `v2-${i}`, sha('v1'))),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
    const winner = wins.indexOf(true);
    expect((await store.getBytes('cas/p.json')).toString()).toBe(`v2-${winner}`);
  });

  it('puts, stats, reads ranges, lists in order and deletes', async () => {
    const info = await store.putBytes('a/b/one.txt', 'hello world');
    expect(info).toEqual({
      key: 'a/b/one.txt',
      size: 11,
      sha256: createHash('sha256').update('hello world').digest('hex'),
    });
    await store.putBytes('a/two.txt', 'x');
    await store.putBytes('b/three.txt', 'y');
    expect((await store.getBytes('a/b/one.txt')).toString()).toBe('hello world');
    expect(await store.stat('a/b/one.txt')).toEqual({ size: 11 });
    expect(await store.stat('a/missing')).toBeUndefined();
    const range = [];
    for await (const chunk of await store.openRead('a/b/one.txt', { start: 6, end: 9 })) range.push(chunk as Buffer);
    expect(Buffer.concat(range).toString()).toBe('worl');
    const keys = [];
    for await (const o of store.list('a/')) keys.push(o.key);
    expect(keys).toEqual(['a/b/one.txt', 'a/two.txt']);
    await store.delete('a/two.txt');
    expect(await store.stat('a/two.txt')).toBeUndefined();
    await expect(store.getBytes('a/two.txt')).rejects.toThrow(/a\/two\.txt/);
  });

  it('refuses keys that could escape the root', async () => {
    for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '']) {
      await expect(store.putBytes(key, 'x')).rejects.toThrow(/invalid artifact key/);
    }
  });

  it('uploads a large file (multipart on S3) with its SHA-256', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-store-'));
    const local = path.join(dir, 'big.bin');
    const bytes = Buffer.alloc(20 * 1024 * 1024 + 123, 7);
    bytes.write('distinct head', 0);
    await fs.writeFile(local, bytes);
    const info = await store.putFile('big/big.bin', local);
    expect(info.size).toBe(bytes.length);
    expect(info.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const copy = path.join(dir, 'copy.bin');
    await downloadVerified(store, info, copy);
    expect((await fs.readFile(copy)).equals(bytes)).toBe(true);
    await fs.rm(dir, { recursive: true });
  });

  it('trusts only what a manifest lists, and detects a replaced object', async () => {
    expect(await readManifest(store, 'art/manifest.json', 'test.kind')).toBeUndefined();
    const a = await store.putBytes('art/data-0', 'first');
    const b = await store.putBytes('art/data-1', 'second');
    await writeManifest(store, 'art/manifest.json', 'test.kind', [b, a], { note: 'x' });
    const manifest = await readManifest<{ note: string }>(store, 'art/manifest.json', 'test.kind');
    expect(manifest?.objects.map((o) => o.key)).toEqual(['art/data-0', 'art/data-1']);
    expect(manifest?.body.note).toBe('x');
    expect((await readVerified(store, manifest!.objects[0]!)).toString()).toBe('first');
    await store.putBytes('art/data-1', 'tampered');
    await expect(readVerified(store, manifest!.objects[1]!)).rejects.toThrow(/does not match its manifest/);
    await expect(readManifest(store, 'art/manifest.json', 'other.kind')).rejects.toThrow(/expected other\.kind/);
  });
}
