import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { activation, conv1d, linear, oneDnnKernelsRun } from '../../../../core/models/layers';
import { seededRandom } from '../../../../core/seeded-random';
import { maxRelDiff } from '../../../helpers/parity';
import { randomTensor } from '../../../helpers/random-tensor';

/**
 * `linear` and `conv1d`, which run as one oneDNN kernel (product, bias add, activation) where tfjs records no
 * gradients on native CPU TensorFlow, against the same computed with tfjs ops: in value, and under a gradient tape
 * (where they must stay tfjs ops, which tfjs can differentiate).
 */
describe('linear layers', () => {
  let x: tf.Tensor3D, weight: tf.Tensor2D, bias: tf.Tensor1D, dy: tf.Tensor3D;
  beforeAll(async () => {
    await initBackend({ log: () => undefined });
    const next = seededRandom(11);
    [x, weight, bias, dy] = [[2, 7, 24], [40, 24], [40], [2, 7, 40]].map((shape) => randomTensor(shape, next)) as [
      tf.Tensor3D,
      tf.Tensor2D,
      tf.Tensor1D,
      tf.Tensor3D,
    ];
  });

  const plain = (xa: tf.Tensor, w: tf.Tensor, b: tf.Tensor, act?: (y: tf.Tensor) => tf.Tensor) => {
    const y = tf.matMul(xa.reshape([-1, 24]), w, false, true).add(b);
    return (act ? act(y) : y).reshape([2, 7, 40]);
  };

  it.each([undefined, 'gelu', 'gelu_new', 'relu'])('linear with activation %s matches tfjs ops', (name) => {
    const act = name === undefined ? undefined : activation(name);
    const expected = plain(x, weight, bias, act);
    expect(maxRelDiff(linear(x, weight, bias, act), expected)).toBeLessThan(1e-5);
    // GPT-2's Conv1D: the same weight stored (in, out).
    expect(maxRelDiff(conv1d(x, weight.transpose(), bias, act), expected)).toBeLessThan(1e-5);
  });

  it('is differentiable: under a gradient tape the gradients are those of tfjs ops', () => {
    const act = activation('gelu');
    const expected = tf.grads((xa, w, b) => plain(xa, w, b, act))([x, weight, bias], dy);
    const actual = tf.grads((xa, w, b) => linear(xa, w, b, act))([x, weight, bias], dy);
    actual.forEach((g, i) => expect(maxRelDiff(g, expected[i]!)).toBeLessThan(1e-5));
  });

  it('runs on oneDNN on native CPU TensorFlow', () => {
    linear(x, weight, bias, activation('gelu')).dispose();
    expect(oneDnnKernelsRun().linear).toBe(tf.getBackend() === 'tensorflow' ? true : undefined);
  });
});
