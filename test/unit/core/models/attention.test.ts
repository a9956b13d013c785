import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { attention, causalBias, SAVED_PROBS_LIMIT } from '../../../../core/models/layers';
import { seededRandom } from '../../../../core/seeded-random';

/**
 * `attention`'s written-out gradient against tfjs's autodiff of the plain formula, softmax(q k^T s + bias) v, on both
 * of its paths: scores small enough that the forward's P is kept for the backward pass, and scores above
 * SAVED_PROBS_LIMIT, whose P the backward pass recomputes.
 */

function randomTensor(shape: [number, number, number, number], next: () => number): tf.Tensor4D {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor4d(
    Float32Array.from({ length: size }, () => next() * 2 - 1),
    shape,
  );
}

function compare(nh: number, T: number): { probsSize: number; diffs: number[] } {
  const next = seededRandom(T);
  const hs = 8;
  const scale = 1 / Math.sqrt(hs);
  return tf.tidy(() => {
    const [q, k, v] = [0, 1, 2].map(() => randomTensor([1, nh, T, hs], next)) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    const dy = randomTensor([1, nh, T, hs], next);
    const bias = causalBias(T);
    const plain = (qa: tf.Tensor4D, ka: tf.Tensor4D, va: tf.Tensor4D) =>
      tf.matMul(tf.softmax(tf.matMul(qa.mul(scale), ka, false, true).add(bias)), va);
    const fused = (qa: tf.Tensor4D, ka: tf.Tensor4D, va: tf.Tensor4D) => attention(qa, ka, va, scale, bias);
    const expected = tf.grads((qa, ka, va) => plain(qa as tf.Tensor4D, ka as tf.Tensor4D, va as tf.Tensor4D))(
      [q, k, v],
      dy,
    );
    const actual = tf.grads((qa, ka, va) => fused(qa as tf.Tensor4D, ka as tf.Tensor4D, va as tf.Tensor4D))(
      [q, k, v],
      dy,
    );
    const rel = (a: tf.Tensor, b: tf.Tensor) => a.sub(b).abs().max().div(b.abs().max()).dataSync()[0] as number;
    const diffs = [rel(fused(q, k, v), plain(q, k, v)), ...actual.map((g, i) => rel(g, expected[i]!))];
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
