import * as tf from '@tensorflow/tfjs';

/**
 * patches/@tensorflow+tfjs-core+4.22.0.patch (applied by `npm ci`'s postinstall): tfjs-core keeps every
 * intermediate gradient and every saved activation until the whole backward pass ends; patched, each is freed once
 * its node is done. Seen from the first op of a chain of n multiplications, reached last by the backward pass:
 * unpatched, ~3n tensors are alive there (n saved inputs, n gradients, n scalar gradients); patched, a handful.
 */
describe('backward pass memory', () => {
  const n = 50;

  /** Live tensors when the backward pass reaches the first op of f's chain, and the gradient it returns. */
  function backwardThrough(chain: (h: tf.Tensor) => tf.Tensor) {
    const x = tf.variable(tf.ones([1000]));
    const before = tf.memory().numTensors;
    let liveAtFirstOp = NaN;
    const firstOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
      value: (args[0] as tf.Tensor).clone(),
      gradFunc: (dy: tf.Tensor) => {
        liveAtFirstOp = tf.memory().numTensors - before;
        return dy.clone();
      },
    }));
    const { value, grads } = tf.variableGrads(() => chain(firstOp(x)).sum<tf.Scalar>(), [x]);
    const gradient = Array.from(grads[x.name]!.dataSync());
    tf.dispose([value, ...Object.values(grads)]);
    const leaked = tf.memory().numTensors - before;
    x.dispose();
    return { liveAtFirstOp, gradient, leaked };
  }

  it('frees intermediate gradients and saved tensors as it goes, and leaks nothing', () => {
    const { liveAtFirstOp, gradient, leaked } = backwardThrough((h) => {
      for (let i = 0; i < n; i++) h = h.mul(1.01);
      return h;
    });
    expect(liveAtFirstOp).toBeLessThan(10); // unpatched: 156
    expect(leaked).toBe(0);
    // The gradient itself is unchanged: d/dx sum(1.01^n x) = 1.01^n.
    expect(new Set(gradient).size).toBe(1);
    expect(gradient[0]).toBeCloseTo(1.01 ** n, 4);
  });

  it('keeps what higher-order gradients need', () => {
    // d²/dx² sum(x^3) = 6x: the inner gradient's tape must survive the outer backward pass.
    const f = (x: tf.Tensor) => x.mul(x).mul(x).sum<tf.Scalar>();
    const second = tf.grad((x: tf.Tensor) => tf.grad(f)(x).sum<tf.Scalar>());
    expect(Array.from(second(tf.tensor1d([2, 3])).dataSync())).toEqual([12, 18]);
  });
});
