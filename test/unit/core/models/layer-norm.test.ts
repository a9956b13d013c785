import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { layerNorm, oneDnnKernelsRun } from '../../../../core/models/layers';
import { seededRandom } from '../../../../core/seeded-random';
import { maxRelDiff } from '../../../helpers/parity';
import { randomTensor } from '../../../helpers/random-tensor';

/**
 * `layerNorm` (oneDNN's kernel forward on native CPU TensorFlow, its gradient written out) against tfjs's autodiff
 * of the plain formula, (x - mean) / sqrt(var + eps) * w + b, on (B, T, C) input.
 */
describe('layerNorm', () => {
  beforeAll(async () => {
    await initBackend({ log: () => undefined });
  });

  it('matches autodiff of the plain formula in value and in the gradients of x, weight and bias', () => {
    const next = seededRandom(5);
    const eps = 1e-5;
    const [x, w, b, dy] = [[2, 9, 48], [48], [48], [2, 9, 48]].map((shape, i) =>
      randomTensor(shape, next, i === 0 ? 3 : 1),
    ) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const plain = (xa: tf.Tensor, wa: tf.Tensor, ba: tf.Tensor) => {
      const { mean, variance } = tf.moments(xa, -1, true);
      return xa
        .sub(mean)
        .div(tf.sqrt(variance.add(eps)))
        .mul(wa)
        .add(ba);
    };
    const expected = tf.grads((xa, wa, ba) => plain(xa, wa, ba))([x, w, b], dy);
    const actual = tf.grads((xa, wa, ba) => layerNorm(xa, wa, ba, eps))([x, w, b], dy);
    expect(maxRelDiff(layerNorm(x, w, b, eps), plain(x, w, b))).toBeLessThan(1e-5);
    actual.forEach((g, i) => expect(maxRelDiff(g, expected[i]!)).toBeLessThan(1e-5));
  });

  it('runs on oneDNN on native CPU TensorFlow', () => {
    layerNorm(tf.ones([4, 8]), tf.ones([8]), tf.zeros([8]), 1e-5).dispose();
    expect(oneDnnKernelsRun().layerNorm).toBe(tf.getBackend() === 'tensorflow' ? true : undefined);
  });
});
