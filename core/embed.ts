import * as tf from '@tensorflow/tfjs';
import { meanPool } from './models/bert';
import type { Encoder } from './models/modeling-utils';
import type { TextTokenizer } from './tokenizers/tokenizer';

/**
 * Document embeddings for the index: the encoder sees each text's first `maxLength` tokens (special tokens
 * included, as transformers' truncation), and the last hidden state is mean-pooled over non-padding tokens.
 * The reference's RoBERTa index uses plain mean pooling; sentence-transformers models (all-MiniLM-L6-v2) add L2
 * normalisation.
 */
export interface EmbedOptions {
  /** Defaults to the encoder's position limit (512 for BERT/RoBERTa). */
  maxLength?: number;
  normalize?: boolean;
  batchSize?: number;
}

export function embedTexts(
  encoder: Encoder,
  tokenizer: TextTokenizer,
  texts: string[],
  opts: EmbedOptions = {},
): Float32Array[] {
  const maxLength = Math.min(opts.maxLength ?? encoder.maxPositions, encoder.maxPositions);
  const batchSize = opts.batchSize ?? 16;
  const encoded = texts.map((t) => tokenizer.encodeBatch([t], maxLength).inputIds[0] as number[]);
  // Batch texts of similar length together so that little compute goes to padding; results keep input order.
  const order = encoded
    .map((_, i) => i)
    .sort((a, b) => (encoded[a] as number[]).length - (encoded[b] as number[]).length);
  const pad = tokenizer.specialTokenId('pad_token') ?? 0;
  const out = new Array<Float32Array>(texts.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const idx = order.slice(start, start + batchSize);
    const rows = idx.map((i) => encoded[i] as number[]);
    const T = Math.max(...rows.map((r) => r.length));
    const ids = rows.map((r) => [...r, ...new Array<number>(T - r.length).fill(pad)]);
    const mask = rows.map((r) => [...new Array<number>(r.length).fill(1), ...new Array<number>(T - r.length).fill(0)]);
    const pooled = tf.tidy(() => {
      const idsT = tf.tensor2d(ids, [rows.length, T], 'int32');
      const maskT = tf.tensor2d(mask, [rows.length, T], 'int32');
      return meanPool(encoder.forward(idsT, maskT), maskT, opts.normalize ?? false);
    });
    const data = pooled.dataSync() as Float32Array;
    const C = pooled.shape[1];
    pooled.dispose();
    idx.forEach((i, j) => (out[i] = data.slice(j * C, (j + 1) * C)));
  }
  return out;
}
