import { execFile, spawnSync } from 'node:child_process';
import { closeSync, openSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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
    // Without --model, the config's `model` (here from TTTNN_MODEL) is the one loaded.
    const fromConfig = await run(process.execPath, [TTTNN, 'lm', 'bpb', '--file', doc, '--max-length', '16'], {
      env: { ...env, TTTNN_MODEL: TINY_GPT2 },
    });
    expect(figure(fromConfig.stdout)).toBe(figure(local));

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

  it('pushes models as verified versions (idempotent) that load from s3:// and file:// like the local copy', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-push-'));
    const doc = path.join(dir, 'doc.txt');
    await fs.writeFile(doc, 'Model versions carry a manifest with the SHA-256 of every file. '.repeat(4));
    const to = `s3://tttnn/${uniqueName('model-versions')}`;
    // The shared tools cache already holds SmolLM2 (setup fetched it); the s3:// copies go to this test's own cache.
    const push = async (...args: string[]) =>
      (
        await run(process.execPath, [TTTNN, 'model', 'push', ...args, '--to', to], {
          env: { ...env, TTTNN_TOOLS_DIR: config.toolsDir },
        })
      ).stdout;
    const urlOf = (out: string) => /model version (s3:\/\/\S+) /.exec(out)?.[1] ?? '';

    const first = await push(TINY_GPT2, '--name', 'tiny-gpt2');
    const url = urlOf(first);
    expect(url).toMatch(new RegExp(`^${to}/tiny-gpt2/[0-9a-f]{16}$`));
    expect(first).toContain('pushed: model version');
    const again = await push(TINY_GPT2, '--name', 'tiny-gpt2');
    expect(again).toContain('already pushed');
    expect(urlOf(again)).toBe(url);
    const figure = (out: string) => /([0-9.]+) bits\/byte/.exec(out)?.[1];
    expect(figure(await bpb(url, doc))).toBe(figure(await bpb(TINY_GPT2, doc)));

    // A file:// store the same way: the URL `model push` prints is one `--model` loads.
    const fileTo = pathToFileURL(path.join(dir, 'model-store')).href;
    const pushedToFile = (
      await run(process.execPath, [TTTNN, 'model', 'push', TINY_GPT2, '--name', 'tiny-gpt2', '--to', fileTo], { env })
    ).stdout;
    const fileUrl = /model version (file:\/\/\S+) /.exec(pushedToFile)?.[1] ?? '';
    expect(fileUrl).toMatch(new RegExp(`^${fileTo}/tiny-gpt2/[0-9a-f]{16}$`));
    expect(figure(await bpb(fileUrl, doc))).toBe(figure(await bpb(TINY_GPT2, doc)));

    // A replaced object no longer matches the manifest: loading fails with a line naming it.
    const { bucket, key } = { bucket: 's3://tttnn', key: url.slice('s3://tttnn/'.length) };
    await openStore(bucket, config).putBytes(`${key}/model.safetensors`, 'not the weights');
    const freshCache = { ...env, TTTNN_TOOLS_DIR: path.join(os.tmpdir(), uniqueName('tttnn-tools')) };
    const error = await run(process.execPath, [TTTNN, 'lm', 'bpb', '--model', url, '--file', doc], {
      env: freshCache,
    }).catch((e: { stderr: string }) => e.stderr);
    expect(error).toMatch(new RegExp(`tttnn: object ${url}/model.safetensors does not match its manifest`));

    // The real model: the GGUF file as a version, loaded back with the same bits per byte.
    const smol = urlOf(await push('smollm2-135m'));
    expect(smol).toMatch(new RegExp(`^${to}/smollm2-135m/[0-9a-f]{16}$`));
    const smolBpb = async (model: string) =>
      figure(
        (
          await run(process.execPath, [TTTNN, 'lm', 'bpb', '--model', model, '--file', doc, '--max-length', '32'], {
            env: { ...env, TTTNN_TOOLS_DIR: config.toolsDir },
          })
        ).stdout,
      );
    expect(await smolBpb(smol)).toBe(await smolBpb('smollm2-135m'));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('names a missing document before loading any model', async () => {
    const error = await bpb(TINY_GPT2, '/nonexistent/doc.txt').catch((e: { stderr: string }) => e.stderr);
    expect(error.trim()).toBe('tttnn: cannot read /nonexistent/doc.txt: no such file');
  });

  it('refuses a document that is not valid UTF-8, naming the offset, instead of scoring replaced bytes', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-lm-'));
    const doc = path.join(dir, 'latin1.txt');
    await fs.writeFile(doc, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0x41])); // "café" in Latin-1
    const error = await bpb(TINY_GPT2, doc).catch((e: { stderr: string }) => e.stderr);
    expect(error.trim()).toBe(
      `tttnn: ${doc} is not valid UTF-8 text (first invalid byte at offset 3); convert it to UTF-8 first`,
    );
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('prints no TensorFlow start-up log lines, and stderr still works after loading', async () => {
    // stderr goes to a file, as in `tttnn … 2>log` (a terminal behaves the same). Node's own 'pipe' stdio is a
    // socket, which cannot be reopened to be restored: there the two start-up lines are left as they are.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-lm-'));
    const doc = path.join(dir, 'doc.txt');
    await fs.writeFile(doc, 'hello world');
    const stderrOf = async (args: string[]) => {
      const file = path.join(dir, 'stderr.txt');
      const fd = openSync(file, 'w');
      const child = spawnSync(process.execPath, args, {
        env: { ...env, TTTNN_BACKEND: 'tensorflow' },
        stdio: ['ignore', 'pipe', fd],
      });
      closeSync(fd);
      return { stdout: child.stdout.toString(), stderr: await fs.readFile(file, 'utf8') };
    };
    const bpbRun = await stderrOf([TTTNN, 'lm', 'bpb', '--model', TINY_GPT2, '--file', doc, '--max-length', '16']);
    expect(bpbRun.stdout).toMatch(/tfjs backend: tensorflow \(TensorFlow 2\.\d+/);
    expect(bpbRun.stderr).toBe('');
    // The same process writes to stderr after the library loaded: descriptor 2 was restored.
    const backend = path.resolve(__dirname, '..', '..', 'dist', 'core', 'backend.js');
    const script = `require(${JSON.stringify(backend)}).initBackend({ log: () => undefined }).then(() => console.error('after load'))`;
    expect((await stderrOf(['-e', script])).stderr).toBe('after load\n');
    await fs.rm(dir, { recursive: true, force: true });
  });
});
