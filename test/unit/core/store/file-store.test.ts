import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStore } from '../../../../core/store/file-store';
import { openStore } from '../../../../core/store/open-store';
import { storeContract } from '../../../store-contract';

describe('FileStore', () => {
  storeContract(async () => new FileStore(await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-fs-'))));

  it('is chosen for file:// URLs and plain paths, and rejects other schemes', () => {
    const s3 = { s3: {} as never };
    expect(openStore('file:///tmp/x', s3).url).toBe('file:///tmp/x');
    expect(openStore('/tmp/y', s3).url).toBe('file:///tmp/y');
    expect(() => openStore('gs://bucket/x', s3)).toThrow(/unsupported artifact store URL gs:\/\/bucket\/x/);
  });

  it('never shows a half-written object under its key', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-fs-'));
    const store = new FileStore(root);
    await store.putBytes('k/obj', 'old');
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.putBytes('k/obj', `value-${i}`.repeat(10_000))));
    expect((await store.getBytes('k/obj')).toString()).toMatch(/^(value-\d+)+$/);
    expect((await fs.readdir(path.join(root, 'k'))).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });
});
