import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ArtifactStore, ObjectInfo } from '../store/artifact-store';
import { MANIFEST_FILE, downloadVerified, readManifest, writeManifest } from '../store/manifest';
import { sha256OfFile } from '../store/sha256';

/**
 * Models in the artifact store. A model version is `<name>/<version>/` holding the checkpoint's files (one
 * `.gguf`, or an HF folder) and a manifest written last with each file's size and SHA-256; the version is a
 * digest of those, so pushing the same files again is a no-op. Plain HF folders or `.gguf` objects that were
 * copied in by hand load too, without the checks.
 */
export const MODEL_KIND = 'model';

export interface ModelManifestBody {
  name: string;
  /** The file to load: the `.gguf` inside the version, or '' for an HF folder. */
  entry: string;
}

/** Uploads a local `.gguf` file or HF folder as a model version; returns its key (`<name>/<version>`). */
export async function pushModel(
  store: ArtifactStore,
  name: string,
  localPath: string,
  log: (line: string) => void = () => undefined,
): Promise<{ key: string; uploaded: boolean }> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`model name '${name}' may hold only letters, digits, '.', '_' and '-'`);
  const stat = await fs.stat(localPath).catch(() => undefined);
  if (!stat) throw new Error(`${localPath} does not exist`);
  const isFile = stat.isFile();
  if (isFile && !localPath.endsWith('.gguf')) throw new Error(`${localPath}: expected a .gguf file or an HF folder`);
  if (!isFile && !existsSync(path.join(localPath, 'config.json'))) {
    throw new Error(`${localPath}: an HF folder needs a config.json`);
  }
  const { version, files: hashed } = await modelDigest(localPath);
  const key = `${name}/${version}`;
  if (await readManifest<ModelManifestBody>(store, `${key}/${MANIFEST_FILE}`, MODEL_KIND)) {
    log(`model ${store.url}${key} is already there`);
    return { key, uploaded: false };
  }
  const objects: ObjectInfo[] = [];
  for (const f of hashed) {
    log(`uploading ${f.rel} to ${store.url}${key}/`);
    const info = await store.putFile(`${key}/${f.rel}`, f.abs);
    if (info.sha256 !== f.sha256) throw new Error(`${f.abs} changed while it was uploaded`);
    objects.push({ ...info, key: f.rel }); // relative to the version: it can be read through any store root
  }
  await writeManifest<ModelManifestBody>(store, `${key}/${MANIFEST_FILE}`, MODEL_KIND, objects, {
    name,
    entry: isFile ? (hashed[0]?.rel ?? '') : '',
  });
  return { key, uploaded: true };
}

/**
 * The version of a local `.gguf` file or HF folder: a digest of its files' relative names and SHA-256s (hidden
 * files aside). The same files give the same digest wherever they are, so it also tells whether two workers
 * loaded the same model.
 */
export async function modelDigest(
  localPath: string,
): Promise<{ version: string; files: { rel: string; abs: string; sha256: string }[] }> {
  const isFile = (await fs.stat(localPath)).isFile();
  const files = isFile
    ? [{ rel: path.basename(localPath), abs: localPath }]
    : (await fs.readdir(localPath, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile() && !e.name.startsWith('.'))
        .map((e) => {
          const abs = path.join(e.parentPath, e.name);
          return { rel: path.relative(localPath, abs).split(path.sep).join('/'), abs };
        })
        .sort((a, b) => (a.rel < b.rel ? -1 : 1));
  const hashed = await Promise.all(files.map(async (f) => ({ ...f, sha256: await sha256OfFile(f.abs) })));
  const version = createHash('sha256')
    .update(hashed.map((f) => `${f.rel}\t${f.sha256}\n`).join(''))
    .digest('hex')
    .slice(0, 16);
  return { version, files: hashed };
}

/**
 * Copies a model from the artifact store into a local cache, once, and returns the local path to load: a model
 * version (verified against its manifest), an HF folder under a prefix, or one `.gguf` object. A copy is complete
 * only when its marker is written, so an interrupted download is redone rather than loaded. Several processes may
 * fetch the same model at once (engine processes on one machine share the cache): each downloads into its own
 * folder and renames it into place; the first rename wins and the others use its copy.
 */
export async function fetchModelFromStore(store: ArtifactStore, key: string, cacheDir: string): Promise<string> {
  const prefix = key.replace(/\/+$/, '');
  const dir = path.join(
    cacheDir,
    'models',
    createHash('sha256').update(`${store.url}${prefix}`).digest('hex').slice(0, 16),
  );
  const marker = (folder: string) => path.join(folder, '.entry'); // written last: the file to load ('' for a folder)
  if (existsSync(marker(dir))) return path.join(dir, await fs.readFile(marker(dir), 'utf8'));
  const temp = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const entry = await downloadModel(store, prefix, temp);
    await fs.writeFile(marker(temp), entry);
    // A folder left by an interrupted fetch (no marker) is replaced; one another process completed is kept.
    if (existsSync(dir) && !existsSync(marker(dir))) await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(temp, dir).catch((err: NodeJS.ErrnoException) => {
      if (!existsSync(marker(dir))) throw err;
    });
  } finally {
    await fs.rm(temp, { recursive: true, force: true });
  }
  return path.join(dir, await fs.readFile(marker(dir), 'utf8'));
}

/** Downloads a model version, a `.gguf` object or an HF folder into `dir`; returns the entry to load in it. */
async function downloadModel(store: ArtifactStore, prefix: string, dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const manifest = prefix.endsWith('.gguf')
    ? undefined
    : await readManifest<ModelManifestBody>(store, prefix ? `${prefix}/${MANIFEST_FILE}` : MANIFEST_FILE, MODEL_KIND);
  let entry: string;
  if (manifest) {
    for (const object of manifest.objects) {
      await downloadVerified(store, { ...object, key: `${prefix}/${object.key}` }, path.join(dir, object.key));
    }
    entry = manifest.body.entry;
  } else if (prefix.endsWith('.gguf')) {
    if (!(await store.stat(prefix))) throw new Error(`no model at ${store.url}${prefix}`);
    entry = path.basename(prefix);
    await download(store, prefix, path.join(dir, entry));
  } else {
    const objects: string[] = [];
    for await (const object of store.list(prefix ? `${prefix}/` : '')) objects.push(object.key);
    if (objects.length === 0) {
      throw new Error(`no model at ${store.url}${prefix}: expected a model version, an HF folder or a .gguf object`);
    }
    for (const object of objects) await download(store, object, path.join(dir, object.slice(prefix.length + 1)));
    entry = '';
  }
  return entry;
}

async function download(store: ArtifactStore, key: string, local: string): Promise<void> {
  await fs.mkdir(path.dirname(local), { recursive: true });
  await pipeline(await store.openRead(key), createWriteStream(local));
}
