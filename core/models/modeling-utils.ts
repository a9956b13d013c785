import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';

/**
 * Pieces every architecture file shares: parameters kept as tf.Variables under their checkpoint names (so that
 * loading is key-for-key and TTT can train them), and the few layers whose math is identical across families.
 */

// ---------------------------------------------------------------------------------------------------------------
// Parameters

export class PretrainedModel {
  /** Trainable weights, keyed by the checkpoint's own tensor names (prefix included), so they save back as-is. */
  readonly params = new Map<string, tf.Variable>();

  constructor(
    readonly config: HfConfig,
    private readonly weights: TensorMap,
    /** Where the weights came from, for error messages. */
    private readonly source: string,
    /** Prefixes the checkpoint may put before our names (`bert.`, `roberta.`, ...); tried in order. */
    private readonly prefixes: string[] = [''],
  ) {}

  /** Registers the checkpoint tensor `name` as a trainable variable, asserting its shape. */
  protected param(name: string, shape: number[]): tf.Variable {
    const found = this.lookup(name);
    if (!found) {
      const candidates = this.prefixes.map((p) => `'${p}${name}'`).join(' or ');
      throw new Error(`${this.source}: tensor ${candidates} is missing (model_type ${this.config.model_type})`);
    }
    const [key, t] = found;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${this.source}: tensor ${key} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`,
      );
    }
    // No variable name: tfjs names must be unique per process, and several models may be loaded at once.
    const init = tf.tensor(t.data, shape, 'float32');
    const v = tf.variable(init, true);
    init.dispose();
    this.params.set(key, v);
    return v;
  }

  /** True when the checkpoint stores `name` (used for optional tensors such as an untied lm_head). */
  protected has(name: string): boolean {
    return this.lookup(name) !== undefined;
  }

  private lookup(name: string): [string, { shape: number[]; data: Float32Array }] | undefined {
    for (const prefix of this.prefixes) {
      const t = this.weights.get(prefix + name);
      if (t) return [prefix + name, t];
    }
    return undefined;
  }

  /** Frees the raw checkpoint arrays once every parameter has been registered. */
  protected releaseCheckpoint(): void {
    this.weights.clear();
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/** A decoder-only language model: token ids (B, T) to next-token logits (B, T, V). */
export interface CausalLM {
  readonly config: HfConfig;
  readonly params: Map<string, tf.Variable>;
  readonly vocabSize: number;
  /** Longest sequence the position embeddings allow. */
  readonly maxPositions: number;
  /** torch's train/eval mode: dropout is active only while true. */
  training: boolean;
  forward(inputIds: tf.Tensor2D): tf.Tensor3D;
  dispose(): void;
}

/** A bidirectional encoder: token ids and attention mask (B, T) to the last hidden state (B, T, C). */
export interface Encoder {
  readonly config: HfConfig;
  readonly params: Map<string, tf.Variable>;
  readonly hiddenSize: number;
  readonly maxPositions: number;
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, tokenTypeIds?: tf.Tensor2D): tf.Tensor3D;
  dispose(): void;
}

export type CausalLMClass = { fromCheckpoint(ckpt: HfCheckpoint): CausalLM };
export type EncoderClass = { fromCheckpoint(ckpt: HfCheckpoint): Encoder };

export function configNumber(config: HfConfig, ...keys: string[]): number {
  for (const key of keys) {
    const v = config[key];
    if (typeof v === 'number') return v;
  }
  throw new Error(`config.json (model_type ${config.model_type}) has none of ${keys.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Layers

/** torch.nn.LayerNorm over the last axis (biased variance, eps inside the square root). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(eps)))
    .mul(weight)
    .add(bias);
}

/** torch.nn.Linear: weight is (out, in) as stored, y = x W^T + b. */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const inF = shape[shape.length - 1] as number;
  const outF = weight.shape[0];
  let y = tf.matMul(x.reshape([-1, inF]), weight, false, true);
  if (bias) y = y.add(bias);
  return y.reshape([...shape.slice(0, -1), outF]);
}

/** GPT-2's Conv1D: weight is (in, out), y = x W + b. */
export function conv1d(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const inF = shape[shape.length - 1] as number;
  const outF = weight.shape[1] as number;
  return tf
    .matMul(x.reshape([-1, inF]), weight as tf.Tensor2D)
    .add(bias)
    .reshape([...shape.slice(0, -1), outF]);
}

/** "gelu_new" / "gelu_pytorch_tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  // x*x*x rather than pow(x, 3): pow's gradient also differentiates the exponent, a wasted pass over the MLP.
  const inner = x.add(x.mul(x).mul(x).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
  return x.mul(0.5).mul(tf.tanh(inner).add(1));
}

/** Exact "gelu": 0.5 x (1 + erf(x / sqrt 2)). */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1));
}

export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return geluTanh;
    case 'gelu':
      return geluErf;
    case 'relu':
      return (x) => tf.relu(x);
    default:
      throw new Error(`unsupported activation function ${name}`);
  }
}

/**
 * nn.Embedding: the rows of `weight` (V, C) at `ids` (any shape), giving (...ids.shape, C). The gradient is written
 * out as a scatter-add of dy into (V, C): tf.gather's own gradient is an UnsortedSegmentSum, a kernel the WASM
 * backend does not have (and the pure-JS backend runs in O(V·N·C)). ScatterNd sums repeated ids as that does, on
 * every backend, and takes the same time on native TensorFlow (GPT-2's 50257 x 768 table, 1024 ids: ~0.5 s both).
 */
export function embedding(weight: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  const lookup = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const w = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    // The ids are not an input of the custom op (they get no gradient), so they are saved for the backward pass.
    save([ids]);
    return {
      value: tf.gather(w, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [V, C] = w.shape as [number, number];
        const idx = (saved[0] as tf.Tensor).reshape<tf.Tensor2D>([-1, 1]); // (N, 1)
        return tf.scatterND(idx, dy.reshape([-1, C]), [V, C]); // (V, C)
      },
    };
  });
  return lookup(weight);
}

/**
 * Next-token logits x W^T for hidden states x (B, T, C) and the output embedding W (V, C), giving (B, T, V).
 * Written as (W x^T)^T because oneDNN runs the two products very differently at a vocabulary's width: for SmolLM2
 * (V = 49152, C = 576, 1024 tokens) x W^T takes ~1.2 s and W x^T ~0.4 s, and the transpose back ~0.2 s
 * (docs/engine-performance.md).
 */
export function outputLogits(x: tf.Tensor3D, weight: tf.Tensor2D): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const V = weight.shape[0];
  return tf
    .matMul(weight, x.reshape([B * T, C]), false, true)
    .transpose()
    .reshape([B, T, V]);
}

/** Additive attention bias (T, T): 0 where query i may attend key j (j <= i, and i - j < window), else -1e9. */
export function causalBias(T: number, window?: number): tf.Tensor2D {
  return tf.tidy(() => {
    const allowed = tf.linalg.bandPart(tf.ones([T, T]), window === undefined ? -1 : window - 1, 0);
    return tf.sub(1, allowed).mul<tf.Tensor2D>(-1e9);
  });
}

/** Splits (B, T, nh*hs) into heads (B, nh, T, hs). */
export function splitHeads(x: tf.Tensor, nHead: number): tf.Tensor4D {
  const [B, T, C] = x.shape as [number, number, number];
  return x.reshape([B, T, nHead, C / nHead]).transpose([0, 2, 1, 3]);
}

/** Merges heads (B, nh, T, hs) back into (B, T, nh*hs). */
export function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [B, nh, T, hs] = x.shape as [number, number, number, number];
  return x.transpose([0, 2, 1, 3]).reshape([B, T, nh * hs]);
}

/**
 * Dropout as torch applies it in train mode (zero with probability `rate`, scale survivors by 1 / (1 - rate)).
 * The reference runs TTT steps with `model.train()`, so the checkpoint's dropout rates apply during TTT only.
 */
export type Dropout = (x: tf.Tensor, rate: number) => tf.Tensor;
export const noDropout: Dropout = (x) => x;
export function dropoutFor(training: boolean): Dropout {
  return training ? (x, rate) => (rate > 0 ? x.mul(dropoutMask(x.shape, rate)) : x) : noDropout;
}

/** Seeds the dropout masks: the same seed gives the same masks, so a document's training is reproducible. */
export function seedDropout(seed: number): void {
  rngState = seed >>> 0 || 1;
}

/** Where the dropout generator is: `seedDropout(dropoutState())` later continues the same sequence of masks. */
export function dropoutState(): number {
  return rngState;
}

/**
 * A float mask of 0 (probability `rate`) and 1 / (1 - rate), made in JS with a xorshift generator. tf.dropout draws
 * its uniforms with tfjs's JS Alea generator one value at a time: about 10 s of a GPT-2-small TTT step at 1024
 * tokens (12 x 12 x 1024^2 attention entries), against well under a second here.
 */
let rngState = (Math.random() * 2 ** 32) >>> 0 || 1;

export function dropoutMask(shape: number[], rate: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const mask = new Float32Array(n);
  const keep = 1 / (1 - rate);
  // Compare 32-bit draws with an integer threshold: P(draw < threshold) = rate.
  const threshold = Math.floor(rate * 2 ** 32);
  let s = rngState;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    mask[i] = s >>> 0 < threshold ? 0 : keep;
  }
  rngState = s;
  return tf.tensor(mask, shape, 'float32');
}

/** softmax(q k^T * scale + bias) v for (B, nh, T, hs) inputs; `bias` broadcasts to (B, nh, T, T). */
export function attention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  bias: tf.Tensor,
  drop: Dropout = noDropout,
  dropRate = 0,
): tf.Tensor4D {
  // Scaling q (B, nh, T, hs) rather than the scores (B, nh, T, T): a T/hs times smaller multiply, and the tape
  // then keeps no extra T x T tensor for its gradient. Rounding differs from HF's (q k^T) * scale by ~1 ulp.
  const qs = scale === 1 ? q : q.mul(scale);
  const att = drop(tf.softmax(headMatMul(qs as tf.Tensor4D, k, true).add(bias)), dropRate); // (B, nh, T, T)
  return headMatMul(att as tf.Tensor4D, v, false); // (B, nh, T, hs)
}

/**
 * Batched a · b (transposeB: a · b^T) for attention's products, where one operand is (.., T, T) wide and the
 * other (.., T, hs) narrow, with the gradient of b written out. tf.matMul's own gradient computes it as a^T · dy
 * (or dy^T · a), a product with the wide operand transposed that oneDNN runs at half speed: for SmolLM2's
 * (3, 3072, 1024) x (3, 3072, 64) about 50 ms, against 26 ms for the transpose of the product with the narrow
 * operand transposed (docs/engine-performance.md). The result and both gradients are the same sums.
 */
function headMatMul(a: tf.Tensor4D, b: tf.Tensor4D, transposeB: boolean): tf.Tensor4D {
  const product = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, y] = args as [tf.Tensor4D, tf.Tensor4D];
    (args[2] as tf.GradSaveFunc)([x, y]);
    return {
      value: tf.matMul(x, y, false, transposeB),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ys] = saved as [tf.Tensor4D, tf.Tensor4D];
        const d = dy as tf.Tensor4D;
        const dx = tf.matMul(d, ys, false, !transposeB);
        // c = x y: dy = (dc^T x)^T; c = x y^T: dy = dc^T x = (x^T dc)^T.
        const dyT = transposeB ? tf.matMul(xs, d, true, false) : tf.matMul(d, xs, true, false);
        return [dx, dyT.transpose([0, 1, 3, 2])];
      },
    };
  });
  return product(a, b) as tf.Tensor4D;
}
