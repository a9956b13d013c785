import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mapOrdered } from '../../../../core/map-ordered';
import type { ObjectInfo } from '../../../../core/store/artifact-store';
import { FileStore } from '../../../../core/store/file-store';
import { StreamedArray, writeJson } from '../../../../core/store/json-stream';
import { writeManifest, writeManifestStreamed } from '../../../../core/store/manifest';

async function* yieldAll<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield await Promise.resolve(item);
}

async function written(value: unknown): Promise<string> {
  let text = '';
  await writeJson(value, (piece) => {
    text += piece;
    return Promise.resolve();
  });
  return text;
}

describe('streamed JSON and manifests', () => {
  const sample = {
    a: 1,
    empty: {},
    none: [],
    skipped: undefined,
    text: 'line one\nline "two"',
    nested: { list: [1, { x: null, y: [true, 'z'] }], deep: { deeper: { n: -0.5 } } },
  };

  it('writes exactly what JSON.stringify(value, null, 2) writes, streamed arrays expanded in place', async () => {
    expect(await written(sample)).toBe(JSON.stringify(sample, null, 2));
    expect(await written([sample, 'x'])).toBe(JSON.stringify([sample, 'x'], null, 2));
    const items = [sample, { b: [] }, 3];
    const streamed = {
      head: 'h',
      body: { items: new StreamedArray(() => yieldAll(items)), none: new StreamedArray(() => yieldAll([])) },
    };
    expect(await written(streamed)).toBe(JSON.stringify({ head: 'h', body: { items, none: [] } }, null, 2));
  });

  it('streams a manifest byte-identical to writeManifest, and refuses objects out of key order', async () => {
    const store = new FileStore(await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-manifest-')));
    const objects: ObjectInfo[] = ['a/1', 'a/2', 'b/1'].map((key, i) => ({ key, size: i, sha256: `${i}`.repeat(64) }));
    const files = [
      { file: 'f0', shards: [objects[0], objects[1]] },
      { file: 'f1', shards: [objects[2]] },
    ];
    await writeManifest(store, 'plain.json', 'k', [...objects].reverse(), { version: 'v', files });
    let before = '';
    await writeManifestStreamed(
      store,
      'streamed.json',
      'k',
      () => yieldAll(objects),
      { version: 'v', files: new StreamedArray(() => yieldAll(files)) },
      {
        beforeUpload: async () => {
          before = (await store.stat('streamed.json')) === undefined ? 'absent' : 'present';
        },
      },
    );
    expect((await store.getBytes('streamed.json')).equals(await store.getBytes('plain.json'))).toBe(true);
    expect(before).toBe('absent');
    await expect(
      writeManifestStreamed(store, 'bad.json', 'k', () => yieldAll([...objects].reverse()), {}),
    ).rejects.toThrow(/out of order: a\/2 after b\/1/);
    expect(await store.stat('bad.json')).toBeUndefined();
  });

  it('maps in order with at most `concurrency` calls in flight', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const results: number[] = [];
    const mapped = mapOrdered([5, 1, 4, 2, 3, 0, 6], 3, async (n) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, n * 5));
      inFlight -= 1;
      return n * 10;
    });
    for await (const result of mapped) results.push(result);
    expect(results).toEqual([50, 10, 40, 20, 30, 0, 60]);
    expect(maxInFlight).toBe(3);
  });
});
