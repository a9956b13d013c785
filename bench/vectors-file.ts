import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VECTOR_PRECISIONS } from '../core/index/kinds';
import { readVectorsFile, writeVectorsFile } from '../core/index/vectors-file';
import { machineLine } from './harness';
import { clusteredVectors } from './vectors';

/**
 * `npm run bench:vectors-file`: the embedding artifact (a Parquet vectors file) written and read back at each
 * precision, on BENCH_VECTORS_N (100,000) seeded unit vectors of 384 dimensions (MiniLM's width). Also the
 * vectors-file line of `npm run bench:index`.
 */
export async function benchVectorsFile(vectors: Float32Array, d: number): Promise<void> {
  const count = vectors.length / d;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-bench-vectors-'));
  try {
    const rows = Array.from({ length: count }, (_, i) => ({ docId: `doc-${i}`, shardRow: i }));
    for (const precision of VECTOR_PRECISIONS) {
      const file = path.join(dir, `${precision}.parquet`);
      let t0 = performance.now();
      await writeVectorsFile(file, rows, vectors, d, precision);
      const writeS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await readVectorsFile(file);
      const readS = (performance.now() - t0) / 1000;
      const size = (await fs.stat(file)).size;
      console.log(
        `vectors file (Parquet, @dsnp/parquetjs), ${count} × ${d} ${precision}: ` +
          `write ${Math.round(count / writeS).toLocaleString('en-US')} vectors/s (${writeS.toFixed(1)} s), ` +
          `read ${Math.round(count / readS).toLocaleString('en-US')} vectors/s (${readS.toFixed(1)} s), ` +
          `${(size / 1e6).toFixed(1)} MB`,
      );
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const n = Number(process.env.BENCH_VECTORS_N ?? 100_000);
  console.log(machineLine());
  const vectors = clusteredVectors({ n, dimensions: 384, clusters: 1000, sigma: 0.05, seed: 1, normalize: true });
  benchVectorsFile(vectors, 384).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
