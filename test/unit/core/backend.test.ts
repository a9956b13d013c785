import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, type MatmulPrecision } from '../../../core/backend';
import { PROJECT_ROOT } from '../../../core/config';

/**
 * A float32 matmul's largest error against float64, relative to the largest result, in a fresh process that loads
 * native TensorFlow with TTTNN_MATMUL_PRECISION (the built core/backend.js: `npm test` builds before jest).
 */
function matmulError(precision: MatmulPrecision): { backend: string; fpmath?: string; tf32?: string; error: number } {
  const script = `
    const backend = require(${JSON.stringify(path.join(PROJECT_ROOT, 'dist', 'core', 'backend.js'))});
    const tf = require('@tensorflow/tfjs');
    backend.initBackend({ log: () => undefined }).then((info) => {
      const [m, k, n] = [64, 512, 64];
      const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37));
      const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11));
      const got = tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])).dataSync();
      let error = 0, scale = 0;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
        error = Math.max(error, Math.abs(got[i * n + j] - sum));
        scale = Math.max(scale, Math.abs(sum));
      }
      const env = process.env;
      console.log(JSON.stringify({ backend: backend.describeBackend(info), fpmath: env.ONEDNN_DEFAULT_FPMATH_MODE,
        tf32: env.NVIDIA_TF32_OVERRIDE, error: error / scale }));
    });`;
  const child = spawnSync(process.execPath, ['-e', script], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, TTTNN_BACKEND: 'tensorflow', TTTNN_MATMUL_PRECISION: precision },
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`matmul child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as ReturnType<typeof matmulError>;
}

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

  it("keeps float32 matmuls at 'highest' (TF32 off on GPUs) and refuses another precision once loaded", async () => {
    const info = await initBackend({ log: () => undefined });
    if (info.name !== 'tensorflow') return; // the fallback backends compute in float32 only
    expect(info.matmulPrecision).toBe('highest');
    expect(process.env.NVIDIA_TF32_OVERRIDE).toBe('0');
    expect(process.env.ONEDNN_DEFAULT_FPMATH_MODE).toBe('STRICT');
    await expect(initBackend({ matmulPrecision: 'highest', log: () => undefined })).resolves.toBe(info);
    await expect(initBackend({ matmulPrecision: 'medium', log: () => undefined })).rejects.toThrow(
      "matmul precision 'medium' asked for, but native TensorFlow was loaded with 'highest' in this process",
    );
  });

  it("'medium' rounds matmul inputs to bfloat16 where the CPU has it, and says so in the backend's name", () => {
    const highest = matmulError('highest');
    expect(highest.backend).toMatch(/^tensorflow \(TensorFlow [\d.]+/);
    expect(highest.backend).not.toContain('matmuls');
    expect(highest).toMatchObject({ fpmath: 'STRICT', tf32: '0' });
    expect(highest.error).toBeLessThan(1e-5);
    const medium = matmulError('medium');
    expect(medium).toMatchObject({ fpmath: 'BF16' });
    expect(medium.tf32).toBeUndefined();
    const gpu = medium.backend.includes(', GPU');
    expect(medium.backend).toContain(gpu ? ', GPU, TF32 matmuls)' : ', bfloat16 matmuls)');
    // bfloat16 keeps 8 bits of mantissa, TF32 10: errors of ~1e-3 where they are used, float32's elsewhere.
    const bf16 = gpu || /\b(avx512_bf16|amx_bf16)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    if (bf16) expect(medium.error).toBeGreaterThan(1e-4);
    else expect(medium.error).toBeLessThan(1e-5);
  });

  it('names reduced matmul precision as computed: TF32 on GPUs from high, bfloat16 on CPUs at medium', () => {
    const gpu = { name: 'tensorflow', gpuPackage: true, gpu: true, tfVersion: '2.21.0' } as const;
    const cpu = { name: 'tensorflow', tfVersion: '2.21.0' } as const;
    expect(describeBackend({ ...gpu, matmulPrecision: 'highest' })).toBe('tensorflow (TensorFlow 2.21.0, GPU)');
    expect(describeBackend({ ...gpu, matmulPrecision: 'high' })).toBe(
      'tensorflow (TensorFlow 2.21.0, GPU, TF32 matmuls)',
    );
    expect(describeBackend({ ...gpu, matmulPrecision: 'medium' })).toBe(
      'tensorflow (TensorFlow 2.21.0, GPU, TF32 matmuls)',
    );
    expect(describeBackend({ ...cpu, matmulPrecision: 'high' })).toBe('tensorflow (TensorFlow 2.21.0)');
    expect(describeBackend({ ...cpu, matmulPrecision: 'medium' })).toBe(
      'tensorflow (TensorFlow 2.21.0, bfloat16 matmuls)',
    );
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
