import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fetchModelFromStore, pushModel } from '../../../../core/checkpoints/from-store';
import { FileStore } from '../../../../core/store/file-store';

describe('fetchModelFromStore', () => {
  let root: string;
  let store: FileStore;
  let key: string;
  const files = { 'config.json': '{"model_type":"bert"}', 'model.safetensors': 'x'.repeat(300_000) };

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-from-store-'));
    const local = path.join(root, 'local');
    await fs.mkdir(local);
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(local, name), text);
    store = new FileStore(path.join(root, 'store'));
    key = (await pushModel(store, 'tiny', local)).key;
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  const cacheEntries = async (cache: string) => (await fs.readdir(path.join(cache, 'models'))).sort();

  it('serves fetches racing into one cache (engine processes on one machine) from one complete copy', async () => {
    const cache = path.join(root, 'cache');
    const fetched = await Promise.all(Array.from({ length: 4 }, () => fetchModelFromStore(store, key, cache)));
    expect(new Set(fetched).size).toBe(1);
    for (const [name, text] of Object.entries(files)) {
      expect(await fs.readFile(path.join(fetched[0]!, name), 'utf8')).toBe(text);
    }
    // One folder, no download folders left behind.
    expect(await cacheEntries(cache)).toEqual([path.basename(fetched[0]!)]);
  });

  it('replaces a copy an interrupted fetch left without its marker, and reuses a complete one', async () => {
    const cache = path.join(root, 'cache');
    const dir = await fetchModelFromStore(store, key, cache);
    await fs.rm(path.join(dir, '.entry'));
    await fs.writeFile(path.join(dir, 'model.safetensors'), 'truncated');
    expect(await fetchModelFromStore(store, key, cache)).toBe(dir);
    expect(await fs.readFile(path.join(dir, 'model.safetensors'), 'utf8')).toBe(files['model.safetensors']);

    await fs.rm(path.join(root, 'store'), { recursive: true }); // a complete copy needs the store no more
    expect(await fetchModelFromStore(store, key, cache)).toBe(dir);
    expect(await cacheEntries(cache)).toEqual([path.basename(dir)]);
  });
});
