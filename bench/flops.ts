import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { HfConfig } from '../core/checkpoints/hf-folder';
import { configNumber } from '../core/models/modeling-utils';
import { runPythonJson } from './harness';

/**
 * FLOP counts and this machine's fp32 peak, so that every timed figure of the benches can be read as achieved
 * GFLOP/s and a fraction of what the machine can do.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * Counting (only the matrix products; layer norms, softmax, activations, biases and the optimizer add a few
 * percent of elementwise work and are left out, as in PaLM's model-FLOPs utilisation):
 *
 *   forward of one sequence of T tokens = 2 · W · T  +  4 · L · T² · A
 *
 *   W  weights that multiply activations: per layer Q, K, V, O and the MLP, plus the LM head (C · V, counted
 *      even when tied to the embedding); embedding lookups are gathers, not products.
 *   L  layers, A = heads × head size (C, except Llama checkpoints with an explicit head_dim).
 *   4 · T² · A per layer: Q·Kᵀ and the probabilities times V, each 2 · T² · A, over the whole T × T square —
 *      a dense implementation computes the causally masked half too, so that is the work done.
 *
 *   training step ≈ 3 × forward (the backward pass computes the gradient of both operands of each product).
 *
 * The same count divides both frameworks' times, so the tfjs/PyTorch ratios are unaffected by it.
 */

// ---------------------------------------------------------------------------------------------------------------
// Counting

export interface TransformerShape {
  layers: number;
  /** Model width C. */
  hidden: number;
  /** Heads × head size: the width of Q and of the attention output. */
  attnDim: number;
  /** Width of K and of V (narrower than attnDim with grouped-query attention). */
  kvDim: number;
  intermediate: number;
  /** Llama's MLP has three matrices (gate, up, down), GPT-2's and BERT's two. */
  gatedMlp: boolean;
  /** Vocabulary of the LM head; 0 for an encoder, whose output is pooled hidden states. */
  lmHeadVocab: number;
}

/** Reads the shape from an HF config.json (gpt2, llama, bert, roberta, xlm-roberta). */
export function shapeFromConfig(config: HfConfig): TransformerShape {
  const n = (...keys: string[]) => configNumber(config, ...keys);
  switch (config.model_type) {
    case 'gpt2': {
      const C = n('n_embd');
      const inner = typeof config.n_inner === 'number' ? config.n_inner : 4 * C;
      return {
        layers: n('n_layer'),
        hidden: C,
        attnDim: C,
        kvDim: C,
        intermediate: inner,
        gatedMlp: false,
        lmHeadVocab: n('vocab_size'),
      };
    }
    case 'llama': {
      const C = n('hidden_size');
      const heads = n('num_attention_heads');
      const headDim = typeof config.head_dim === 'number' ? config.head_dim : C / heads;
      const kvHeads = typeof config.num_key_value_heads === 'number' ? config.num_key_value_heads : heads;
      return {
        layers: n('num_hidden_layers'),
        hidden: C,
        attnDim: heads * headDim,
        kvDim: kvHeads * headDim,
        intermediate: n('intermediate_size'),
        gatedMlp: true,
        lmHeadVocab: n('vocab_size'),
      };
    }
    case 'bert':
    case 'roberta':
    case 'xlm-roberta': {
      const C = n('hidden_size');
      return {
        layers: n('num_hidden_layers'),
        hidden: C,
        attnDim: C,
        kvDim: C,
        intermediate: n('intermediate_size'),
        gatedMlp: false,
        lmHeadVocab: 0,
      };
    }
    default:
      throw new Error(`no FLOP count for model_type '${config.model_type}' (gpt2, llama, bert, roberta)`);
  }
}

/** W of the formula above: the weights each token multiplies once per forward pass. */
export function matmulWeights(s: TransformerShape): number {
  const C = s.hidden;
  const attention = C * s.attnDim + 2 * C * s.kvDim + s.attnDim * C; // Q, K, V, O
  const mlp = (s.gatedMlp ? 3 : 2) * C * s.intermediate;
  return s.layers * (attention + mlp) + C * s.lmHeadVocab;
}

/** FLOPs of one forward pass over one sequence of T tokens (no padding). */
export function forwardFlops(s: TransformerShape, T: number): number {
  return 2 * matmulWeights(s) * T + 4 * s.layers * T * T * s.attnDim;
}

/** FLOPs of one training step (forward + backward) over one sequence of T tokens. */
export function trainStepFlops(s: TransformerShape, T: number): number {
  return 3 * forwardFlops(s, T);
}

// ---------------------------------------------------------------------------------------------------------------
// Peak

export interface Peaks {
  /** Best fp32 GFLOP/s a large square matmul reached here, over the frameworks measured. */
  measured: number;
  /** cores × clock × FLOP/cycle, when /proc/cpuinfo tells enough to derive it. */
  nominal?: number;
}

/**
 * GFLOP/s of an n × n × n fp32 matmul on the current tfjs backend (all cores: TensorFlow's own thread pool), over
 * at least a second of repetitions after a warm-up, so that small sizes are not timer noise.
 */
export function tfMatmulGflops(n: number): number {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  // The sum brings one number back, so the time is the product's, not a 4n² copy to JS.
  const once = () => tf.tidy(() => void tf.matMul(a, b).sum().dataSync());
  once();
  let reps = 0;
  const t0 = performance.now();
  do {
    once();
    reps += 1;
  } while (performance.now() - t0 < 1000 || reps < 3);
  const seconds = (performance.now() - t0) / reps / 1000;
  tf.dispose([a, b]);
  return (2 * n ** 3) / seconds / 1e9;
}

/**
 * The theoretical fp32 peak: physical cores × clock × FLOP/cycle, with FLOP/cycle = 2 FMA pipes × lanes × 2.
 * Two FMA pipes per core hold for Intel since Haswell and AMD since Zen 2 (a few AVX-512 Xeons have one 512-bit
 * pipe). AMD's AVX-512 (Zen 4) runs on 256-bit pipes, so it counts as 256 bits. The clock is cpuinfo_max_freq
 * when the kernel exposes it, else /proc/cpuinfo's "cpu MHz" (under a hypervisor, the nominal clock: turbo can
 * exceed it). Returns why not when it cannot be derived.
 */
export function nominalPeak(): { gflops: number; description: string } | string {
  if (!existsSync('/proc/cpuinfo')) return 'no /proc/cpuinfo';
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name: string) => [...info.matchAll(new RegExp(`^${name}\\s*: (.*)$`, 'gm'))].map((m) => m[1] ?? '');
  const flags = new Set((field('flags')[0] ?? '').split(' '));
  const vendor = field('vendor_id')[0];
  const bits =
    flags.has('avx512f') && vendor === 'GenuineIntel' ? 512 : flags.has('fma') && flags.has('avx2') ? 256 : 0;
  if (bits === 0) return 'no AVX2/AVX-512 FMA flags in /proc/cpuinfo';
  // Physical cores: SMT siblings share the FMA pipes.
  const ids = field('physical id').map((p, i) => `${p}:${field('core id')[i]}`);
  const cores = ids.length > 0 ? new Set(ids).size : os.cpus().length;
  const maxFreq = '/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq';
  const [ghz, clockSource] = existsSync(maxFreq)
    ? [Number(readFileSync(maxFreq, 'utf8')) / 1e6, 'max clock']
    : [Number(field('cpu MHz')[0]) / 1e3, 'cpu MHz'];
  if (!(ghz > 0)) return 'no clock frequency in /proc/cpuinfo';
  const perCycle = 2 * (bits / 32) * 2;
  return {
    gflops: cores * ghz * perCycle,
    description: `${cores} cores × ${ghz.toFixed(2)} GHz (${clockSource}) × ${perCycle} FLOP/cycle (2 × ${bits}-bit FMA pipes, assumed)`,
  };
}

/**
 * Measures the peaks once at the start of a bench and prints them: tfjs's matmul, PyTorch's torch.mm (when the
 * Python is there; its reason otherwise) and the nominal figure. BENCH_PEAK_N sets the matrix size (2048).
 */
export async function measurePeaks(): Promise<{ peaks: Peaks; torch: string | undefined }> {
  const n = Number(process.env.BENCH_PEAK_N ?? 2048);
  const tfjs = tfMatmulGflops(n);
  const torch = await runPythonJson<{ gflops: number }>('matmul_torch.py', [String(n)]);
  const nominal = nominalPeak();
  const measured = Math.max(tfjs, typeof torch === 'string' ? 0 : torch.gflops);
  console.log(
    `fp32 peak: ${n}³ matmul tfjs ${tfjs.toFixed(1)} GFLOP/s` +
      (typeof torch === 'string' ? '' : `, torch.mm ${torch.gflops.toFixed(1)} GFLOP/s`) +
      ` (measured peak ${measured.toFixed(1)})` +
      (typeof nominal === 'string'
        ? `; nominal peak not derived: ${nominal}`
        : `; nominal ${nominal.gflops.toFixed(1)} GFLOP/s = ${nominal.description}`),
  );
  const peaks: Peaks = { measured };
  if (typeof nominal !== 'string') peaks.nominal = nominal.gflops;
  return { peaks, torch: typeof torch === 'string' ? torch : undefined };
}

/** "41.2 GFLOP/s, 38% of measured peak, 26% of nominal" for `flops` done in `seconds`. */
export function achieved(flops: number, seconds: number, peaks: Peaks): string {
  const gflops = flops / seconds / 1e9;
  const pct = (peak: number) => `${((100 * gflops) / peak).toFixed(0)}%`;
  return (
    `${gflops.toFixed(1)} GFLOP/s, ${pct(peaks.measured)} of measured peak` +
    (peaks.nominal !== undefined ? `, ${pct(peaks.nominal)} of nominal` : '')
  );
}
