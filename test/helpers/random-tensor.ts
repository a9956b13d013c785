import * as tf from '@tensorflow/tfjs';

/** A float32 tensor of values uniform in [-scale, scale) drawn from `next` (e.g. core/seeded-random's generator). */
export function randomTensor(shape: number[], next: () => number, scale = 1): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => (next() * 2 - 1) * scale),
    shape,
  );
}
