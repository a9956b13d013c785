import * as tf from '@tensorflow/tfjs';
import { type KernelAttrs, OneDnnKernel } from '../native-tensorflow';
import type { ParamScope } from './modeling-utils';

/**
 * The layers every architecture file shares, in one place: modules that register their parameters under the
 * checkpoint's names (LayerNorm, Linear, ...), the functions they compute, rotary position embeddings, dropout and
 * attention. Each matches the torch / transformers layer it is named after.
 */

// ---------------------------------------------------------------------------------------------------------------
// Modules: each takes its checkpoint scope and registers its tensors by their names (`weight`, `bias`)

/** torch.nn.LayerNorm(size) over the last axis. */
export class LayerNorm {
  readonly weight: tf.Variable; // (size)
  readonly bias: tf.Variable; // (size)
  constructor(
    p: ParamScope,
    size: number,
    readonly eps: number,
  ) {
    this.weight = p.param('weight', [size]);
    this.bias = p.param('bias', [size]);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** LlamaRMSNorm(size): a gain, no bias. */
export class RMSNorm {
  readonly weight: tf.Variable; // (size)
  constructor(
    p: ParamScope,
    size: number,
    readonly eps: number,
  ) {
    this.weight = p.param('weight', [size]);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** torch.nn.Linear(inFeatures, outFeatures, bias): weight stored (out, in). */
export class Linear {
  readonly weight: tf.Variable; // (out, in)
  readonly bias?: tf.Variable; // (out)
  constructor(p: ParamScope, inFeatures: number, outFeatures: number, bias = true) {
    this.weight = p.param('weight', [outFeatures, inFeatures]);
    if (bias) this.bias = p.param('bias', [outFeatures]);
  }
  /** act: the activation applied to the output, if any (fused into the product where it can be). */
  forward(x: tf.Tensor, act?: Activation): tf.Tensor {
    return linear(x, this.weight, this.bias, act);
  }
}

/** GPT-2's Conv1D(inFeatures, outFeatures): a linear layer with its weight stored (in, out). */
export class Conv1D {
  readonly weight: tf.Variable; // (in, out)
  readonly bias: tf.Variable; // (out)
  constructor(p: ParamScope, inFeatures: number, outFeatures: number) {
    this.weight = p.param('weight', [inFeatures, outFeatures]);
    this.bias = p.param('bias', [outFeatures]);
  }
  forward(x: tf.Tensor, act?: Activation): tf.Tensor {
    return conv1d(x, this.weight, this.bias, act);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Functions

/**
 * torch.nn.LayerNorm over the last axis (biased variance, eps inside the square root). One op with its gradient
 * written out: the tape keeps x (and the gain), and the backward pass recomputes the mean and variance. Its forward
 * on native CPU TensorFlow is oneDNN's layer norm, one kernel where tfjs ops take nine passes over the activations
 * (MiniLM's (4096, 384): 4.0 against 9.6 ms, measured; docs/engine-performance.md); elsewhere it is tfjs ops.
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const op = customOp(([xa, w, b]: [tf.Tensor, tf.Tensor, tf.Tensor], save) => {
    save([xa, w]);
    return {
      value: oneDnnLayerNorm(xa, w, b, eps) ?? normalize(xa, eps).mul(w).add(b),
      gradFunc: (dy, saved) => {
        const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
        const { mean, variance } = tf.moments(xs, -1, true);
        const r = tf.rsqrt(variance.add(eps));
        const normed = xs.sub(mean).mul(r);
        const dNormed = dy.mul(ws);
        // d((x - mean) r)/dx applied to dNormed: r (dn - mean(dn) - n mean(dn n))
        const dx = dNormed
          .sub(dNormed.mean(-1, true))
          .sub(normed.mul(dNormed.mul(normed).mean(-1, true)))
          .mul(r);
        // Summed over every axis but the last, as tfjs's Mul and Add gradients reduce a broadcast operand.
        const axes = [...Array(dy.rank - 1).keys()];
        return [dx, dy.mul(normed).sum(axes), dy.sum(axes)];
      },
    };
  });
  return op(x, weight, bias);
}

/** (x - mean) / sqrt(var + eps) over the last axis. */
function normalize(x: tf.Tensor, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(eps)));
}

const MKL_LAYER_NORM = new OneDnnKernel('_MklLayerNorm', '');

/**
 * Which of oneDNN's kernels have run in this process: true once one has, false where it is not available, undefined
 * before its first call on native CPU TensorFlow (and on every other backend).
 */
export function oneDnnKernelsRun(): Record<
  'layerNorm' | 'linear' | 'attentionScores' | 'softmax',
  boolean | undefined
> {
  return {
    layerNorm: MKL_LAYER_NORM.ran,
    linear: MKL_LINEAR.ran,
    attentionScores: MKL_SCORES.ran,
    softmax: MKL_SOFTMAX.ran,
  };
}

/**
 * oneDNN's layer norm (`_MklLayerNorm`) on native CPU TensorFlow, or undefined where it is not available. The
 * kernel takes 2-D or 3-D input, so x is viewed as (rows, C).
 */
function oneDnnLayerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor | undefined {
  const C = x.shape[x.rank - 1] as number;
  const attrs: KernelAttrs = (t) => [{ name: 'epsilon', type: t.TF_ATTR_FLOAT, value: eps }];
  return MKL_LAYER_NORM.run(attrs, [x.reshape([-1, C]), weight, bias])?.reshape(x.shape);
}

/**
 * tf.customGrad for an op of tensor inputs whose gradient is written out, with that gradient run in a tidy: tfjs
 * calls a custom gradient outside any scope, so its temporaries would otherwise live until the whole backward pass
 * ends. `save` keeps what the backward pass reads (everything else the forward computes is freed with its scope).
 * Annotate the inputs, and `dy` when the output is a narrower type than tf.Tensor (TypeScript settles the output
 * type from `dy` before it reads `value`).
 */
export function customOp<I extends tf.Tensor[], T extends tf.Tensor>(
  op: (
    inputs: I,
    save: tf.GradSaveFunc,
  ) => { value: T; gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
): (...inputs: I) => T {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc; // tfjs passes it after the inputs
    const { value, gradFunc } = op(args as I, save);
    return { value, gradFunc: (dy: T, saved: tf.Tensor[]) => tf.tidy(() => gradFunc(dy, saved)) };
  });
}

/**
 * LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias). One op with its gradient
 * written out: built from tfjs ops, the tape kept four (T, C) tensors per norm (x^2, its mean's input, x r and the
 * product); this keeps x and r = rsqrt(mean(x^2) + eps), one value per position.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const op = customOp(([xa, w]: [tf.Tensor, tf.Tensor], save) => {
    const r = tf.rsqrt(xa.square().mean(-1, true).add(eps)); // (..., 1)
    save([xa, w, r]);
    return {
      value: xa.mul(r).mul(w),
      gradFunc: (dy, saved) => {
        const [xs, ws, rs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dNormed = dy.mul(ws);
        // Summed over every axis but the last, as tfjs's Mul gradient reduces a broadcast operand.
        const dWeight = dy.mul(xs.mul(rs)).sum([...Array(dy.rank - 1).keys()]);
        // d(x_j r)/dx_i = r [i = j] - x_i x_j r^3 / C
        const dx = dNormed.mul(rs).sub(xs.mul(rs.pow(3)).mul(dNormed.mul(xs).mean(-1, true)));
        return [dx, dWeight];
      },
    };
  });
  return op(x, weight);
}

/** torch.nn.Linear: weight is (out, in) as stored, y = act(x W^T + b) (act: the layer's activation, if any). */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor, act?: Activation): tf.Tensor {
  return productOverLastAxis(x, weight, true, bias, act);
}

/** GPT-2's Conv1D: weight is (in, out), y = act(x W + b). */
export function conv1d(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, act?: Activation): tf.Tensor {
  return productOverLastAxis(x, weight, false, bias, act);
}

/**
 * x (..., in) times the weight, plus the bias, through the activation. Where tfjs records no gradients (inference:
 * embeddings, bits/byte) on native CPU TensorFlow it is one oneDNN kernel, the bias add and the activation as its
 * post-ops (two to six fewer passes over the output); training keeps tfjs ops, whose gradients tfjs knows.
 */
function productOverLastAxis(
  x: tf.Tensor,
  weight: tf.Tensor,
  transposeWeight: boolean,
  bias?: tf.Tensor,
  act?: Activation,
): tf.Tensor {
  const shape = x.shape;
  const x2 = x.reshape([-1, shape[shape.length - 1] as number]);
  const outF = weight.shape[transposeWeight ? 0 : 1] as number;
  let y = bias && !tf.engine().isTapeOn() ? oneDnnLinear(x2, weight, transposeWeight, bias, act) : undefined;
  if (!y) {
    y = tf.matMul(x2, weight, false, transposeWeight);
    if (bias) y = y.add(bias);
    if (act) y = act(y);
  }
  return y.reshape([...shape.slice(0, -1), outF]);
}

const MKL_LINEAR = new OneDnnKernel('_MklNativeFusedMatMul', 'MklNameChangeOp');

function oneDnnLinear(
  x: tf.Tensor,
  weight: tf.Tensor,
  transposeWeight: boolean,
  bias: tf.Tensor,
  act?: Activation,
): tf.Tensor | undefined {
  if (act && !act.fusedOp) return undefined;
  const attrs: KernelAttrs = (t) => [
    { name: 'transpose_a', type: t.TF_ATTR_BOOL, value: false },
    { name: 'transpose_b', type: t.TF_ATTR_BOOL, value: transposeWeight },
    { name: 'num_args', type: t.TF_ATTR_INT, value: 1 },
    { name: 'fused_ops', type: t.TF_ATTR_STRING, value: act?.fusedOp ? ['BiasAdd', act.fusedOp] : ['BiasAdd'] },
  ];
  return MKL_LINEAR.run(attrs, [x, weight, bias]);
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

/** An activation function, with the oneDNN post-op that computes the same inside a matmul (linear, conv1d). */
export type Activation = ((x: tf.Tensor) => tf.Tensor) & {
  readonly fusedOp?: 'GeluApproximate' | 'GeluExact' | 'Relu';
};

const GELU_TANH: Activation = Object.assign((x: tf.Tensor) => geluTanh(x), { fusedOp: 'GeluApproximate' as const });
const GELU_ERF: Activation = Object.assign((x: tf.Tensor) => geluErf(x), { fusedOp: 'GeluExact' as const });
const RELU: Activation = Object.assign((x: tf.Tensor) => tf.relu(x), { fusedOp: 'Relu' as const });

export function activation(name: string): Activation {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return GELU_TANH;
    case 'gelu':
      return GELU_ERF;
    case 'relu':
      return RELU;
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
  const lookup = customOp(([w]: [tf.Tensor], save) => {
    // The ids are not an input of the custom op (they get no gradient), so they are saved for the backward pass.
    save([ids]);
    return {
      value: tf.gather(w, ids),
      gradFunc: (dy, saved) => {
        const [V, C] = w.shape as [number, number];
        const idx = saved[0]!.reshape<tf.Tensor2D>([-1, 1]); // (N, 1)
        return tf.scatterND(idx, dy.reshape([-1, C]), [V, C]); // (V, C)
      },
    };
  });
  return lookup(weight);
}

/**
 * Runs a model's blocks in order, each in its own tidy: what a block computes and the tape does not save is freed
 * when the block ends instead of when the whole forward pass ends (for SmolLM2 at 512 tokens, 0.3 GiB of
 * transposes, rotary terms and norms alive at once at the end of a TTT step's forward pass).
 */
export function runBlocks<Block, X extends tf.Tensor>(
  x: X,
  blocks: readonly Block[],
  forward: (block: Block, x: X) => X,
): X {
  return blocks.reduce((h, block) => tf.tidy(() => forward(block, h)), x);
}

/**
 * Llama's gated MLP activation silu(gate) * up as one op. Built from tfjs ops, the tape kept five (T, I) tensors per
 * layer (gate, sigmoid(gate), their product, up and the result's inputs); this keeps gate and up and recomputes the
 * sigmoid in the backward pass. The gradient sums are the ones tfjs's Mul and Sigmoid gradients compute.
 */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  const op = customOp(([g, u]: [tf.Tensor, tf.Tensor], save) => {
    save([g, u]);
    return {
      value: g.mul(tf.sigmoid(g)).mul(u),
      gradFunc: (dy, saved) => {
        const [gs, us] = saved as [tf.Tensor, tf.Tensor];
        const sig = tf.sigmoid(gs);
        const dSilu = dy.mul(us);
        // d/dg (g s) = s + g s (1 - s)
        const dGate = dSilu.mul(sig).add(dSilu.mul(gs).mul(sig.mul(tf.sub(1, sig))));
        return [dGate, dy.mul(gs.mul(sig))];
      },
    };
  });
  return op(gate, up);
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

// ---------------------------------------------------------------------------------------------------------------
// Rotary position embeddings (GPT-NeoX, Llama)

/**
 * cos and sin tables (T, dims): angle(t, i) = t * theta^(-2i/dims) for i < dims/2, repeated for the second half
 * (transformers' `inv_freq`, computed here rather than read from a checkpoint buffer).
 */
export function rotaryTables(T: number, dims: number, theta: number): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const invFreq = tf.tensor1d(
      Array.from({ length: dims / 2 }, (_, i) => 1 / theta ** ((2 * i) / dims)),
      'float32',
    );
    const freqs = tf.outerProduct(tf.range(0, T, 1, 'float32'), invFreq); // (T, dims/2)
    const emb = tf.concat([freqs, freqs], -1); // (T, dims)
    return [tf.cos(emb), tf.sin(emb)];
  });
}

/**
 * x*cos + rotate_half(x)*sin on the first `dims` channels of (B, heads, T, hs), rotate_half(x) = [-x2, x1]; the
 * other hs - dims channels pass through (GPT-NeoX's partial_rotary_factor; Llama rotates whole heads).
 */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D, dims = x.shape[3]): tf.Tensor4D {
  const hs = x.shape[3];
  if (dims === hs) return rotateHalf(x, cos, sin);
  const [rot, pass] = tf.split(x, [dims, hs - dims], -1) as [tf.Tensor4D, tf.Tensor4D];
  return tf.concat<tf.Tensor4D>([rotateHalf(rot, cos, sin), pass], -1);
}

function rotateHalf(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, -1);
  const rotated = tf.concat([tf.neg(x2 as tf.Tensor), x1 as tf.Tensor], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

// ---------------------------------------------------------------------------------------------------------------
// Dropout

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

// ---------------------------------------------------------------------------------------------------------------
// Attention

/**
 * The largest attention probabilities (B * nh * T * T values) kept from the forward pass for the backward one:
 * 4M values, 16 MB a layer, holds SmolLM2's scores up to 512 tokens (the chunk length TTT-NN trains on) and GPT-2's
 * up to 512; above it P is recomputed, which costs a matmul, a mask add and a softmax per layer (6% of a
 * 512-token SmolLM2 step, measured), so that a long step's memory does not grow by T^2 per layer.
 */
export const SAVED_PROBS_LIMIT = 4 * 1024 * 1024;

/**
 * softmax(q k^T * scale + bias) v for (B, nh, T, hs) inputs; `bias` broadcasts to (B, nh, T, T).
 *
 * One op with its gradient written out, for memory and speed:
 *   - The tape keeps q, k and v (and the dropout mask when dropout is on), and P = softmax(q k^T + bias) only up
 *     to SAVED_PROBS_LIMIT values; a larger P is recomputed in the backward pass, one layer at a time. Built from
 *     tfjs ops, the tape kept two T x T tensors per layer (the scores, which Add saves, and P) and the backward
 *     pass made three more: for SmolLM2 at 1024 tokens P alone is 36 MiB a layer, 1.1 GiB over 30 layers.
 *   - On native CPU TensorFlow the scores are one oneDNN kernel (product, scale and bias add) and the softmax
 *     oneDNN's (attentionProbs).
 *   - The gradients of the narrow operand (v in P v, k in q k^T) are computed as the transpose of the product with
 *     the narrow operand transposed: tf.matMul's gradient computes them with the wide operand transposed, which
 *     oneDNN runs at half speed (SmolLM2's (3, 3072, 1024) x (3, 3072, 64): ~50 ms against 26 ms;
 *     docs/engine-performance.md).
 * The sums are the ones tfjs's Softmax, Add, Mul and MatMul gradients compute, in the same order.
 */
export function attention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  bias: tf.Tensor,
  drop: Dropout = noDropout,
  dropRate = 0,
): tf.Tensor4D {
  const fused = customOp(([qa, ka, va]: [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D], save) => {
    const probs = attentionProbs(qa, ka, scale, bias); // (B, nh, T, T)
    // The dropout mask as `drop` draws it (same generator, same order), kept for the backward pass.
    const kept = dropRate > 0 && drop !== noDropout ? drop(tf.onesLike(probs), dropRate) : undefined;
    // P itself is kept when it is small; a large one is recomputed in the backward pass from q, k and the bias
    // (one tensor shared by every layer), so that a long step's memory does not grow with T^2 per layer.
    const keepProbs = probs.size <= SAVED_PROBS_LIMIT;
    save([qa, ka, va, keepProbs ? probs : bias, ...(kept ? [kept] : [])]);
    return {
      value: tf.matMul<tf.Tensor4D>(kept ? probs.mul(kept) : probs, va), // (B, nh, T, hs)
      gradFunc: (d: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [qs, ks, vs, probsOrBias, m] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor, tf.Tensor4D?];
        // The forward's P, saved or recomputed.
        const p = keepProbs ? probsOrBias : attentionProbs(qs, ks, scale, probsOrBias);
        const att = m ? p.mul(m) : p;
        const dv = tf.matMul(d, att, true, false).transpose([0, 1, 3, 2]); // (d^T att)^T = att^T d
        const dAtt = tf.matMul(d, vs, false, true);
        const dProbs = m ? dAtt.mul(m) : dAtt;
        const dyTimesY = dProbs.mul(p); // softmax's gradient: dy y - sum(dy y) y
        const dScores = dyTimesY.sub(dyTimesY.sum(-1, true).mul(p));
        // The scale applied to the narrow operands (T x hs), not to the T x T scores.
        const dq = tf.matMul(dScores, ks);
        const dk = tf.matMul(scaled(qs, scale), dScores, true, false).transpose([0, 1, 3, 2]); // (q^T dS)^T = dS^T q
        return [scaled(dq, scale), dk, dv];
      },
    };
  });
  return fused(q, k, v);
}

function scaled<T extends tf.Tensor>(x: T, scale: number): T {
  return scale === 1 ? x : x.mul<T>(scale);
}

const MKL_SCORES = new OneDnnKernel('_MklFusedBatchMatMulV2', '');
const MKL_SOFTMAX = new OneDnnKernel('_MklSoftmax', 'MklNameChangeOp');

/**
 * P = softmax(q k^T * scale + bias). On native CPU TensorFlow the scores are one oneDNN kernel (the product with
 * the scale and the bias add as its post-ops: two fewer passes over the T x T scores) and the softmax is oneDNN's;
 * elsewhere tfjs ops, q scaled before the product (a T/hs times smaller multiply).
 */
function attentionProbs(q: tf.Tensor4D, k: tf.Tensor4D, scale: number, bias: tf.Tensor): tf.Tensor4D {
  const scores = oneDnnScores(q, k, scale, bias) ?? tf.matMul(scaled(q, scale), k, false, true).add(bias);
  return (MKL_SOFTMAX.run(() => [], [scores]) ?? tf.softmax(scores)) as tf.Tensor4D;
}

function oneDnnScores(q: tf.Tensor4D, k: tf.Tensor4D, scale: number, bias: tf.Tensor): tf.Tensor | undefined {
  const [B, H, X, hs] = q.shape;
  const T = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== H) return undefined;
  // The kernel's bias add takes a 4-D bias broadcast along its unit axes (a 2-D one crashes the process), so any
  // other shape stays with tfjs.
  const bias4d = [...Array<number>(Math.max(0, 4 - bias.rank)).fill(1), ...bias.shape];
  if (bias4d.length !== 4 || bias4d.some((n, i) => n !== 1 && n !== [B, H, X, T][i])) return undefined;
  // Broadcast along the batch axis it runs on oneDNN's reference kernel, ~100x slower (a causal mask over a batch
  // of windows: 0.5-1.3 s against 5-23 ms for tfjs ops): the batch is folded into the head axis, where broadcasting is fast.
  const fold = B > 1 && bias4d[0] === 1;
  if (fold && bias4d[1] !== 1) return undefined;
  const [qa, ka] = fold ? [q.reshape([1, B * H, X, hs]), k.reshape([1, B * H, T, hs])] : [q, k];
  const attrs: KernelAttrs = (t) => [
    { name: 'adj_x', type: t.TF_ATTR_BOOL, value: false },
    { name: 'adj_y', type: t.TF_ATTR_BOOL, value: true },
    { name: 'num_args', type: t.TF_ATTR_INT, value: 2 },
    { name: 'fused_ops', type: t.TF_ATTR_STRING, value: ['Mul', 'Add'] },
  ];
  return MKL_SCORES.run(attrs, [qa, ka, tf.scalar(scale), bias.reshape(bias4d)])?.reshape([B, H, X, T]);
}
