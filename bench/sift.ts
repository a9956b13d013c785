import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { selectSift } from '../core/selection/sift';
import { machineLine, runPythonJson } from './harness';
import { clusteredVectors } from './vectors';

/**
 * `npm run bench:sift`: SIFT's selection time per test document, ours (core/selection/sift.ts) beside activeft
 * 0.1.1's exact path on the same pool and queries (scripts/parity/activeft_sift.py --time), for pools of K = 200
 * and 1,000 seeded clustered 384-d unit vectors, N = 50 picks, λ = 0.01, and ours with adaptive stopping
 * (α = 0.15: the picks it made on average). Pool search is not timed, only the selection from a given pool.
 * activeft's figures: the Retriever as shipped (its own `RetrievalTime.sift`, which includes starting its
 * DataLoader's worker process per query) and its VTL computation alone (no worker); float32, one torch thread.
 * Settings: BENCH_SIFT_QUERIES (20), BENCH_SIFT_REFERENCE_REPS (5), BENCH_PYTHON (default: the venv of
 * scripts/parity/activeft_sift.py, ~/.cache/tttnn/activeft-venv, when present; else python3).
 */
const DIMS = 384;
const N = 50;
const LAMBDA = 0.01;
const ALPHA = 0.15;
const POOLS = [200, 1000];
const QUERIES = Number(process.env.BENCH_SIFT_QUERIES ?? 20);
const REFERENCE_REPS = Number(process.env.BENCH_SIFT_REFERENCE_REPS ?? 5);
const ACTIVEFT_VENV_PYTHON = path.join(os.homedir(), '.cache', 'tttnn', 'activeft-venv', 'bin', 'python');

interface ReferenceTiming {
  activeft: string;
  torch: string;
  k: number;
  n: number;
  retrieverSiftS: number;
  vtlS: number;
  reps: number;
}

/** Median seconds of `fn` over `items`, after one warm-up call. */
function medianSeconds<T>(items: T[], fn: (item: T) => void): number {
  fn(items[0] as T);
  const seconds = items.map((item) => {
    const t0 = performance.now();
    fn(item);
    return (performance.now() - t0) / 1000;
  });
  return seconds.sort((a, b) => a - b)[Math.floor(seconds.length / 2)] as number;
}

const ms = (s: number) => `${(s * 1e3).toFixed(1).padStart(8)} ms`;

async function main(): Promise<void> {
  console.log(machineLine());
  const python = process.env.BENCH_PYTHON ?? (existsSync(ACTIVEFT_VENV_PYTHON) ? ACTIVEFT_VENV_PYTHON : undefined);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-sift-'));
  try {
    for (const k of POOLS) {
      // One set of clusters: the pool, then the queries, drawn near the same centres.
      const spec = { n: k + QUERIES, dimensions: DIMS, clusters: Math.max(1, k / 20), sigma: 0.05, seed: 21 };
      const all = clusteredVectors({ ...spec, normalize: true });
      const row = (i: number) => all.subarray(i * DIMS, (i + 1) * DIMS);
      const pool = Array.from({ length: k }, (_, i) => row(i));
      const queries = Array.from({ length: QUERIES }, (_, i) => row(k + i));

      const plainS = medianSeconds(queries, (q) => selectSift(q, pool, { n: N, lambda: LAMBDA }));
      const steps = queries.map((q) => selectSift(q, pool, { n: N, lambda: LAMBDA, alpha: ALPHA }).picks.length);
      const adaptiveS = medianSeconds(queries, (q) => selectSift(q, pool, { n: N, lambda: LAMBDA, alpha: ALPHA }));

      const poolFile = path.join(dir, `pool-${k}.f32`);
      const queriesFile = path.join(dir, `queries-${k}.f32`);
      await fs.writeFile(poolFile, all.subarray(0, k * DIMS));
      await fs.writeFile(queriesFile, all.subarray(k * DIMS));
      const reference = await runPythonJson<ReferenceTiming>(
        '../scripts/parity/activeft_sift.py',
        ['--time', poolFile, queriesFile, String(DIMS), String(N), String(LAMBDA), String(REFERENCE_REPS)],
        { name: 'activeft', needs: 'activeft 0.1.1, torch and faiss-cpu (see the script)', python },
      );

      console.log(`K = ${k}, N = ${N}, λ = ${LAMBDA}, ${DIMS} dims; median per query over ${QUERIES} queries`);
      console.log(`  tttnn selectSift                 ${ms(plainS)}`);
      const meanSteps = steps.reduce((a, b) => a + b, 0) / steps.length;
      console.log(
        `  tttnn selectSift, α = ${ALPHA}       ${ms(adaptiveS)}   (${meanSteps.toFixed(1)} picks on average)`,
      );
      if (typeof reference === 'string') console.log(`  ${reference}`);
      else {
        const of = `(activeft ${reference.activeft}, torch ${reference.torch}, median of ${reference.reps})`;
        console.log(`  activeft Retriever, fast=False   ${ms(reference.retrieverSiftS)}   ${of}`);
        console.log(`  activeft VTL alone, no worker    ${ms(reference.vtlS)}`);
      }
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
