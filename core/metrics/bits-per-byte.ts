import * as tf from '@tensorflow/tfjs';
import type { CausalLM } from '../models/modeling-utils';
import type { TextTokenizer } from '../tokenizers/tokenizer';

/**
 * Bits per byte under lm-evaluation-harness's rolling loglikelihood (`loglikelihood_rolling`): every token of the
 * document is scored exactly once, in windows of at most `maxLength` tokens, the first conditioned on the harness's
 * prefix token (`harnessPrefixToken`). bits/byte = sum of NLL (nats) / UTF-8 bytes / ln 2 (the harness's
 * `bits_per_byte`).
 */

/**
 * The token lm-evaluation-harness's HF model (HFLM `prefix_token_id`, lm_eval/models/huggingface.py) puts before
 * a document's first window: `override` when given (the harness's `prefix_token_id` argument), else the tokenizer's
 * BOS token when it has one, else its EOS token. For SmolLM2 that is BOS `<|im_start|>` (1), not EOS `<|im_end|>`
 * (2); between the two, the sample corpus's test documents move by 1.7e-4 to 5.5e-3 in bits/byte, relative
 * (max_length 512; test/fixtures/lm-eval/smollm2-rolling.json, written by lm_eval itself).
 */
export function harnessPrefixToken(tokenizer: TextTokenizer, override?: number): number {
  if (override !== undefined) {
    if (!Number.isInteger(override) || override < 0) throw new Error(`prefix token ${override}: expected a token id`);
    return override;
  }
  const token = tokenizer.specialTokenId('bos_token') ?? tokenizer.specialTokenId('eos_token');
  if (token === undefined) {
    throw new Error(
      `${tokenizer.source}: the tokenizer names neither a bos_token nor an eos_token to start evaluation windows ` +
        'with, as lm-evaluation-harness would; give the prefix token id explicitly (--prefix-token)',
    );
  }
  return token;
}

/** lm_eval/utils.py `get_rolling_token_windows`: (input tokens, tokens to predict) pairs. */
export function getRollingTokenWindows(
  tokens: readonly number[],
  prefixToken: number,
  maxSeqLen: number,
  contextLen: number,
): [number[], number[]][] {
  if (!(1 <= contextLen && contextLen <= maxSeqLen))
    throw new Error(`need 1 <= context_len (${contextLen}) <= max_seq_len (${maxSeqLen})`);
  const windows: [number[], number[]][] = [];
  if (tokens.length === 0) return windows;
  const predLen = maxSeqLen - contextLen + 1; // +1: inputs are shifted one token from the predictions
  let predicted = 0;
  // The first window predicts every one of its tokens, conditioned on the prefix token.
  const firstSeqLen = Math.min(maxSeqLen, tokens.length);
  windows.push([[prefixToken, ...tokens.slice(0, firstSeqLen - 1)], tokens.slice(0, firstSeqLen)]);
  predicted += firstSeqLen;
  while (predicted < tokens.length) {
    const windowPredLen = Math.min(tokens.length - predicted, predLen);
    const windowEnd = predicted + windowPredLen;
    // windowEnd >= maxSeqLen + 1 here, so the slice start is never negative (Python would wrap it).
    windows.push([
      tokens.slice(windowEnd - maxSeqLen - 1, windowEnd - 1),
      tokens.slice(windowEnd - windowPredLen, windowEnd),
    ]);
    predicted += windowPredLen;
  }
  return windows;
}

/** lm_eval/utils.py `make_disjoint_window`: the context loses its overlap with the continuation. */
export function makeDisjointWindow([context, continuation]: [number[], number[]]): [number[], number[]] {
  return [context.slice(0, context.length - (continuation.length - 1)), continuation];
}

export interface ScoredWindow {
  /** Model input (length <= maxLength). */
  input: number[];
  /** The last `targets.length` positions of the input predict these tokens. */
  targets: number[];
}

/**
 * The model inputs the harness actually runs (HFLM `_loglikelihood_tokens`): (context + continuation), keep the
 * last maxLength + 1 tokens, drop the final one; the continuation is scored on the last positions.
 */
export function rollingWindows(tokens: readonly number[], prefixToken: number, maxLength: number): ScoredWindow[] {
  return getRollingTokenWindows(tokens, prefixToken, maxLength, 1)
    .map(makeDisjointWindow)
    .map(([context, continuation]) => {
      const all = [...context, ...continuation];
      return { input: all.slice(Math.max(0, all.length - (maxLength + 1)), -1), targets: continuation };
    });
}

export interface NllOptions {
  /** The harness's prefix token, which conditions the first window (see `harnessPrefixToken`). */
  prefixToken: number;
  maxLength: number;
  /** Windows per forward pass; every window but the first is maxLength long, so padding is rare. */
  batchSize?: number;
}

/** Per-token negative log-likelihoods (nats), in document order. */
export function tokenNlls(model: CausalLM, tokens: readonly number[], opts: NllOptions): Float64Array {
  const windows = rollingWindows(tokens, opts.prefixToken, opts.maxLength);
  const batchSize = opts.batchSize ?? 2;
  const out = new Float64Array(tokens.length);
  let filled = 0;
  for (let start = 0; start < windows.length; start += batchSize) {
    const batch = windows.slice(start, start + batchSize);
    const nll = batchNll(model, batch);
    for (const values of nll) {
      out.set(values, filled);
      filled += values.length;
    }
  }
  if (filled !== tokens.length) throw new Error(`scored ${filled} of ${tokens.length} tokens`);
  return out;
}

/**
 * One forward pass over right-padded windows. Causal attention means padding after a window's end cannot change
 * its logits. NLL = logsumexp(logits) - logit[target], gathered at the scored positions only.
 */
export function batchNll(model: CausalLM, batch: ScoredWindow[]): Float32Array[] {
  const T = Math.max(...batch.map((w) => w.input.length));
  const B = batch.length;
  const V = model.vocabSize;
  const ids = batch.map((w) => [...w.input, ...new Array<number>(T - w.input.length).fill(0)]);
  // Flat indices into (B*T) positions and (B*T*V) logits for every scored token.
  const rows: number[] = [];
  const cols: number[] = [];
  batch.forEach((w, b) => {
    const first = w.input.length - w.targets.length;
    w.targets.forEach((target, j) => {
      const row = b * T + first + j;
      rows.push(row);
      cols.push(row * V + target);
    });
  });
  const nll = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d(ids, [B, T], 'int32')).reshape([B * T, V]); // (B*T, V)
    const lse = tf.gather(tf.logSumExp(logits, -1), tf.tensor1d(rows, 'int32')); // (N,)
    const picked = tf.gather(logits.reshape([-1]), tf.tensor1d(cols, 'int32')); // (N,)
    return lse.sub(picked);
  });
  const values = nll.dataSync() as Float32Array;
  nll.dispose();
  const result: Float32Array[] = [];
  let offset = 0;
  for (const w of batch) {
    result.push(values.slice(offset, offset + w.targets.length));
    offset += w.targets.length;
  }
  return result;
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export interface BitsPerByte {
  nllNats: number;
  bytes: number;
  tokens: number;
  bitsPerByte: number;
}

/** Bits per byte of a tokenized document (tokens without special tokens, as the harness encodes it). */
export function bitsPerByte(model: CausalLM, text: string, tokens: readonly number[], opts: NllOptions): BitsPerByte {
  const nlls = tokenNlls(model, tokens, opts);
  let nllNats = 0;
  for (const v of nlls) nllNats += v; // float64 accumulation, as the harness sums Python floats
  const bytes = utf8Bytes(text);
  return { nllNats, bytes, tokens: tokens.length, bitsPerByte: nllNats / bytes / Math.LN2 };
}
