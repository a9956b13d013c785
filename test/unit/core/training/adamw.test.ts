import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import {
  type AdamW,
  type AdamWSettings,
  liveNativeOptimizerVariables,
  NativeAdamW,
  PortableAdamW,
} from '../../../../core/training/adamw';
import { seededRandom } from '../../../../core/seeded-random';

const SETTINGS: AdamWSettings = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
const SHAPES = [[7, 5], [5], [3, 4, 2]];

/** torch.nn.utils.clip_grad_norm_ then torch.optim.AdamW, in float64, as written in torch's docs. */
function referenceSteps(weights: number[][], gradients: number[][][], o: AdamWSettings): number[][] {
  const p = weights.map((w) => [...w]);
  const m = p.map((w) => w.map(() => 0));
  const v = p.map((w) => w.map(() => 0));
  gradients.forEach((grads, step) => {
    const t = step + 1;
    const total = Math.sqrt(grads.flat().reduce((s, g) => s + g * g, 0));
    const clip = Math.min(o.maxGradNorm / (total + 1e-6), 1);
    p.forEach((w, i) =>
      w.forEach((_, j) => {
        const g = grads[i]![j]! * clip;
        w[j]! *= 1 - o.lr * o.weightDecay;
        m[i]![j] = o.beta1 * m[i]![j]! + (1 - o.beta1) * g;
        v[i]![j] = o.beta2 * v[i]![j]! + (1 - o.beta2) * g * g;
        const mHat = m[i]![j] / (1 - o.beta1 ** t);
        const vHat = v[i]![j] / (1 - o.beta2 ** t);
        w[j]! -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
      }),
    );
  });
  return p;
}

describe('AdamW', () => {
  const next = seededRandom(7);
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const weights = SHAPES.map((s) => Array.from({ length: size(s) }, () => next() - 0.5));
  // Steps 1-3 have gradient norms far above maxGradNorm (clipped), steps 4-6 far below (not clipped).
  const gradients = [5, 3, 2, 1e-2, 2e-2, 5e-3].map((scale) =>
    SHAPES.map((s) => Array.from({ length: size(s) }, () => (next() - 0.5) * scale)),
  );

  beforeAll(async () => {
    await initBackend({ log: () => undefined });
  });

  const builds: [string, (vars: tf.Variable[]) => AdamW][] = [
    ['portable (tfjs ops)', (vars) => new PortableAdamW(vars, SETTINGS)],
    ['native (ResourceApplyAdam)', (vars) => new NativeAdamW(vars, SETTINGS)],
  ];

  const run = (build: (vars: tf.Variable[]) => AdamW, steps: number[][][], resumeAfter?: number) => {
    const vars = SHAPES.map((s, i) => tf.tidy(() => tf.variable(tf.tensor(weights[i]!, s), true, `w${i}-${next()}`)));
    let optimizer = build(vars);
    steps.forEach((grads, step) => {
      if (step === resumeAfter) {
        // A new optimizer from exported moments continues exactly where the old one was.
        const { m, v } = optimizer.exportMoments();
        const taken = optimizer.steps;
        optimizer.dispose();
        optimizer = build(vars);
        optimizer.importMoments(taken, m, v);
      }
      optimizer.step(grads.map((g, i) => tf.tensor(g, SHAPES[i])));
    });
    expect(optimizer.steps).toBe(steps.length);
    const result = vars.map((x) => Array.from(x.dataSync()));
    optimizer.dispose();
    tf.dispose(vars);
    return result;
  };

  it.each(builds)('%s matches torch AdamW after clip_grad_norm_ (float64) within float32 rounding', (_, build) => {
    const tensorsBefore = tf.memory().numTensors;
    const expected = referenceSteps(weights, gradients, SETTINGS);
    const got = run(build, gradients);
    let largest = 0;
    got.flat().forEach((x, i) => (largest = Math.max(largest, Math.abs(x - expected.flat()[i]!))));
    // Each weight moved by up to 6 lr = 0.06; float32 keeps ~1e-7 of a weight of up to 0.5.
    expect(largest).toBeLessThan(1e-6);
    const moved = got.flat().map((x, i) => Math.abs(x - weights.flat()[i]!));
    expect(Math.min(...moved)).toBeGreaterThan(1e-4); // every weight moved, by far more than the tolerance
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(liveNativeOptimizerVariables()).toBe(0);
  });

  it.each(builds)('%s continues exactly from exported moments', (_, build) => {
    expect(run(build, gradients, 3)).toEqual(run(build, gradients));
  });

  it('the two builds agree to a few float32 roundings', () => {
    const [portable, native] = builds.map(([, build]) => run(build, gradients).flat());
    portable!.forEach((x, i) => expect(Math.abs(x - native![i]!)).toBeLessThan(3e-7));
  });

  it('refuses moments that do not fit the variables', () => {
    const vars = [tf.tidy(() => tf.variable(tf.zeros([2, 2])))];
    for (const [, build] of builds) {
      const optimizer = build(vars);
      expect(() => optimizer.importMoments(1, [new Float32Array(3)], [new Float32Array(4)])).toThrow(
        /optimizer moments of 3\/4 values/,
      );
      expect(() => optimizer.importMoments(1, [], [])).toThrow(/for 0\/0 variables, the model has 1/);
      optimizer.dispose();
    }
    tf.dispose(vars);
  });
});
