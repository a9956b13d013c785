import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clusteredVectors } from '../../../../bench/vectors';
import {
  buildIndex,
  exactSearch,
  INDEX_KINDS,
  type IndexKind,
  type IndexParams,
  openIndex,
  recallAtK,
  type SearchResult,
  type VectorIndex,
} from '../../../../core/index/vector-index';

const D = 32;
const N = 2000;
const K = 10;
// 2,100 seeded vectors in 20 clusters: the first 2,000 are indexed, the last 100 are held-out queries. Rows 5,
// 17 and 900 hold the same vector, for ties.
const all = clusteredVectors({ n: N + 100, dimensions: D, clusters: 20, sigma: 0.08, seed: 7, normalize: false });
const data = all.slice(0, N * D);
data.copyWithin(17 * D, 5 * D, 6 * D);
data.copyWithin(900 * D, 5 * D, 6 * D);
const queries = all.slice(N * D);
const METRICS = ['l2sq', 'cos'] as const;
const HNSW_KINDS = INDEX_KINDS.filter((k) => k !== 'flat');

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-index-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

// Smaller graphs than the defaults keep the builds quick; recall on 2,000 vectors stays well above 0.95.
const params = (kind: IndexKind, metric: 'l2sq' | 'cos' = 'l2sq', extra: Partial<IndexParams> = {}): IndexParams => ({
  kind,
  metric,
  connectivity: 16,
  expansionAdd: 64,
  expansionSearch: 64,
  ...extra,
});

function build(p: IndexParams, vectors = data): VectorIndex {
  return buildIndex(p, vectors, D, { threads: 1 });
}

/** One index per (kind, metric) over `data`, shared by the tests that only search it. */
const built = new Map<string, VectorIndex>();
function shared(kind: IndexKind, metric: 'l2sq' | 'cos'): VectorIndex {
  const key = `${kind}/${metric}`;
  if (!built.has(key)) built.set(key, build(params(kind, metric)));
  return built.get(key) as VectorIndex;
}
afterAll(() => built.forEach((index) => index.dispose()));

/** Direct float64 distance of one query to one row, for checking every kind's units. */
function directDistance(q: Float32Array, row: number, metric: 'l2sq' | 'cos', vectors = data): number {
  let l2 = 0;
  let dot = 0;
  let qq = 0;
  let xx = 0;
  for (let c = 0; c < D; c++) {
    const a = q[c] as number;
    const b = vectors[row * D + c] as number;
    l2 += (a - b) * (a - b);
    dot += a * b;
    qq += a * a;
    xx += b * b;
  }
  return metric === 'l2sq' ? l2 : 1 - dot / Math.sqrt(qq * xx);
}

/** The naive reference: every distance computed directly, sorted by (float32 distance, row). */
function naiveTopK(q: Float32Array, k: number, metric: 'l2sq' | 'cos', vectors = data): number[] {
  const n = vectors.length / D;
  const d = Array.from({ length: n }, (_, r) => Math.fround(Math.max(0, directDistance(q, r, metric, vectors))));
  return Array.from({ length: n }, (_, r) => r)
    .sort((a, b) => (d[a] as number) - (d[b] as number) || a - b)
    .slice(0, k);
}

const query = (i: number) => queries.subarray(i * D, (i + 1) * D);
const rowsOf = (r: SearchResult, q: number, k: number) => Array.from(r.rows.subarray(q * k, (q + 1) * k));

describe('exactSearch', () => {
  test.each(METRICS)('%s: equals a naive sort of directly computed distances', (metric) => {
    const exact = exactSearch(data, D, queries, K, metric);
    for (let q = 0; q < 30; q++) {
      expect(rowsOf(exact, q, K)).toEqual(naiveTopK(query(q), K, metric));
      for (let i = 0; i < K; i++) {
        const direct = directDistance(query(q), exact.rows[q * K + i] as number, metric);
        expect(Math.abs((exact.distances[q * K + i] as number) - direct)).toBeLessThan(1e-6);
      }
    }
  });

  test('pads with row -1 at Infinity when fewer than k vectors exist, and checks its arguments', () => {
    const r = exactSearch(data.subarray(0, 3 * D), D, query(0), 5, 'l2sq');
    expect(Array.from(r.rows.subarray(3))).toEqual([-1, -1]);
    expect(Array.from(r.distances.subarray(3))).toEqual([Infinity, Infinity]);
    expect(() => exactSearch(data, D, queries.subarray(0, D + 1), 5, 'l2sq')).toThrow(/33 floats/);
    expect(() => exactSearch(data, D, query(0), 0, 'l2sq')).toThrow(/k must be a positive integer/);
  });
});

describe('recallAtK', () => {
  test('counts the exact rows found, per query, ignoring missing ones', () => {
    const exact: SearchResult = { rows: Int32Array.of(1, 2, 3, -1), distances: new Float32Array(4) };
    const approx: SearchResult = { rows: Int32Array.of(2, 9, 3, 4), distances: new Float32Array(4) };
    expect(recallAtK(approx, exact, 2)).toBeCloseTo((0.5 + 1) / 2);
    expect(() => recallAtK(approx, exact, 3)).toThrow(/n×3/);
  });
});

describe.each(INDEX_KINDS)('%s index', (kind) => {
  test.each(METRICS)('%s: recall@10 against exact search, distances in the same units', (metric) => {
    const index = shared(kind, metric);
    expect(index.kind).toBe(kind);
    expect(index.size).toBe(N);
    expect(index.dimensions).toBe(D);
    const found = index.search(queries, K);
    const exact = exactSearch(data, D, queries, K, metric);
    const recall = recallAtK(found, exact, K);
    if (kind === 'flat') {
      expect(found.rows).toEqual(exact.rows);
      expect(found.distances).toEqual(exact.distances);
    } else {
      expect(recall).toBeGreaterThanOrEqual(0.95);
    }
    for (let q = 0; q < 100; q++) {
      for (let i = 0; i < K; i++) {
        const d = found.distances[q * K + i] as number;
        if (i > 0) expect(d).toBeGreaterThanOrEqual(found.distances[q * K + i - 1] as number);
        expect(Math.abs(d - directDistance(query(q), found.rows[q * K + i] as number, metric))).toBeLessThan(1e-4);
      }
    }
  });

  test('an exact copy of a stored vector comes back first at distance 0; exact ties go to the smaller row', () => {
    for (const metric of METRICS) {
      const index = shared(kind, metric);
      for (const row of [0, 123, 1999]) {
        const r = index.search(data.subarray(row * D, (row + 1) * D), K);
        expect(r.rows[0]).toBe(row);
        // The libraries' cosine is computed from normalized vectors: a copy is within rounding of 0 (1e-16..1e-7).
        if (metric === 'l2sq' || kind === 'flat') expect(r.distances[0]).toBe(0);
        else expect(r.distances[0]).toBeLessThan(1e-6);
      }
      const tie = index.search(data.subarray(17 * D, 18 * D), 4);
      expect(Array.from(tie.rows.subarray(0, 3))).toEqual([5, 17, 900]);
      expect(tie.distances[0]).toBe(tie.distances[2]);
    }
  });

  test('save, then open (and view), gives identical results', async () => {
    const p = params(kind, 'l2sq');
    const index = shared(kind, 'l2sq');
    const file = path.join(dir, `${kind}.index`);
    await index.save(file);
    const before = index.search(queries, K);
    for (const view of [false, true]) {
      const opened = await openIndex(p, file, D, { view });
      expect(opened.size).toBe(N);
      const after = opened.search(queries, K);
      expect(after.rows).toEqual(before.rows);
      expect(after.distances).toEqual(before.distances);
      opened.dispose();
    }
    expect(await fs.readdir(dir)).not.toContainEqual(expect.stringMatching(/partial/));
  });

  test('pads with row -1 at Infinity when the index holds fewer than k vectors', () => {
    const small = build(params(kind), data.subarray(0, 5 * D));
    for (const r of [small.search(query(0), 8), small.search(queries.subarray(0, 3 * D), 8)]) {
      for (let q = 0; q < r.rows.length / 8; q++) {
        expect(rowsOf(r, q, 8).slice(0, 5).sort()).toEqual([0, 1, 2, 3, 4]);
        expect(rowsOf(r, q, 8).slice(5)).toEqual([-1, -1, -1]);
        expect(Array.from(r.distances.subarray(q * 8 + 5, q * 8 + 8))).toEqual([Infinity, Infinity, Infinity]);
      }
    }
    small.dispose();
    expect(() => small.search(query(0), 1)).toThrow();
  });

  test('builds the same file twice (single-threaded)', async () => {
    const files = [path.join(dir, `${kind}-a`), path.join(dir, `${kind}-b`)];
    for (const file of files) {
      const index = build(params(kind), data.subarray(0, 500 * D));
      await index.save(file);
      index.dispose();
    }
    expect(await fs.readFile(files[0] as string)).toEqual(await fs.readFile(files[1] as string));
  });

  test('refuses bad input and bad files with one Error naming the file', async () => {
    expect(() => build(params(kind), new Float32Array(0))).toThrow(/0 vectors/);
    expect(() => buildIndex(params(kind), data.subarray(0, 10 * D + 3), D)).toThrow(/whole number/);
    const index = build(params(kind), data.subarray(0, 200 * D));
    expect(() => index.search(queries.subarray(0, D - 1), K)).toThrow(/31 floats/);
    const file = path.join(dir, `${kind}-small.index`);
    await index.save(file);
    index.dispose();
    const bytes = await fs.readFile(file);
    const bad = path.join(dir, `${kind}-bad.index`);
    const expectBad = async (contents: Buffer, p: IndexParams, dims: number, what: RegExp) => {
      await fs.writeFile(bad, contents);
      for (const view of [false, true]) {
        const opening = openIndex(p, bad, dims, { view });
        await expect(opening).rejects.toThrow(what);
        await expect(opening).rejects.toThrow(bad);
      }
    };
    await expectBad(bytes, params(kind), D + 1, /dimension 32, expected 33/);
    await expectBad(bytes.subarray(0, bytes.length - 1), params(kind), D, /truncated/);
    await expectBad(bytes.subarray(0, 40), params(kind), D, /truncated|corrupt/);
    await expectBad(Buffer.alloc(0), params(kind), D, /truncated|not a/);
    await expectBad(Buffer.from('not an index at all, just some text '.repeat(100)), params(kind), D, /not a|corrupt/);
    if (kind === 'flat') {
      const flipped = Buffer.from(bytes);
      flipped[1000] = (flipped[1000] as number) ^ 1;
      await expectBad(flipped, params(kind), D, /checksum/);
    }
    if (kind !== 'hnswlib') await expectBad(bytes, params(kind, 'cos'), D, /metric/);
    await expect(openIndex(params(kind), path.join(dir, 'missing'), D)).rejects.toThrow(/missing: cannot read/);
  });
});

describe('f16', () => {
  test('usearch stores f16: recall and distances stay close to f32', async () => {
    const p = params('usearch', 'l2sq', { dtype: 'f16' });
    const index = build(p);
    const found = index.search(queries, K);
    expect(recallAtK(found, exactSearch(data, D, queries, K, 'l2sq'), K)).toBeGreaterThanOrEqual(0.9);
    for (let i = 0; i < found.rows.length; i++) {
      const direct = directDistance(query(Math.floor(i / K)), found.rows[i] as number, 'l2sq');
      expect(Math.abs((found.distances[i] as number) - direct)).toBeLessThan(1e-2 * Math.max(1, direct));
    }
    const file = path.join(dir, 'f16.usearch');
    await index.save(file);
    const opened = await openIndex(p, file, D, { view: true });
    expect(opened.search(queries, K).rows).toEqual(found.rows);
    await expect(openIndex(params('usearch'), file, D)).rejects.toThrow(/scalar kind 12, opened as f32/);
    opened.dispose();
    index.dispose();
  });

  test.each(['flat', 'hnswlib'] as const)('%s rejects f16 clearly', (kind) => {
    expect(() => build(params(kind, 'l2sq', { dtype: 'f16' }))).toThrow(/'f16' is supported by the usearch kind only/);
  });

  test('HNSW kinds take their graph parameters', () => {
    for (const kind of HNSW_KINDS) {
      const tiny = build(params(kind, 'l2sq', { connectivity: 4, expansionAdd: 8, expansionSearch: 8 }));
      expect(tiny.search(query(0), 1).rows[0]).toBeGreaterThanOrEqual(0);
      tiny.dispose();
      expect(() => build(params(kind, 'l2sq', { connectivity: 1 }))).toThrow(/connectivity/);
    }
  });
});
