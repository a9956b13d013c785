import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { embeddingSegmentKey } from '../../../../core/index/build-layout';
import { readNeighborsFile, writeNeighborsFile } from '../../../../core/index/neighbors-file';
import type { Neighbor } from '../../../../core/index/retrieve';
import { readVectorsFile, writeVectorsFile } from '../../../../core/index/vectors-file';
import {
  type SiftSelectionFacts,
  readSiftSelectionFile,
  siftPicks,
  vectorsByCorpusRow,
  writeSiftSelectionFile,
} from '../../../../core/selection/sift-neighbors';
import { selectSift } from '../../../../core/selection/sift';
import { seededRandom } from '../../../../core/seeded-random';

const D = 8;
const SEGMENT_ROWS = 4;
const SHARDS = ['shards/a.parquet', 'shards/b.parquet'];

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-sift-neighbors-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A distinct, recognisable vector per (shard, row): component 0 is the shard, 1 the row. */
function vectorOf(shard: number, row: number): Float32Array {
  const random = seededRandom(1000 * shard + row + 1);
  return Float32Array.from({ length: D }, (_, j) => (j === 0 ? shard : j === 1 ? row : random() - 0.5));
}

/**
 * A build's segments as the index build writes them: shard s's rows in segments of SEGMENT_ROWS; row 5 of shard 0
 * tokenized to nothing, so it has no vector (and its segment one row fewer).
 */
async function writeSegments(rowsPerShard: number): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const [s] of SHARDS.entries()) {
    for (let segment = 0; segment * SEGMENT_ROWS < rowsPerShard; segment++) {
      const rows = [];
      const vectors: number[] = [];
      for (let r = segment * SEGMENT_ROWS; r < Math.min(rowsPerShard, (segment + 1) * SEGMENT_ROWS); r++) {
        if (s === 0 && r === 5) continue;
        rows.push({ docId: `d${s}-${r}`, shardRow: r, domain: 'ArXiv' });
        vectors.push(...vectorOf(s, r));
      }
      const key = embeddingSegmentKey(s, segment);
      const file = path.join(dir, key);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await writeVectorsFile(file, rows, Float32Array.from(vectors), D);
      files.set(key, file);
    }
  }
  return files;
}

const build = { shards: SHARDS.map((shard) => ({ shard })), embed: { segmentRows: SEGMENT_ROWS } };

test("vectors by (corpus shard, row) come from the build's segments, each needed segment read once", async () => {
  const files = await writeSegments(10);
  const read: string[] = [];
  const readSegment = (key: string) => {
    read.push(key);
    return readVectorsFile(files.get(key)!);
  };
  // Rows across both shards and three segments, asked more than once (pools of two documents overlap).
  const wanted = [
    { corpusShard: SHARDS[0]!, shardRow: 1 },
    { corpusShard: SHARDS[0]!, shardRow: 6 },
    { corpusShard: SHARDS[1]!, shardRow: 9 },
    { corpusShard: SHARDS[0]!, shardRow: 1 },
    { corpusShard: SHARDS[0]!, shardRow: 7 },
  ];
  const progress: number[][] = [];
  const vectors = await vectorsByCorpusRow(build, wanted, readSegment, (done, of) => progress.push([done, of]));
  expect(read.sort()).toEqual([embeddingSegmentKey(0, 0), embeddingSegmentKey(0, 1), embeddingSegmentKey(1, 2)].sort());
  expect(vectors.segments).toBe(3);
  expect(progress).toEqual([
    [1, 3],
    [2, 3],
    [3, 3],
  ]);
  for (const row of wanted) {
    const s = SHARDS.indexOf(row.corpusShard);
    expect(vectors.get(row)).toEqual(vectorOf(s, row.shardRow)); // bit-exact float32
  }
  // A row that was not asked for (here: one in a segment that was read) is an error that names it.
  expect(() => vectors.get({ corpusShard: SHARDS[0]!, shardRow: 4 })).toThrow(/row 4 of corpus shard shards\/a/);
});

test('a row without a vector (tokenized to nothing) and a shard the build lacks are errors, not zeros', async () => {
  const files = await writeSegments(10);
  const readSegment = (key: string) => readVectorsFile(files.get(key)!);
  const missing = await vectorsByCorpusRow(build, [{ corpusShard: SHARDS[0]!, shardRow: 5 }], readSegment);
  expect(() => missing.get({ corpusShard: SHARDS[0]!, shardRow: 5 })).toThrow(/no embedded vector for row 5/);
  await expect(
    vectorsByCorpusRow(build, [{ corpusShard: 'shards/z.parquet', shardRow: 0 }], readSegment),
  ).rejects.toThrow(/no corpus shard shards\/z.parquet/);
});

/** A pool of `size` neighbors with vectors near the query's, nearest first. */
function pool(size: number, seed: number): { query: Float32Array; neighbors: Neighbor[]; vectors: Float32Array[] } {
  const random = seededRandom(seed);
  const query = Float32Array.from({ length: D }, () => random() - 0.5);
  const vectors = Array.from({ length: size }, () => query.map((v) => v + 0.6 * (random() - 0.5)));
  const neighbors = vectors.map((_, i) => ({
    rank: i + 1,
    distance: i / 10,
    docId: `p${i}`,
    corpusShard: SHARDS[i % 2]!,
    shardRow: i,
    domain: 'ArXiv',
  }));
  return { query, neighbors, vectors };
}

test("SIFT picks are the pool's neighbors in pick order, ranked from 1, with the adaptive stop a prefix of them", () => {
  const { query, neighbors, vectors } = pool(30, 5);
  const vectorOfRow = (row: { shardRow: number }) => vectors[row.shardRow]!;
  const fixed = siftPicks(query, neighbors, vectorOfRow, { n: 12, lambda: 0.01, alpha: 0 });
  const reference = selectSift(query, vectors, { n: 12, lambda: 0.01 });
  expect(fixed.picks.map((p) => p.docId)).toEqual(reference.picks.map((j) => `p${j}`));
  expect(fixed.picks.map((p) => p.rank)).toEqual(Array.from({ length: 12 }, (_, t) => t + 1));
  // The distance is the candidate's own, whatever its pick rank.
  expect(fixed.picks.map((p) => p.distance)).toEqual(reference.picks.map((j) => j / 10));
  expect(fixed).toMatchObject({ stop: -1, variance: reference.variances.at(-1), variances: reference.variances });
  expect(fixed.priorVariance).toBeCloseTo(1, 12);
  expect(fixed.varianceAtStop).toBeNaN();

  // An α that stops within the 12 picks (at 10 here): the stop is the adaptive run's pick count, its picks the first ones.
  const adaptive = selectSift(query, vectors, { n: 12, lambda: 0.01, alpha: 2.55 });
  expect(adaptive.stoppedEarly).toBe(true);
  const withAlpha = siftPicks(query, neighbors, vectorOfRow, { n: 12, lambda: 0.01, alpha: 2.55 });
  expect(withAlpha.picks).toEqual(fixed.picks); // the baseline still trains on all 12
  expect(withAlpha.stop).toBe(adaptive.picks.length);
  expect(withAlpha.stop).toBe(10);
  expect(withAlpha.varianceAtStop).toBe(adaptive.variances.at(-1));

  // An empty pool (nothing within the distance threshold) picks nothing.
  expect(siftPicks(query, [], vectorOfRow, { n: 12, lambda: 0.01, alpha: 2.55 })).toMatchObject({ picks: [], stop: 0 });
});

test('the SIFT neighbor file keeps repeated picks as rows of their own, and the selection facts round-trip', async () => {
  const { query, neighbors, vectors } = pool(3, 9);
  // Three candidates and eight picks: SIFT repeats (λ > 0 leaves a picked candidate some variance).
  const picked = siftPicks(query, neighbors, (row) => vectors[row.shardRow]!, { n: 8, lambda: 0.5, alpha: 0 }).picks;
  expect(new Set(picked.map((p) => p.docId)).size).toBeLessThan(picked.length);
  const file = path.join(dir, 'sift-neighbors.parquet');
  // The second document's pool was empty: it has no rows, and reads back as no picks.
  await writeNeighborsFile(file, ['q0', 'q1', 'q2'], [picked, [], picked.slice(0, 2)]);
  const back = await readNeighborsFile(file);
  expect(back.lists[0]).toEqual(picked);
  expect(back.lists[1] ?? []).toEqual([]);
  expect(back.lists[2]).toEqual(picked.slice(0, 2));

  const facts: SiftSelectionFacts[] = [0, 1].map((q) => ({
    query: q,
    queryId: `q${q}`,
    pool: 3,
    picks: 8,
    stop: q === 0 ? 5 : -1,
    priorVariance: 1,
    variance: 0.125,
    varianceAtStop: q === 0 ? 0.25 : null,
    variances: [0.5, 0.25, 0.125],
    seconds: 0.001,
  }));
  const jsonl = path.join(dir, 'selection.jsonl');
  await writeSiftSelectionFile(jsonl, facts);
  expect(await readSiftSelectionFile(jsonl)).toEqual(facts);
  expect((await fs.readFile(jsonl, 'utf8')).split('\n')).toHaveLength(3); // one line each, newline-terminated
});
