import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBListValue } from '@duckdb/node-api';
import {
  readVectorsFile,
  type VectorRow,
  VectorsFileWriter,
  writeVectorsFile,
} from '../../../../core/index/vectors-file';
import { fromFloat16Bits, toFloat16Bits } from '../../../../core/index/float16';
import { clusteredVectors } from '../../../../bench/vectors';

const D = 16;
const N = 1000;
const vectors = clusteredVectors({ n: N, dimensions: D, clusters: 10, sigma: 0.1, seed: 3, normalize: true });
// Values that a lossy path would change: signed zero, a subnormal, the extremes of float32.
vectors.set([-0, 1e-40, 3.4028234663852886e38, -1.1754943508222875e-38], 5 * D);
const rows: VectorRow[] = Array.from({ length: N }, (_, i) => ({
  docId: `doc-${i * 7}-é`,
  shardRow: i * 3,
  domain: ['ArXiv', 'Github', 'Pile-CC'][i % 3]!,
}));

const bits = (v: Float32Array) => new Uint32Array(v.buffer, v.byteOffset, v.length);

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-vectors-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('vectors file', () => {
  test('written batch by batch, reads back bit-exactly in parquetjs and in DuckDB (FLOAT[])', async () => {
    const file = path.join(dir, 'batches.parquet');
    const writer = await VectorsFileWriter.open(file, D);
    for (const [from, to] of [
      [0, 300],
      [300, 301],
      [301, 1000],
    ] as const) {
      await writer.append(rows.slice(from, to), vectors.subarray(from * D, to * D));
    }
    expect(writer.count).toBe(N);
    await writer.close();

    const back = await readVectorsFile(file);
    expect(back.dimensions).toBe(D);
    expect(back.docIds).toEqual(rows.map((r) => r.docId));
    expect(Array.from(back.shardRows)).toEqual(rows.map((r) => r.shardRow));
    expect(back.domains).toEqual(rows.map((r) => r.domain));
    expect(bits(back.vectors)).toEqual(bits(vectors));

    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    const types = await duck.runAndReadAll(`DESCRIBE SELECT doc_id, shard_row, vector FROM read_parquet('${file}')`);
    expect(types.getRowObjectsJson().map((r) => r.column_type)).toEqual(['VARCHAR', 'INTEGER', 'FLOAT[]']);
    const read = await duck.runAndReadAll(`SELECT doc_id, shard_row, vector FROM read_parquet('${file}')`);
    const got = read.getRows();
    expect(got.map((r) => r[0])).toEqual(rows.map((r) => r.docId));
    expect(got.map((r) => r[1])).toEqual(rows.map((r) => r.shardRow));
    const fromDuck = Float32Array.from(got.flatMap((r) => (r[2] as DuckDBListValue).items as number[]));
    expect(bits(fromDuck)).toEqual(bits(vectors));
  });

  test('writeVectorsFile in one call; a file of no rows keeps its dimension', async () => {
    const file = path.join(dir, 'whole.parquet');
    await writeVectorsFile(file, rows.slice(0, 10), vectors.subarray(0, 10 * D), D);
    const back = await readVectorsFile(file);
    expect(back.docIds).toEqual(rows.slice(0, 10).map((r) => r.docId));
    expect(bits(back.vectors)).toEqual(bits(vectors.subarray(0, 10 * D)));

    const empty = path.join(dir, 'empty.parquet');
    await writeVectorsFile(empty, [], new Float32Array(0), D);
    expect(await readVectorsFile(empty)).toEqual({
      docIds: [],
      domains: [],
      shardRows: new Int32Array(0),
      vectors: new Float32Array(0),
      dimensions: D,
      precision: 'float32',
    });
  });

  test('at float16: a smaller file that reads back as the nearest halves, in parquetjs and DuckDB (FLOAT[])', async () => {
    const file = path.join(dir, 'half.parquet');
    const writer = await VectorsFileWriter.open(file, D, 'float16');
    await writer.append(rows.slice(0, 400), vectors.subarray(0, 400 * D));
    await writer.append(rows.slice(400), vectors.subarray(400 * D));
    await writer.close();
    const single = path.join(dir, 'single.parquet');
    await writeVectorsFile(single, rows, vectors, D);
    expect((await fs.stat(file)).size).toBeLessThan(0.7 * (await fs.stat(single)).size);

    const back = await readVectorsFile(file);
    expect(back).toMatchObject({ dimensions: D, precision: 'float16' });
    expect(back.docIds).toEqual(rows.map((r) => r.docId));
    expect(Array.from(back.shardRows)).toEqual(rows.map((r) => r.shardRow));
    const halves = vectors.map((x) => fromFloat16Bits(toFloat16Bits(x)));
    expect(bits(back.vectors)).toEqual(bits(halves));
    // Unit vectors' components are in [-1, 1]: within half an ulp of 2^-10, relative, of the float32 value.
    vectors.subarray(0, 5 * D).forEach((x, i) => expect(Math.abs(back.vectors[i]! - x)).toBeLessThanOrEqual(2 ** -12));
    // Beyond half's range: the float32 extremes become Infinity, a float32 subnormal 0; signed zero stays.
    expect(Array.from(back.vectors.subarray(5 * D, 5 * D + 4))).toEqual([-0, 0, Infinity, -0]);

    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    const types = await duck.runAndReadAll(`DESCRIBE SELECT doc_id, shard_row, vector FROM read_parquet('${file}')`);
    expect(types.getRowObjectsJson().map((r) => r.column_type)).toEqual(['VARCHAR', 'INTEGER', 'FLOAT[]']);
    const read = await duck.runAndReadAll(`SELECT vector FROM read_parquet('${file}')`);
    const fromDuck = Float32Array.from(read.getRows().flatMap((r) => (r[0] as DuckDBListValue).items as number[]));
    expect(bits(fromDuck)).toEqual(bits(halves));
  });

  test('refuses mismatched input and damaged files with an Error naming the file', async () => {
    const file = path.join(dir, 'bad-input.parquet');
    const writer = await VectorsFileWriter.open(file, D);
    await expect(writer.append(rows.slice(0, 2), vectors.subarray(0, D))).rejects.toThrow(/2 rows need 32 floats/);
    await expect(writer.append([{ docId: 'x', shardRow: -1 }], vectors.subarray(0, D))).rejects.toThrow(/shard_row/);
    await writer.close();
    await expect(VectorsFileWriter.open(file, 0)).rejects.toThrow(/dimensions/);

    const good = path.join(dir, 'good.parquet');
    await writeVectorsFile(good, rows.slice(0, 50), vectors.subarray(0, 50 * D), D);
    const bytes = await fs.readFile(good);
    const bad = path.join(dir, 'bad.parquet');
    for (const contents of [bytes.subarray(0, bytes.length - 10), bytes.subarray(0, 100), Buffer.from('PAR1 nope')]) {
      await fs.writeFile(bad, contents);
      await expect(readVectorsFile(bad)).rejects.toThrow(bad);
    }
    await expect(readVectorsFile(path.join(dir, 'missing.parquet'))).rejects.toThrow(/missing\.parquet/);
  });
});
