import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ArtifactStore, type ObjectInfo, StoreError } from './artifact-store';
import { StreamedArray, writeJson } from './json-stream';

/**
 * An artifact is a set of data objects plus one manifest object written after all of them.
 * Readers trust only what a manifest lists, and check each object's size and SHA-256 as they read it:
 * a crash mid-write leaves objects no manifest lists, which no reader sees.
 */
export interface Manifest<Body> {
  format: 'tttnn.manifest/1';
  kind: string;
  objects: ObjectInfo[];
  body: Body;
}

export const MANIFEST_FILE = 'manifest.json';

export async function writeManifest<Body>(
  store: ArtifactStore,
  key: string,
  kind: string,
  objects: ObjectInfo[],
  body: Body,
): Promise<ObjectInfo> {
  const sorted = [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const manifest: Manifest<Body> = { format: 'tttnn.manifest/1', kind, objects: sorted, body };
  return store.putBytes(key, `${JSON.stringify(manifest, null, 2)}\n`);
}

/**
 * `writeManifest` for an artifact too large to hold in memory: `objects` (produced in ascending key order, which is
 * checked) and every `StreamedArray` in `body` are written as they come, to a local file that is then uploaded.
 * The bytes are those `writeManifest` would write for the same content. `beforeUpload` runs once the file is
 * complete, before the manifest appears in the store (for companions that must not come after it).
 */
export async function writeManifestStreamed(
  store: ArtifactStore,
  key: string,
  kind: string,
  objects: () => AsyncIterable<ObjectInfo>,
  body: unknown,
  options: { beforeUpload?: () => Promise<void> } = {},
): Promise<ObjectInfo> {
  async function* ascending(): AsyncIterable<ObjectInfo> {
    let previous: string | undefined;
    for await (const object of objects()) {
      if (previous !== undefined && !(previous < object.key)) {
        throw new Error(`manifest objects out of order: ${object.key} after ${previous}`);
      }
      previous = object.key;
      yield object;
    }
  }
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-manifest-'));
  const local = path.join(scratch, 'manifest.json');
  try {
    const file = await fs.open(local, 'w');
    try {
      let pending: string[] = [];
      let pendingLength = 0;
      const flush = async () => {
        await file.write(pending.join(''));
        pending = [];
        pendingLength = 0;
      };
      const manifest = { format: 'tttnn.manifest/1', kind, objects: new StreamedArray(ascending), body };
      await writeJson(manifest, async (text) => {
        pending.push(text);
        pendingLength += text.length;
        if (pendingLength >= 1 << 20) await flush();
      });
      pending.push('\n');
      await flush();
    } finally {
      await file.close();
    }
    await options.beforeUpload?.();
    return await store.putFile(key, local);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/** The manifest at `key`, or undefined when the artifact is not (yet) complete. */
export async function readManifest<Body>(
  store: ArtifactStore,
  key: string,
  kind: string,
): Promise<Manifest<Body> | undefined> {
  if (!(await store.stat(key))) return undefined;
  const text = (await store.getBytes(key)).toString('utf8');
  let manifest: Manifest<Body>;
  try {
    manifest = JSON.parse(text) as Manifest<Body>;
  } catch {
    throw new StoreError(`manifest ${store.url}${key} is not valid JSON`);
  }
  if (manifest.format !== 'tttnn.manifest/1' || manifest.kind !== kind) {
    throw new StoreError(`manifest ${store.url}${key} is a ${manifest.format}/${manifest.kind}, expected ${kind}`);
  }
  return manifest;
}

function mismatch(store: ArtifactStore, entry: ObjectInfo, size: number, sha256: string): StoreError {
  return new StoreError(
    `object ${store.url}${entry.key} does not match its manifest ` +
      `(size ${size} vs ${entry.size}, sha256 ${sha256.slice(0, 12)} vs ${entry.sha256.slice(0, 12)}): it is corrupt or was replaced` +
      (/\/builds\/[^/]+\/(index|embeddings)\//.test(`${store.url}${entry.key}`)
        ? "; 'tttnn index build --corpus <corpus> --id <build id> --verify' rebuilds the damaged shards"
        : ''),
  );
}

export async function readVerified(store: ArtifactStore, entry: ObjectInfo): Promise<Buffer> {
  const bytes = await store.getBytes(entry.key);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== entry.size || sha256 !== entry.sha256) throw mismatch(store, entry, bytes.length, sha256);
  return bytes;
}

/** Copies a listed object to a local file, verifying it; the file appears only when verified. */
export async function downloadVerified(store: ArtifactStore, entry: ObjectInfo, localPath: string): Promise<void> {
  await fs.mkdir(path.dirname(localPath), { recursive: true });
  const temp = `${localPath}.partial`;
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(await store.openRead(entry.key), tap, createWriteStream(temp));
  const sha256 = hash.digest('hex');
  if (size !== entry.size || sha256 !== entry.sha256) {
    await fs.rm(temp, { force: true });
    throw mismatch(store, entry, size, sha256);
  }
  await fs.rename(temp, localPath);
}
