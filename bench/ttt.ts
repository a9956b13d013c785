import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend';
import type { TensorMap } from '../core/checkpoints/safetensors';
import { GPT2LMHeadModel } from '../core/models/gpt2';
import { TTTTrainer } from '../core/training/ttt';

/**
 * `npm run bench:ttt`: forward tokens/s and TTT-step time of a GPT-2 124M-shaped model (random init) at 1024
 * tokens, next to PyTorch on the same machine when a Python with torch + transformers is available
 * (BENCH_PYTHON, default python3). Run it on an otherwise idle machine: other jobs skew both sides.
 */

const T = Number(process.env.BENCH_TOKENS ?? 1024);
const REPS = Number(process.env.BENCH_REPS ?? 3);

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

function time(reps: number, fn: () => void): number {
  fn(); // warm-up: first calls build kernels and allocate
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps / 1000;
}

interface TorchResult {
  torch: string;
  threads: number;
  forward_s: number;
  step_s: number;
  attn: string;
}

async function runTorch(): Promise<TorchResult | string> {
  const python = process.env.BENCH_PYTHON ?? 'python3';
  const script = [path.join(__dirname, 'ttt_torch.py'), path.join(__dirname, '..', '..', 'bench', 'ttt_torch.py')].find(
    existsSync,
  );
  if (script === undefined) return 'bench/ttt_torch.py not found';
  try {
    const { stdout } = await promisify(execFile)(python, [script, String(T), String(REPS)], { maxBuffer: 1 << 20 });
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as TorchResult;
  } catch (err) {
    return `PyTorch side skipped (${python} with torch + transformers needed; set BENCH_PYTHON): ${(err as Error).message.split('\n')[0]}`;
  }
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(
    `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg()[0]?.toFixed(2)}`,
  );
  const model = new GPT2LMHeadModel(CONFIG, randomWeights(), 'random GPT-2 124M');
  const ids = tf.tensor2d(
    [Array.from({ length: T }, () => Math.floor(Math.random() * CONFIG.vocab_size))],
    [1, T],
    'int32',
  );
  const forwardS = time(REPS, () => tf.tidy(() => void model.forward(ids).sum().dataSync()));
  const trainer = new TTTTrainer(model, { lr: 2e-5 });
  const tokens = Array.from(ids.dataSync());
  const stepS = time(REPS, () => void trainer.step(tokens));
  const tfjs = `tfjs ${backend.name}${backend.tfVersion !== undefined ? ` (TensorFlow ${backend.tfVersion})` : ''}`;
  console.log(
    `${tfjs}: forward ${(T / forwardS).toFixed(0)} tokens/s (${(forwardS * 1000).toFixed(0)} ms), TTT step ${(stepS * 1000).toFixed(0)} ms, RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(1)} GiB`,
  );
  trainer.dispose();
  model.dispose();
  ids.dispose();

  const torch = await runTorch();
  if (typeof torch === 'string') {
    console.log(torch);
    return;
  }
  console.log(
    `PyTorch ${torch.torch} (${torch.threads} threads, ${torch.attn} attention): forward ${(T / torch.forward_s).toFixed(0)} tokens/s (${(torch.forward_s * 1000).toFixed(0)} ms), TTT step ${(torch.step_s * 1000).toFixed(0)} ms`,
  );
  console.log(
    `ratio tfjs/PyTorch time: forward ${(forwardS / torch.forward_s).toFixed(2)}x, TTT step ${(stepS / torch.step_s).toFixed(2)}x`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
