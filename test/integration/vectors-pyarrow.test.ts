import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { clusteredVectors } from '../../bench/vectors';
import { fromFloat16Bits, toFloat16Bits } from '../../core/index/float16';
import { writeVectorsFile } from '../../core/index/vectors-file';
import { ensurePythonReaders } from '../../infra/tools';
import { testConfig } from '../test-config';

const run = promisify(execFile);
const D = 384;
const N = 200;

/**
 * The embedding segments read untouched in pyarrow, at both precisions: list<float> and list<halffloat>, with the
 * values tttnn reads. At float16, pyarrow's own cast of the float32 values to half agrees with tttnn's rounding.
 */
describe('vectors files in pyarrow', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-vectors-pyarrow-'));
  });
  afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

  it('reads float32 and float16 vectors files as list<float> and list<halffloat>, value for value', async () => {
    const vectors = clusteredVectors({ n: N, dimensions: D, clusters: 10, sigma: 0.1, seed: 5, normalize: true });
    // Ties and subnormals, where a rounding that is not to nearest-even would differ.
    vectors.set([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, -(2 ** -24), 65504, -0], 0);
    const rows = Array.from({ length: N }, (_, i) => ({ docId: `doc-${i}`, shardRow: i }));
    const full = path.join(dir, 'float32.parquet');
    const half = path.join(dir, 'float16.parquet');
    await writeVectorsFile(full, rows, vectors, D);
    await writeVectorsFile(half, rows, vectors, D, 'float16');

    const python = await ensurePythonReaders(testConfig().toolsDir, () => undefined);
    const script = [
      'import json, sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq',
      'full, half = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])',
      'cast = pc.cast(full.column("vector"), pa.list_(pa.float16()))',
      'print(json.dumps({',
      '  "types": [str(full.schema.field("vector").type), str(half.schema.field("vector").type)],',
      '  "ids": half.column("doc_id").to_pylist(), "rows": half.column("shard_row").to_pylist(),',
      '  "full": [x for v in full.column("vector").to_pylist() for x in v],',
      '  "half": [x for v in half.column("vector").to_pylist() for x in v],',
      '  "cast": [x for v in cast.to_pylist() for x in v]}))',
    ].join('\n');
    const { stdout } = await run(python, ['-c', script, full, half], { maxBuffer: 64 * 1024 * 1024 });
    const read = JSON.parse(stdout) as Record<'full' | 'half' | 'cast', number[]> & {
      types: string[];
      ids: string[];
      rows: number[];
    };
    expect(read.types).toEqual(['list<vector: float not null>', 'list<vector: halffloat not null>']);
    expect(read.ids).toEqual(rows.map((r) => r.docId));
    expect(read.rows).toEqual(rows.map((r) => r.shardRow));
    expect(Float32Array.from(read.full)).toEqual(vectors);
    const halves = Array.from(vectors, (x) => fromFloat16Bits(toFloat16Bits(x)));
    expect(read.half).toEqual(halves);
    expect(read.cast).toEqual(halves);
  });
});
