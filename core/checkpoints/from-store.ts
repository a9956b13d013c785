import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import type { ArtifactStore } from '../store/artifact-store';

/**
 * Copies a model kept in the artifact store (an HF folder under a prefix, or one `.gguf` object) into a local
 * cache, once, and returns the local path to load. A copy is complete only when its marker is written, so an
 * interrupted download is redone rather than loaded.
 */
export async function fetchModelFromStore(store: ArtifactStore, key: string, cacheDir: string): Promise<string> {
  const dir = path.join(
    cacheDir,
    'models',
    createHash('sha256').update(`${store.url}${key}`).digest('hex').slice(0, 16),
  );
  const single = key.endsWith('.gguf');
  const target = single ? path.join(dir, path.basename(key)) : dir;
  if (existsSync(path.join(dir, '.complete'))) return target;
  const objects: { key: string; size: number }[] = [];
  if (single) {
    const stat = await store.stat(key);
    if (stat) objects.push({ key, size: stat.size });
  } else {
    for await (const object of store.list(key ? `${key.replace(/\/+$/, '')}/` : '')) objects.push(object);
  }
  if (objects.length === 0) throw new Error(`no model at ${store.url}${key}: expected a .gguf object or an HF folder`);
  await fs.rm(dir, { recursive: true, force: true });
  for (const object of objects) {
    const local = single ? target : path.join(dir, object.key.slice(key.replace(/\/+$/, '').length + (key ? 1 : 0)));
    await fs.mkdir(path.dirname(local), { recursive: true });
    await pipeline(await store.openRead(object.key), createWriteStream(local));
  }
  await fs.writeFile(path.join(dir, '.complete'), `${store.url}${key}\n`);
  return target;
}
