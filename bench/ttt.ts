import * as tf from '@tensorflow/tfjs';
import { type BackendChoice, describeBackend, initBackend } from '../core/backend';
import type { TensorMap } from '../core/checkpoints/safetensors';
import { BACKEND_CHOICES, loadConfig } from '../core/config';
import { GPT2LMHeadModel } from '../core/models/gpt2';
import type { CausalLM } from '../core/models/modeling-utils';
import { loadCausalLM } from '../core/models/registry';
import { TTTTrainer } from '../core/training/ttt';
import { ensureSmolLM2 } from '../infra/models';
import { achieved, forwardFlops, matmulWeights, measurePeaks, shapeFromConfig, trainStepFlops } from './flops';
import { machineLine, runPythonJson, time } from './harness';

/**
 * `npm run bench:ttt`: forward tokens/s and TTT-step time (forward + backward + clip + AdamW) at 1024 tokens of
 *   - gpt2: a GPT-2 124M-shaped model (random init), the model-engine issue's yardstick, and
 *   - smollm2: SmolLM2-135M (Llama, the real pretrained default LM, GGUF Q4_1 dequantized to fp32),
 * each next to PyTorch on the same machine in the same run when a Python with torch + transformers is available
 * (BENCH_PYTHON, default python3), with achieved GFLOP/s and the fraction of this machine's peak (bench/flops.ts).
 * Settings: BENCH_MODELS (gpt2,smollm2), BENCH_BACKENDS (auto; e.g. tensorflow,wasm,cpu), BENCH_TOKENS (1024),
 * BENCH_REPS (3), BENCH_PEAK_N (2048).
 * Peak RSS is the process's high-water mark, so it covers every model benched before: BENCH_MODELS=smollm2 alone for
 * SmolLM2's own. Run it on an otherwise idle machine: other jobs skew both sides.
 */

const T = Number(process.env.BENCH_TOKENS ?? 1024);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const MODELS = (process.env.BENCH_MODELS ?? 'gpt2,smollm2').split(',').map((m) => m.trim());
/** auto = the fastest that loads (native TensorFlow here); wasm and cpu take minutes per step at 1024 tokens. */
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'auto').split(',').map((b) => b.trim()) as BackendChoice[];

const CONFIG = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
};

/** GPT-2's init: N(0, 0.02) weights, zero biases, unit LayerNorm gains (the values do not affect timing). */
function randomWeights(): TensorMap {
  const C = CONFIG.n_embd;
  const weights: TensorMap = new Map();
  const add = (name: string, shape: number[], kind: 'normal' | 'zeros' | 'ones') => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (kind === 'ones') data.fill(1);
    if (kind === 'normal')
      for (let i = 0; i < n; i++)
        data[i] = 0.02 * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    weights.set(name, { shape, dtype: 'F32', data });
  };
  add('transformer.wte.weight', [CONFIG.vocab_size, C], 'normal');
  add('transformer.wpe.weight', [CONFIG.n_positions, C], 'normal');
  for (let i = 0; i < CONFIG.n_layer; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ['ln_1', 'ln_2']) {
      add(`${p}.${ln}.weight`, [C], 'ones');
      add(`${p}.${ln}.bias`, [C], 'zeros');
    }
    add(`${p}.attn.c_attn.weight`, [C, 3 * C], 'normal');
    add(`${p}.attn.c_attn.bias`, [3 * C], 'zeros');
    add(`${p}.attn.c_proj.weight`, [C, C], 'normal');
    add(`${p}.attn.c_proj.bias`, [C], 'zeros');
    add(`${p}.mlp.c_fc.weight`, [C, 4 * C], 'normal');
    add(`${p}.mlp.c_fc.bias`, [4 * C], 'zeros');
    add(`${p}.mlp.c_proj.weight`, [4 * C, C], 'normal');
    add(`${p}.mlp.c_proj.bias`, [C], 'zeros');
  }
  add('transformer.ln_f.weight', [C], 'ones');
  add('transformer.ln_f.bias', [C], 'zeros');
  return weights;
}

interface BenchModel {
  label: string;
  load(): Promise<CausalLM>;
  /** ttt_torch.py's MODEL argument: `gpt2`, or the same .gguf file. */
  torchSpec: string;
}

const log = (line: string) => console.error(line);

/** Resolving a bench model finds its files only; `load` builds it in tfjs. */
const BENCH_MODELS: Record<string, () => Promise<BenchModel>> = {
  gpt2: () =>
    Promise.resolve({
      label: 'GPT-2 124M shape (random init)',
      load: () => Promise.resolve(new GPT2LMHeadModel(CONFIG, randomWeights(), 'random GPT-2 124M')),
      torchSpec: 'gpt2',
    }),
  smollm2: async () => {
    const file = await ensureSmolLM2(loadConfig().toolsDir, log);
    return {
      label: 'SmolLM2-135M (GGUF Q4_1 -> fp32)',
      load: async () => (await loadCausalLM(file, { log })).model,
      torchSpec: file,
    };
  },
};

interface TorchResult {
  torch: string;
  threads: number;
  forward_s: number;
  step_s: number;
  attn: string;
  /** The Python process's peak RSS: model load, forward passes and TTT steps. */
  peak_rss: number;
}

const seconds = (s: number) => `${s.toFixed(s < 10 ? 2 : 1)} s`;
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

async function main(): Promise<void> {
  const unknown = MODELS.filter((m) => !(m in BENCH_MODELS));
  if (unknown.length > 0) {
    throw new Error(
      `BENCH_MODELS: unknown ${unknown.join(', ')} (choose from ${Object.keys(BENCH_MODELS).join(', ')})`,
    );
  }
  const badBackend = BACKENDS.filter((b) => !BACKEND_CHOICES.includes(b));
  if (badBackend.length > 0)
    throw new Error(`BENCH_BACKENDS: unknown ${badBackend.join(', ')} (${BACKEND_CHOICES.join(', ')})`);
  await initBackend({ backend: BACKENDS[0] });
  console.log(machineLine());
  const { peaks, torch: noTorch } = await measurePeaks();
  if (noTorch !== undefined) console.log(noTorch);
  const models = await Promise.all(MODELS.map((name) => (BENCH_MODELS[name] as () => Promise<BenchModel>)()));

  // PyTorch runs first: native TensorFlow's BFC arena keeps its high-water mark (17-19 GiB after a TTT step), and a
  // process that large can no longer fork a Python child (spawn ENOMEM).
  const torchResults = new Map<BenchModel, TorchResult | string>();
  if (noTorch === undefined) {
    for (const bench of models) {
      torchResults.set(
        bench,
        await runPythonJson<TorchResult>('ttt_torch.py', [bench.torchSpec, String(T), String(REPS)]),
      );
    }
  }

  for (const bench of models) {
    const timings: { tfjs: string; forwardS: number; stepS: number; peakRss: number }[] = [];
    let fwdFlops = 0;
    let stepFlops = 0;
    for (const choice of BACKENDS) {
      const backend = await initBackend({ backend: choice });
      const tfjs = `tfjs ${describeBackend(backend)}`;
      const model = await bench.load();
      const shape = shapeFromConfig(model.config);
      fwdFlops = forwardFlops(shape, T);
      stepFlops = trainStepFlops(shape, T);
      if (timings.length === 0) {
        console.log(
          `\n${bench.label}, T=${T}: ${(matmulWeights(shape) / 1e6).toFixed(1)}M matmul weights (LM head included); ` +
            `forward ${(fwdFlops / 1e12).toFixed(3)} TFLOP, TTT step ~3x forward ${(stepFlops / 1e12).toFixed(3)} TFLOP`,
        );
      }
      const ids = tf.tensor2d(
        [Array.from({ length: T }, () => Math.floor(Math.random() * model.vocabSize))],
        [1, T],
        'int32',
      );
      let forwardS: number;
      let stepS: number;
      let rss: number; // read while the model and its training state are still held
      let peakRss: number;
      const trainer = new TTTTrainer(model, { lr: 2e-5 });
      try {
        forwardS = time(REPS, () => tf.tidy(() => void model.forward(ids).sum().dataSync()));
        const tokens = Array.from(ids.dataSync());
        stepS = time(REPS, () => void trainer.step(tokens));
        rss = process.memoryUsage().rss;
        peakRss = process.resourceUsage().maxRSS * 1024; // this process's peak: every model benched so far
      } catch (err) {
        // WASM's heap is 32-bit: weights, their reset copy, Adam's moments and the gradients of a 124M model
        // (~2.5 GB) do not fit it.
        console.log(`  ${tfjs}: failed (${(err as Error).message.split('\n')[0]})`);
        continue;
      } finally {
        trainer.dispose();
        model.dispose();
        ids.dispose();
      }
      console.log(
        `  ${tfjs}: forward ${(T / forwardS).toFixed(0)} tokens/s (${seconds(forwardS)}; ${achieved(fwdFlops, forwardS, peaks)}); ` +
          `TTT step ${seconds(stepS)} (${achieved(stepFlops, stepS, peaks)}); RSS ${gib(rss)}, peak ${gib(peakRss)}`,
      );
      timings.push({ tfjs, forwardS, stepS, peakRss });
    }

    const torch = torchResults.get(bench);
    if (torch === undefined) continue;
    if (typeof torch === 'string') {
      console.log(`  ${torch}`);
      continue;
    }
    console.log(
      `  PyTorch ${torch.torch} (${torch.threads} threads, ${torch.attn} attention): forward ${(T / torch.forward_s).toFixed(0)} tokens/s ` +
        `(${seconds(torch.forward_s)}; ${achieved(fwdFlops, torch.forward_s, peaks)}); ` +
        `TTT step ${seconds(torch.step_s)} (${achieved(stepFlops, torch.step_s, peaks)}); peak RSS ${gib(torch.peak_rss)}`,
    );
    for (const t of timings) {
      console.log(
        `  ratio ${t.tfjs}/PyTorch time: forward ${(t.forwardS / torch.forward_s).toFixed(2)}x, TTT step ${(t.stepS / torch.step_s).toFixed(2)}x; ` +
          `peak RSS ${(t.peakRss / torch.peak_rss).toFixed(2)}x`,
      );
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
