import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, type TensorMap } from '../../core/checkpoints/safetensors';

/** Fixtures written by scripts/parity/make_fixtures.py (PyTorch + transformers). */
export const FIXTURES = path.join(__dirname, '..', 'fixtures', 'models');

/** What the causal-LM fixtures of make_fixtures.py record beside their tensors (the tiny models add `ttt`). */
export interface CausalParityMeta {
  tokenizer: { text: string; ids: number[] }[];
  document: string;
  document_ids: number[];
  /** make_fixtures.py prefixes the first window with EOS (lm_eval's own choice: test/fixtures/lm-eval/). */
  eot: number;
  max_length: number;
  bpb: { nll_nats: number; bytes: number; bits_per_byte: number };
}

export interface Fixture<M> {
  dir: string;
  tensors: TensorMap;
  meta: M;
}

export async function loadFixture<M>(name: string): Promise<Fixture<M>> {
  const dir = path.join(FIXTURES, name);
  const tensors = await readSafetensorsFile(path.join(dir, 'parity.safetensors'));
  const meta = JSON.parse(await fs.readFile(path.join(dir, 'parity.json'), 'utf8')) as M;
  return { dir, tensors, meta };
}

export function fixtureTensor(f: Fixture<unknown>, name: string): { shape: number[]; data: Float32Array } {
  const t = f.tensors.get(name);
  if (!t) throw new Error(`${f.dir}/parity.safetensors has no ${name}`);
  return t;
}

/** Integer ids stored as float32 in the fixture, as an int32 tensor of the stored shape. */
export function idsTensor(f: Fixture<unknown>, name: string): tf.Tensor2D {
  const t = fixtureTensor(f, name);
  return tf.tensor2d(Int32Array.from(t.data), t.shape as [number, number], 'int32');
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

export function maxAbs(a: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] as number));
  return max;
}

/** Largest |actual - expected| relative to the largest |expected|. */
export function maxRelDiff(actual: tf.Tensor, expected: tf.Tensor): number {
  const e = expected.dataSync();
  return maxAbsDiff(actual.dataSync(), e) / maxAbs(e);
}

/** Collects the figures each parity test reaches, printed once per file so runs document them. */
export function report(name: string, figures: Record<string, number>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v.toExponential(2)}`);
  process.stdout.write(`[parity] ${name}: ${parts.join(' ')}\n`);
}
