import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../core/backend';
import { loadConfig } from '../core/config';
import { loadCausalLM, loadEncoder } from '../core/models/registry';
import { causalLmLoss } from '../core/training/ttt';
import { ensureMiniLM, ensureSmolLM2 } from '../infra/models';
import { machineLine } from './harness';

/**
 * `npm run bench:profile -- [minilm|smollm2|smollm2-step]`: where a forward pass (smollm2-step: forward and
 * backward of a training chunk) spends its time on this backend. Prints wall time and process CPU time (user vs
 * system: system time is the kernel faulting in and zeroing fresh memory), then
 * tf.profile's kernels grouped by op and input shapes, slowest first, with their share of the kernel time. What is
 * left between the kernel sum and the wall time is tfjs's own per-op work and allocation outside the kernels.
 * The figures in docs/engine-performance.md come from this script.
 * Settings: BENCH_BATCH (32 for minilm, 1 for smollm2), BENCH_TOKENS (128 / 1024 / 512 for smollm2-step),
 * BENCH_REPS (3), BENCH_TOP (20).
 */
const WHAT = process.argv[2] ?? 'minilm';
const REPS = Number(process.env.BENCH_REPS ?? 3);
const TOP = Number(process.env.BENCH_TOP ?? 20);

interface Subject {
  label: string;
  forward: () => tf.Tensor;
  dispose: () => void;
}

async function subject(what: string): Promise<Subject> {
  const log = (line: string) => console.error(line);
  const { toolsDir } = loadConfig();
  if (what === 'minilm') {
    const B = Number(process.env.BENCH_BATCH ?? 32);
    const T = Number(process.env.BENCH_TOKENS ?? 128);
    const { model } = await loadEncoder(await ensureMiniLM(toolsDir, log));
    const ids = tf.randomUniform<tf.Rank.R2>([B, T], 1000, 20000, 'int32');
    const mask = tf.ones<tf.Rank.R2>([B, T], 'int32');
    return {
      label: `all-MiniLM-L6-v2 forward, batch ${B} x ${T} tokens`,
      forward: () => model.forward(ids, mask),
      dispose: () => {
        tf.dispose([ids, mask]);
        model.dispose();
      },
    };
  }
  if (what === 'smollm2') {
    const B = Number(process.env.BENCH_BATCH ?? 1);
    const T = Number(process.env.BENCH_TOKENS ?? 1024);
    const { model } = await loadCausalLM(await ensureSmolLM2(toolsDir, log), { log });
    const ids = tf.randomUniform<tf.Rank.R2>([B, T], 0, model.vocabSize, 'int32');
    return {
      label: `SmolLM2-135M forward (logits), batch ${B} x ${T} tokens`,
      forward: () => model.forward(ids),
      dispose: () => {
        ids.dispose();
        model.dispose();
      },
    };
  }
  if (what === 'smollm2-step') {
    // Forward and backward of one training chunk: the loss and the gradients a TTT step takes (the optimizer,
    // timed on its own in docs/engine-performance.md, is not included).
    const T = Number(process.env.BENCH_TOKENS ?? 512);
    const { model } = await loadCausalLM(await ensureSmolLM2(toolsDir, log), { log });
    const ids = tf.randomUniform<tf.Rank.R2>([1, T], 0, model.vocabSize, 'int32');
    const vars = [...new Set(model.params.values())];
    return {
      label: `SmolLM2-135M forward + backward (loss and gradients), 1 x ${T} tokens`,
      forward: () => {
        const { value, grads } = tf.variableGrads(() => causalLmLoss(model, ids), vars);
        tf.dispose(Object.values(grads));
        return value;
      },
      dispose: () => {
        ids.dispose();
        model.dispose();
      },
    };
  }
  throw new Error(`bench:profile: unknown model '${what}' (minilm, smollm2 or smollm2-step)`);
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(machineLine());
  const s = await subject(WHAT);
  const run = () => tf.tidy(() => void s.forward().dataSync());
  run(); // warm-up: kernels, allocator arenas
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) run();
  const wallMs = (performance.now() - t0) / REPS;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${s.label} on tfjs ${describeBackend(backend)}: ` +
      `${wallMs.toFixed(0)} ms wall per forward; CPU per forward: user ${(cpu.user / 1000 / REPS).toFixed(0)} ms, ` +
      `system ${(cpu.system / 1000 / REPS).toFixed(0)} ms`,
  );

  const profile = await tf.profile(run);
  const groups = new Map<string, { calls: number; ms: number }>();
  let kernelMs = 0;
  for (const k of profile.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    kernelMs += ms;
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const g = groups.get(key) ?? { calls: 0, ms: 0 };
    g.calls++;
    g.ms += ms;
    groups.set(key, g);
  }
  console.log(
    `profiled forward: ${profile.kernels.length} kernels, kernel time ${kernelMs.toFixed(0)} ms ` +
      `(${((kernelMs / wallMs) * 100).toFixed(0)}% of the wall time above)`,
  );
  console.log('      ms  share  calls  kernel [input shapes]');
  for (const [key, g] of [...groups.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, TOP)) {
    console.log(
      `${g.ms.toFixed(1).padStart(8)}  ${((g.ms / kernelMs) * 100).toFixed(1).padStart(4)}%  ${String(g.calls).padStart(5)}  ${key}`,
    );
  }
  s.dispose();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
