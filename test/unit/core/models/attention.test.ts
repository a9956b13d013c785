import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { attention, causalBias, SAVED_PROBS_LIMIT } from '../../../../core/models/layers';
import { seededRandom } from '../../../../core/seeded-random';
import { maxRelDiff } from '../../../helpers/parity';
import { randomTensor } from '../../../helpers/random-tensor';

/**
 * `attention`'s written-out gradient against tfjs's autodiff of the plain formula, softmax(q k^T s + bias) v, on both
 * of its paths: scores small enough that the forward's P is kept for the backward pass, and scores above
 * SAVED_PROBS_LIMIT, whose P the backward pass recomputes.
 */

function compare(nh: number, T: number): { probsSize: number; diffs: number[] } {
  const next = seededRandom(T);
  const hs = 8;
  const scale = 1 / Math.sqrt(hs);
  return tf.tidy(() => {
    const [q, k, v, dy] = [0, 1, 2, 3].map(() => randomTensor([1, nh, T, hs], next) as tf.Tensor4D) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const bias = causalBias(T);
    const plain = (qa: tf.Tensor, ka: tf.Tensor, va: tf.Tensor) =>
      tf.matMul(tf.softmax(tf.matMul(qa.mul(scale), ka, false, true).add(bias)), va);
    const fused = (qa: tf.Tensor, ka: tf.Tensor, va: tf.Tensor) =>
      attention(qa as tf.Tensor4D, ka as tf.Tensor4D, va as tf.Tensor4D, scale, bias);
    const expected = tf.grads(plain)([q, k, v], dy);
    const actual = tf.grads(fused)([q, k, v], dy);
    const diffs = [maxRelDiff(fused(q, k, v), plain(q, k, v)), ...actual.map((g, i) => maxRelDiff(g, expected[i]!))];
    return { probsSize: nh * T * T, diffs };
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
});
