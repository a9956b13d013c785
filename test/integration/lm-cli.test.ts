import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openStore } from '../../core/store/open-store';
import { testConfig } from '../test-config';
import { configEnv, uniqueName } from './harness';

const run = promisify(execFile);
const TTTNN = path.resolve(__dirname, '..', '..', 'bin', 'tttnn');
const TINY_GPT2 = path.resolve(__dirname, '..', 'fixtures', 'models', 'tiny-gpt2');

describe('tttnn lm', () => {
  const config = testConfig();
  const env = { ...configEnv(config), TTTNN_TOOLS_DIR: path.join(os.tmpdir(), uniqueName('tttnn-tools')) };
  const bpb = async (model: string, file: string) =>
    (await run(process.execPath, [TTTNN, 'lm', 'bpb', '--model', model, '--file', file, '--max-length', '16'], { env }))
      .stdout;

  it('gives the same bits/byte for a checkpoint folder read locally and from s3://, and TTT lowers it', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-lm-'));
    const doc = path.join(dir, 'doc.txt');
    await fs.writeFile(doc, 'the quick brown fox jumps over the lazy dog. '.repeat(6));
    const prefix = uniqueName('models');
    const store = openStore(`s3://tttnn/${prefix}/tiny-gpt2`, config);
    for (const name of await fs.readdir(TINY_GPT2)) await store.putFile(name, path.join(TINY_GPT2, name));

    const local = await bpb(TINY_GPT2, doc);
    const remote = await bpb(`s3://tttnn/${prefix}/tiny-gpt2`, doc);
    const figure = (out: string) => /([0-9.]+) bits\/byte/.exec(out)?.[1];
    expect(figure(local)).toMatch(/^\d+\.\d{4}$/);
    expect(figure(remote)).toBe(figure(local));

    const ttt = await run(
      process.execPath,
      [
        TTTNN,
        'lm',
        'ttt',
        '--model',
        TINY_GPT2,
        '--doc',
        doc,
        '--neighbors',
        doc,
        doc,
        '--max-length',
        '16',
        '--lr',
        '1e-2',
      ],
      { env },
    );
    const [before, after] = /([0-9.]+) → ([0-9.]+) bits\/byte after \d+ TTT steps on 2 neighbors/
      .exec(ttt.stdout)!
      .slice(1);
    expect(Number(after)).toBeLessThan(Number(before));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('names a missing document before loading any model', async () => {
    const error = await bpb(TINY_GPT2, '/nonexistent/doc.txt').catch((e: { stderr: string }) => e.stderr);
    expect(error.trim()).toBe('tttnn: cannot read /nonexistent/doc.txt: no such file');
  });
});
