import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, engineSettings, initBackend } from '../core/backend';
import { loadConfig } from '../core/config';
import { bitsPerByte, harnessPrefixToken } from '../core/metrics/bits-per-byte';
import { loadCausalLM } from '../core/models/registry';
import { openStore } from '../core/store/open-store';
import { TTTTrainer } from '../core/training/ttt';
import { infraUp } from '../infra/local-infra';
import { ensureSmolLM2 } from '../infra/models';
import { machineLine } from './harness';

/**
 * `npm run bench:checkpoint`: what checkpointing a document's progress would cost against replaying it. A mid-
 * document checkpoint holds the trained weights and Adam's two moments (3 × the parameters in float32); it is timed
 * here as the evaluation would pay it: tensors to host memory, a file, an upload to the store (the local S3 server),
 * and back (download, tensors assigned). Beside it, what a replay costs per neighbor: TTT steps at max_length and one
 * bits/byte evaluation of the test document. Checkpointing pays where a neighbor costs more than a checkpoint.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = (line: string) => console.log(line);
  await infraUp(config, () => undefined);
  const backend = await initBackend({ ...engineSettings(config), log: () => undefined });
  const T = Number(process.env.BENCH_TOKENS ?? 512);
  const { model, tokenizer } = await loadCausalLM(await ensureSmolLM2(config.toolsDir, log), {
    log: () => undefined,
    training: true,
  });
  const trainer = new TTTTrainer(model, { lr: 2e-5 });
  const vars = [...new Set(model.params.values())];
  const parameters = vars.reduce((n, v) => n + v.size, 0);
  const chunk = Array.from({ length: T }, (_, i) => 100 + ((i * 7919) % 20000));
  const doc = 'The quick brown fox jumps over the lazy dog. '.repeat(50);
  const docTokens = tokenizer.encode(doc, { addSpecialTokens: false });

  const seconds = async (work: () => unknown) => {
    const t0 = performance.now();
    await work();
    return (performance.now() - t0) / 1000;
  };
  trainer.step(chunk); // warm-up: kernels for this shape
  const step = await seconds(() => trainer.step(chunk));
  const evaluate = await seconds(() =>
    bitsPerByte(model, doc, docTokens, { prefixToken: harnessPrefixToken(tokenizer), maxLength: T }),
  );

  const store = openStore(`s3://tttnn/bench/checkpoint-${Date.now()}`, config);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-checkpoint-'));
  const file = path.join(dir, 'state.bin');
  try {
    // Weights and the two moments: three tensors per variable, as a checkpoint would hold them.
    const save = await seconds(async () => {
      const handle = await fs.open(file, 'w');
      for (let copy = 0; copy < 3; copy++) {
        for (const v of vars) {
          const data = (await v.data()) as Float32Array;
          await handle.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        }
      }
      await handle.close();
      await store.putFile('state.bin', file);
    });
    const restore = await seconds(async () => {
      const bytes = await store.getBytes('state.bin');
      let offset = 0;
      for (let copy = 0; copy < 3; copy++) {
        for (const v of vars) {
          const values = new Float32Array(
            bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + 4 * v.size),
          );
          offset += 4 * v.size;
          tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
        }
      }
    });
    const size = (await fs.stat(file)).size;
    console.log(machineLine());
    console.log(`backend ${describeBackend(backend)}; SmolLM2-135M, ${(parameters / 1e6).toFixed(1)}M parameters`);
    console.log(`checkpoint (weights + Adam m, v): ${(size / 2 ** 20).toFixed(0)} MiB`);
    console.log(`  save (host copy, file, upload)        ${save.toFixed(2)} s`);
    console.log(`  restore (download, assign)            ${restore.toFixed(2)} s`);
    console.log(
      `replay, per neighbor of n chunks of ${T} tokens: n × ${step.toFixed(2)} s (step) + ${evaluate.toFixed(2)} s (bits/byte of a ${Buffer.byteLength(doc)}-byte document)`,
    );
    console.log(
      `checkpointing after every neighbor adds ${save.toFixed(2)} s to each neighbor (${((100 * save) / (step + evaluate)).toFixed(0)}% ` +
        `of a one-step neighbor) and ${restore.toFixed(2)} s to a resume; replay costs nothing until a worker is lost, ` +
        `then the neighbors done so far (each ≥ ${(step + evaluate).toFixed(2)} s)`,
    );
  } finally {
    trainer.dispose();
    await fs.rm(dir, { recursive: true, force: true });
    await store.delete('state.bin').catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
