import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../core/backend';

describe('initBackend', () => {
  it('uses native TensorFlow when its binding loads and reports its version', async () => {
    const lines: string[] = [];
    const info = await initBackend({ log: (l) => lines.push(l) });
    expect(tf.getBackend()).toBe(info.name);
    if (info.name === 'tensorflow') {
      expect(info.tfVersion).toMatch(/^2\.\d+\.\d+/);
    } else {
      expect(lines.some((l) => l.includes("Run 'tttnn setup'"))).toBe(true);
    }
    expect(lines.at(-1)).toContain(`tfjs backend: ${info.name}`);
  });

  it("requires the CUDA build for 'tensorflow-gpu' and says how to build it where it is missing", async () => {
    const native = await initBackend({ log: () => undefined });
    const gpu = initBackend({ backend: 'tensorflow-gpu', log: () => undefined });
    if (native.gpuPackage === true) {
      // This checkout ran `tttnn setup --gpu`: 'auto' already chose the CUDA build.
      await expect(gpu).resolves.toMatchObject({ name: 'tensorflow', gpuPackage: true });
    } else {
      await expect(gpu).rejects.toThrow(/@tensorflow\/tfjs-node-gpu has no built binding\); run `tttnn setup --gpu`/);
    }
  });

  it('can be forced to the pure-JS backend, which computes the same matmul', async () => {
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const native = tf.matMul(a, a).arraySync();
    const info = await initBackend({ backend: 'cpu', log: () => undefined });
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const b = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    expect(tf.matMul(b, b).arraySync()).toEqual(native);
    expect(native).toEqual([
      [7, 10],
      [15, 22],
    ]);
  });
});
