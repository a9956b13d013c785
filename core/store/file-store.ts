import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ArtifactStore, type ObjectInfo, StoreError, checkKey } from './artifact-store';

/** A store in a local folder. Writes go to a temporary file beside the target and are renamed into place. */
export class FileStore implements ArtifactStore {
  readonly url: string;
  private readonly root: string;

  constructor(rootUrlOrPath: string) {
    this.root = path.resolve(rootUrlOrPath.startsWith('file:') ? fileURLToPath(rootUrlOrPath) : rootUrlOrPath);
    this.url = pathToFileURL(this.root).href;
  }

  private pathOf(key: string): string {
    return path.join(this.root, ...checkKey(key).split('/'));
  }

  /** The comparison and the rename happen under a lock folder (mkdir is atomic), so concurrent writers serialise. */
  async putBytesIfUnchanged(key: string, data: Uint8Array | string, expected: string | undefined): Promise<boolean> {
    const target = this.pathOf(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const lock = `${target}.lock`;
    for (let waited = 0; ; waited += 10) {
      try {
        await fs.mkdir(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || waited > 10_000) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    try {
      const current = await fs.readFile(target).catch(() => undefined);
      const currentSha = current && createHash('sha256').update(current).digest('hex');
      if (currentSha !== expected) return false;
      await this.putBytes(key, data);
      return true;
    } finally {
      await fs.rm(lock, { recursive: true, force: true });
    }
  }

  async putBytes(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const target = this.pathOf(key);
    const temp = await this.tempPathFor(target);
    await fs.writeFile(temp, bytes);
    await fs.rename(temp, target);
    return { key, size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
  }

  async putFile(key: string, localPath: string): Promise<ObjectInfo> {
    const target = this.pathOf(key);
    const temp = await this.tempPathFor(target);
    const hash = createHash('sha256');
    let size = 0;
    const source = createReadStream(localPath).on('data', (chunk) => {
      hash.update(chunk);
      size += chunk.length;
    });
    await pipeline(source, createWriteStream(temp));
    await fs.rename(temp, target);
    return { key, size, sha256: hash.digest('hex') };
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.pathOf(key));
    } catch (err) {
      throw this.wrap(err, key);
    }
  }

  async openRead(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    const file = this.pathOf(key);
    try {
      await fs.access(file);
    } catch (err) {
      throw this.wrap(err, key);
    }
    return createReadStream(file, range ? { start: range.start, end: range.end } : {});
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const stats = await fs.stat(this.pathOf(key));
      return stats.isFile() ? { size: stats.size } : undefined;
    } catch {
      return undefined;
    }
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    const keys: { key: string; size: number }[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (entry.name.startsWith('.tmp-')) continue;
        const key = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
        else if (entry.isFile() && key.startsWith(prefix)) {
          keys.push({ key, size: (await fs.stat(path.join(dir, entry.name))).size });
        }
      }
    };
    await walk(this.root, '');
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* keys;
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }

  private async tempPathFor(target: string): Promise<string> {
    await fs.mkdir(path.dirname(target), { recursive: true });
    return path.join(path.dirname(target), `.tmp-${randomBytes(6).toString('hex')}-${path.basename(target)}`);
  }

  private wrap(err: unknown, key: string): Error {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return new StoreError(`no object ${key} in ${this.url}`);
    }
    return err as Error;
  }
}
