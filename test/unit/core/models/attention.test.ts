import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { attention, causalBias, oneDnnKernelsRun, SAVED_PROBS_LIMIT } from '../../../../core/models/layers';
import { seededRandom } from '../../../../core/seeded-random';
import { maxRelDiff } from '../../../helpers/parity';
import { randomTensor } from '../../../helpers/random-tensor';

/**
 * `attention`'s written-out gradient against tfjs's autodiff of the plain formula, softmax(q k^T s + bias) v, on both
 * of its paths: scores small enough that the forward's P is kept for the backward pass, and scores above
 * SAVED_PROBS_LIMIT, whose P the backward pass recomputes.
 */

/** `bias`: the causal mask (T, T) by default, as the decoders pass it. */
function compare(
  nh: number,
  T: number,
  B = 1,
  makeBias: () => tf.Tensor = () => causalBias(T),
): { probsSize: number; diffs: number[] } {
  const next = seededRandom(T);
  const hs = 8;
  const scale = 1 / Math.sqrt(hs);
  return tf.tidy(() => {
    const [q, k, v, dy] = [0, 1, 2, 3].map(() => randomTensor([B, nh, T, hs], next) as tf.Tensor4D) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const bias = makeBias();
    const plain = (qa: tf.Tensor, ka: tf.Tensor, va: tf.Tensor) =>
      tf.matMul(tf.softmax(tf.matMul(qa.mul(scale), ka, false, true).add(bias)), va);
    const fused = (qa: tf.Tensor, ka: tf.Tensor, va: tf.Tensor) =>
      attention(qa as tf.Tensor4D, ka as tf.Tensor4D, va as tf.Tensor4D, scale, bias);
    const expected = tf.grads(plain)([q, k, v], dy);
    const actual = tf.grads(fused)([q, k, v], dy);
    const diffs = [maxRelDiff(fused(q, k, v), plain(q, k, v)), ...actual.map((g, i) => maxRelDiff(g, expected[i]!))];
    return { probsSize: B * nh * T * T, diffs };
  });
}

describe('attention', () => {
  beforeAll(async () => {
    await initBackend({ log: () => undefined });
  });

  it('matches autodiff when P is kept from the forward pass', () => {
    const { probsSize, diffs } = compare(3, 48);
    expect(probsSize).toBeLessThanOrEqual(SAVED_PROBS_LIMIT);
    for (const d of diffs) expect(d).toBeLessThan(1e-5); // output, dq, dk, dv
  });

  it('matches autodiff when P is recomputed in the backward pass', () => {
    const { probsSize, diffs } = compare(4, 1040);
    expect(probsSize).toBeGreaterThan(SAVED_PROBS_LIMIT);
    for (const d of diffs) expect(d).toBeLessThan(1e-5);
  });

  it('matches autodiff on a batch of sequences under one causal mask, as bits/byte batches windows', () => {
    const { diffs } = compare(3, 40, 3);
    for (const d of diffs) expect(d).toBeLessThan(1e-5);
  });

  it('matches autodiff with a padding mask per sequence, (B, 1, 1, T), as the encoders pass it', () => {
    // The second sequence's last 5 positions are padding.
    const padding = () =>
      tf.tensor4d([...Array(40).fill(0), ...Array(35).fill(0), ...Array(5).fill(-1e9)], [2, 1, 1, 40]);
    const { diffs } = compare(3, 40, 2, padding);
    for (const d of diffs) expect(d).toBeLessThan(1e-5);
  });

  it("computes scores and softmax with oneDNN's kernels on native CPU TensorFlow", () => {
    compare(2, 16);
    const native = tf.getBackend() === 'tensorflow' ? true : undefined;
    expect(oneDnnKernelsRun()).toMatchObject({ attentionScores: native, softmax: native });
  });
});
