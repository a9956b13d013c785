import * as tf from '@tensorflow/tfjs';
import { bitsPerByte } from '../metrics/bits-per-byte';
import { customOp } from '../models/layers';
import type { CausalLM } from '../models/modeling-utils';
import { type AdamW, createAdamW } from './adamw';

/**
 * The TTT-NN inner loop: one AdamW step per chunk of a neighbor on the causal-LM loss, with the reference's
 * settings (torch.optim.AdamW defaults, weight decay 0.01, global-norm gradient clipping to 1.0, batch 1; see
 * `adamw.ts`), and an exact reset to the pretrained weights from an in-memory copy.
 */

export interface TTTOptions {
  /** 2e-5 for GPT-2, 5e-6 for GPT-Neo 1.3B in the paper. */
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global L2 norm the gradients are clipped to (torch.nn.utils.clip_grad_norm_). */
  maxGradNorm?: number;
  /**
   * Train with the checkpoint's dropout, as the reference does (`model.train()` before its steps; GPT-2's rates are
   * 0.1, GPT-Neo's 0). Default true; evaluation always runs without dropout.
   */
  dropout?: boolean;
  /**
   * Keep Adam's moments and step count across documents, as the reference does (its optimizer is built once per
   * process), for side-by-side checks against it. Default false: every document starts from a fresh optimizer, so
   * results do not depend on document order, worker or resumption.
   */
  carryOptimizer?: boolean;
}

/**
 * HF's causal-LM loss: mean cross-entropy of tokens 1..T-1 predicted from positions 0..T-2. ids: (B, T).
 *
 * The logits are (B*T, V) (50257 wide for GPT-2), so the loss is one custom-gradient op: autodiff through
 * logSumExp, a slice and a gather would make about ten extra passes over them (the max's mask, casts, pads, a
 * scatter); the closed form d/dlogits = (softmax - onehot(target)) * weight takes three. Every position is kept
 * and the last one of each row gets weight 0, which avoids copying the logits into a slice.
 */
export function causalLmLoss(model: CausalLM, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, T] = ids.shape;
    const N = B * T;
    const V = model.vocabSize;
    const logits = model.forward(ids).reshape<tf.Tensor2D>([N, V]); // (N, V)
    // Position t of row b predicts token t+1; the last position of each row predicts nothing.
    const targetsArr = new Int32Array(N);
    const weightsArr = new Float32Array(N);
    const idsArr = ids.dataSync();
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T - 1; t++) {
        targetsArr[b * T + t] = idsArr[b * T + t + 1] as number;
        weightsArr[b * T + t] = 1 / (B * (T - 1));
      }
    }
    const targets = tf.tensor1d(targetsArr, 'int32');
    const weights = tf.tensor1d(weightsArr, 'float32');
    const crossEntropy = customOp(([x]: [tf.Tensor2D], save) => {
      const lse = tf.logSumExp(x, -1); // (N,)
      const flat = tf.range(0, N, 1, 'int32').mul(tf.scalar(V, 'int32')).add(targets); // row * V + target
      const picked = tf.gather(x.reshape([-1]), flat); // (N,)
      // Everything the backward pass reads must be saved: the surrounding tidy disposes the rest.
      save([x, targets, weights]);
      return {
        value: lse.sub(picked).mul(weights).sum<tf.Scalar>(),
        gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => {
          const [xs, tgt, w] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
          const scale = w.mul(dy).expandDims<tf.Tensor2D>(1); // (N, 1)
          // (softmax - onehot(target)) * scale, with two (N, V) tensors alive rather than four: softmax * scale
          // everywhere, then (p - 1) * scale written at the targets. One fused Softmax kernel is cheaper than
          // exp(x - lse) on (N, V).
          const probs = tf.softmax(xs);
          const rows = tf.range(0, N, 1, 'int32');
          const atTargets = tf.gather(probs.reshape([-1]), rows.mul(tf.scalar(V, 'int32')).add(tgt));
          const scaled = probs.mul(scale);
          probs.dispose();
          const indices = tf.stack([rows, tgt], 1); // (N, 2)
          const grad = tf.tensorScatterUpdate(scaled, indices, atTargets.sub(1).mul(scale.reshape([-1])));
          scaled.dispose();
          return grad;
        },
      };
    });
    return crossEntropy(logits);
  });
}

/**
 * Everything the trainer's next step depends on: its weights, Adam's moments and step count, as float32 values
 * in the order of the model's variables (weights, then first moments, then second moments; no moments before the
 * first step). Restoring it continues training exactly where it was taken.
 */
export interface TrainerState {
  steps: number;
  tensors: Float32Array[];
}

export class TTTTrainer {
  private readonly vars: tf.Variable[];
  private readonly pretrained: tf.Tensor[];
  private readonly optimizer: AdamW;
  private readonly o: Required<TTTOptions>;

  constructor(
    readonly model: CausalLM,
    opts: TTTOptions,
  ) {
    this.o = {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
      maxGradNorm: 1.0,
      dropout: true,
      carryOptimizer: false,
      ...opts,
    };
    // Tied weights appear once: params holds each variable under one name.
    this.vars = [...new Set(model.params.values())];
    // The copy to reset to lives beside the weights, so a reset is a device-side assign, not a reload from disk.
    this.pretrained = this.vars.map((p) => tf.keep(p.clone()));
    this.optimizer = createAdamW(this.vars, this.o);
  }

  /** Number of optimizer steps since the last reset. */
  get steps(): number {
    return this.optimizer.steps;
  }

  /** Forgets Adam's moments and step count: every document starts from a fresh optimizer. */
  resetOptimizer(): void {
    this.optimizer.reset();
  }

  exportState(): TrainerState {
    const { m, v } = this.optimizer.exportMoments();
    return { steps: this.steps, tensors: [...this.vars.map((x) => x.dataSync() as Float32Array), ...m, ...v] };
  }

  /** Puts back a state that `exportState` took from a trainer of the same model. */
  importState(state: TrainerState): void {
    const n = this.vars.length;
    if (state.tensors.length !== n && state.tensors.length !== 3 * n) {
      throw new Error(`a trainer state of ${state.tensors.length} tensors does not fit a model of ${n} variables`);
    }
    this.vars.forEach((p, i) => {
      const values = state.tensors[i]!;
      if (values.length !== p.size) throw new Error(`state tensor of ${values.length} values for ${p.name}`);
      tf.tidy(() => p.assign(tf.tensor(values, p.shape, 'float32')));
    });
    if (state.tensors.length === 3 * n) {
      this.optimizer.importMoments(state.steps, state.tensors.slice(n, 2 * n), state.tensors.slice(2 * n));
    } else {
      this.optimizer.reset();
    }
  }

  /** Restores the pretrained weights exactly and (unless carryOptimizer) starts a fresh optimizer. */
  reset(): void {
    this.vars.forEach((p, i) => p.assign(this.pretrained[i] as tf.Tensor));
    if (!this.o.carryOptimizer) this.resetOptimizer();
  }

  /** One step on a chunk of token ids (length >= 2); returns the loss before the step. */
  step(chunk: readonly number[]): number {
    if (chunk.length < 2) throw new Error(`a training chunk needs at least 2 tokens, got ${chunk.length}`);
    const ids = tf.tensor2d([Array.from(chunk)], [1, chunk.length], 'int32');
    this.model.training = this.o.dropout;
    let value: tf.Scalar;
    let grads: tf.NamedTensorMap;
    try {
      ({ value, grads } = tf.variableGrads(() => causalLmLoss(this.model, ids), this.vars));
    } finally {
      this.model.training = false;
      ids.dispose();
    }
    this.optimizer.step(
      this.vars.map((p) => {
        const grad = grads[p.name];
        if (!grad) throw new Error(`no gradient for ${p.name}`);
        return grad;
      }),
    );
    const loss = value.dataSync()[0] as number;
    value.dispose();
    return loss;
  }

  /** Steps on each of `trainingChunks(tokens, maxLength)`; returns their losses. */
  trainOnTokens(tokens: readonly number[], maxLength: number): number[] {
    return trainingChunks(tokens, maxLength).map((chunk) => this.step(chunk));
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const x of this.pretrained) x.dispose();
  }
}

/**
 * The chunks TTT steps on: consecutive pieces of `maxLength` tokens (the last may be shorter). A final piece of a
 * single token has no next-token target (the reference would step on a NaN loss); it is left out.
 */
export function trainingChunks(tokens: readonly number[], maxLength: number): (readonly number[])[] {
  const chunks: (readonly number[])[] = [];
  for (let i = 0; i < tokens.length; i += maxLength) {
    const chunk = tokens.slice(i, i + maxLength);
    if (chunk.length >= 2) chunks.push(chunk);
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------------------------
// One test document, as the reference's TTT-NN loop runs it

export interface DocumentOptions {
  /** Training chunk and evaluation window length (1024 for GPT-2, 2048 for GPT-Neo). */
  maxLength: number;
  /** The harness's prefix token, which conditions the first evaluation window (`harnessPrefixToken`). */
  prefixToken: number;
  /** Windows per evaluation forward pass. */
  evalBatchSize?: number;
  /** Called after each neighbor (heartbeats, progress); `k` counts neighbors trained on so far. */
  onNeighbor?: (k: number, bitsPerByte: number) => void;
  /** Called once after the last neighbor, before the reset: further measurements of the trained model. */
  onTrained?: () => void;
  /**
   * Continue where a checkpoint was taken: its partial result (k = bitsPerByte.length - 1 neighbors done) and the
   * trainer's state at that point; the first k neighbors are neither trained on nor scored again.
   */
  resume?: { result: DocumentResult; state: TrainerState };
}

/** What `documentSteps` yields after each neighbor: k neighbors trained on, and the result so far. */
export interface DocumentProgress {
  k: number;
  result: DocumentResult;
}

export interface DocumentResult {
  /** bits/byte after training on the first k neighbors; index 0 is before any training. */
  bitsPerByte: number[];
  nllNats: number[];
  bytes: number;
  tokens: number;
  /** Mean training loss per neighbor (NaN for a neighbor too short to step on). */
  neighborLosses: number[];
  steps: number;
  /** Wall time in training steps and in evaluations of the document. */
  seconds: { training: number; evaluation: number };
}

/**
 * TTT-NN for one document: score it, then for each neighbor (nearest first) take one step per chunk and score it
 * again; finally restore the pretrained weights and a fresh optimizer, so that the next document starts clean.
 * Neighbor texts are token ids without special tokens, as the reference tokenizes them.
 */
export function runDocument(
  trainer: TTTTrainer,
  text: string,
  tokens: readonly number[],
  neighbors: readonly (readonly number[])[],
  opts: DocumentOptions,
): DocumentResult {
  const steps = documentSteps(trainer, text, tokens, neighbors, opts);
  for (let next = steps.next(); ; next = steps.next()) if (next.done === true) return next.value;
}

/**
 * `runDocument` one neighbor at a time: yields after each neighbor (k neighbors trained on so far, and the result
 * so far), so that an asynchronous caller can let its event loop run (heartbeats) and take checkpoints between
 * them. Returning early (`return()`) still resets the weights.
 */
export function* documentSteps(
  trainer: TTTTrainer,
  text: string,
  tokens: readonly number[],
  neighbors: readonly (readonly number[])[],
  opts: DocumentOptions,
): Generator<DocumentProgress, DocumentResult> {
  const evalOpts = { prefixToken: opts.prefixToken, maxLength: opts.maxLength, batchSize: opts.evalBatchSize };
  trainer.reset();
  const seconds = { training: 0, evaluation: 0 };
  const timed = <T>(part: keyof typeof seconds, work: () => T): T => {
    const t0 = performance.now();
    try {
      return work();
    } finally {
      seconds[part] += (performance.now() - t0) / 1000;
    }
  };
  const score = () => timed('evaluation', () => bitsPerByte(trainer.model, text, tokens, evalOpts));
  try {
    let result: DocumentResult;
    if (opts.resume) {
      trainer.importState(opts.resume.state);
      result = structuredClone(opts.resume.result);
      Object.assign(seconds, result.seconds);
      result.seconds = seconds;
    } else {
      const first = score();
      result = {
        bitsPerByte: [first.bitsPerByte],
        nllNats: [first.nllNats],
        bytes: first.bytes,
        tokens: first.tokens,
        neighborLosses: [],
        steps: 0,
        seconds,
      };
    }
    for (let i = result.bitsPerByte.length - 1; i < neighbors.length; i++) {
      const losses = timed('training', () => trainer.trainOnTokens(neighbors[i]!, opts.maxLength));
      result.neighborLosses.push(losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : NaN);
      const after = score();
      result.bitsPerByte.push(after.bitsPerByte);
      result.nllNats.push(after.nllNats);
      result.steps = trainer.steps;
      opts.onNeighbor?.(i + 1, after.bitsPerByte);
      yield { k: i + 1, result };
    }
    result.steps = trainer.steps;
    if (opts.onTrained) timed('evaluation', opts.onTrained);
    return result;
  } finally {
    trainer.reset();
  }
}
