import { promises as fs } from 'node:fs';
import { type IndexManifestBody, embeddingSegmentKey } from '../index/build-layout';
import type { Neighbor } from '../index/retrieve';
import type { VectorsFile } from '../index/vectors-file';
import { selectSift } from './sift';

/**
 * The SIFT baseline of an evaluation run, between retrieval and training: each document's pool (its nearest
 * neighbors, as the retrieval persisted them) and the vectors the index build embedded for them go through
 * `selectSift`, and the picks come out as a neighbor list the document loop trains on, like the random control's.
 * The pool's vectors are read back from the build's embedding segments rather than from the index files: every
 * index kind keeps its own (possibly quantised) copy, the segments are the build's one record of what was embedded.
 */

/** Where a candidate is in the indexed corpus: what a neighbor list says of it. */
export type CorpusRow = Pick<Neighbor, 'corpusShard' | 'shardRow'>;

/** What `vectorsByCorpusRow` needs of a build: its shards in order and its segment size. */
export type BuildEmbeddings = { shards: Pick<IndexManifestBody['shards'][number], 'shard'>[] } & {
  embed: Pick<IndexManifestBody['embed'], 'segmentRows'>;
};

/** The vectors of some corpus rows; asking for one that was not read is a bug, and says which. */
export interface CorpusRowVectors {
  get(row: CorpusRow): Float32Array;
  /** Segments read to find them. */
  segments: number;
}

const rowKey = (row: CorpusRow) => `${row.corpusShard}\u0000${row.shardRow}`;

/**
 * The embedded vectors of `wanted` rows, from the build's segments: each segment that holds one of them is read
 * once (`readSegment` gets its key under the build folder), and only the wanted vectors are kept.
 */
export async function vectorsByCorpusRow(
  build: BuildEmbeddings,
  wanted: Iterable<CorpusRow>,
  readSegment: (key: string) => Promise<Pick<VectorsFile, 'shardRows' | 'vectors' | 'dimensions'>>,
  onSegment: (done: number, of: number) => void = () => undefined,
): Promise<CorpusRowVectors> {
  const shardIndex = new Map(build.shards.map((s, i) => [s.shard, i]));
  const bySegment = new Map<string, { corpusShard: string; rows: Set<number> }>();
  for (const row of wanted) {
    const shard = shardIndex.get(row.corpusShard);
    if (shard === undefined) throw new Error(`the index build has no corpus shard ${row.corpusShard}`);
    const key = embeddingSegmentKey(shard, Math.floor(row.shardRow / build.embed.segmentRows));
    let segment = bySegment.get(key);
    if (segment === undefined) bySegment.set(key, (segment = { corpusShard: row.corpusShard, rows: new Set() }));
    segment.rows.add(row.shardRow);
  }
  const vectors = new Map<string, Float32Array>();
  let done = 0;
  for (const [key, { corpusShard, rows }] of [...bySegment].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const segment = await readSegment(key);
    const d = segment.dimensions;
    segment.shardRows.forEach((shardRow, i) => {
      if (rows.has(shardRow)) vectors.set(rowKey({ corpusShard, shardRow }), segment.vectors.slice(i * d, (i + 1) * d));
    });
    onSegment(++done, bySegment.size);
  }
  return {
    segments: bySegment.size,
    get(row) {
      const vector = vectors.get(rowKey(row));
      if (!vector) throw new Error(`no embedded vector for row ${row.shardRow} of corpus shard ${row.corpusShard}`);
      return vector;
    },
  };
}

export interface SiftPickSettings {
  /** Picks to make: the run's k. */
  n: number;
  lambda: number;
  /** Adaptive SIFT's α; 0 records no stop. */
  alpha: number;
}

/** One document's SIFT selection, as the run persists it. */
export interface SiftPicks {
  /** Pool members in pick order, ranked from 1; a repeat is a neighbor of its own (trained on again). */
  picks: Neighbor[];
  /** Picks adaptive SIFT keeps (≤ picks.length), -1 when α is 0. */
  stop: number;
  /** σ² at the query before any pick, after all picks, and after the picks adaptive SIFT keeps (NaN without α). */
  priorVariance: number;
  variance: number;
  varianceAtStop: number;
  /** σ² at the query after each of the fixed-n picks: adaptive SIFT's stop for any α can be read off it later. */
  variances: number[];
}

/**
 * SIFT over one document's pool: the fixed-n picks (what the baseline trains on) and, with α, where adaptive SIFT
 * stops. The adaptive run is the same greedy sequence cut short, so its curve is the fixed one's up to the stop and
 * nothing is trained for it; that it is a prefix is checked, not assumed.
 */
export function siftPicks(
  query: Float32Array,
  pool: readonly Neighbor[],
  vectorOf: (row: CorpusRow) => Float32Array,
  settings: SiftPickSettings,
): SiftPicks {
  const candidates = pool.map(vectorOf);
  const options = { n: settings.n, lambda: settings.lambda };
  const fixed = selectSift(query, candidates, options);
  const variance = fixed.variances.at(-1) ?? fixed.priorVariance;
  let stop = -1;
  let varianceAtStop = NaN;
  if (settings.alpha > 0) {
    const adaptive = selectSift(query, candidates, { ...options, alpha: settings.alpha });
    if (adaptive.picks.some((p, t) => p !== fixed.picks[t])) {
      throw new Error('adaptive SIFT picked other candidates than fixed-n SIFT: its curve cannot be read off');
    }
    stop = adaptive.picks.length;
    varianceAtStop = adaptive.variances.at(-1) ?? adaptive.priorVariance;
  }
  return {
    picks: fixed.picks.map((j, t) => ({ ...pool[j]!, rank: t + 1 })),
    stop,
    priorVariance: fixed.priorVariance,
    variance,
    varianceAtStop,
    variances: fixed.variances,
  };
}

/** One line of `sift/selection.jsonl`: what the selection of one document found and cost. */
export interface SiftSelectionFacts {
  /** The document's position in the run's selection (the query's in its batch), and its id. */
  query: number;
  queryId: string;
  pool: number;
  picks: number;
  stop: number;
  priorVariance: number;
  variance: number;
  /** null in the file when there is no adaptive stop (JSON has no NaN). */
  varianceAtStop: number | null;
  /** σ² after each pick, in pick order. */
  variances: number[];
  seconds: number;
}

/** JSON lines, one per document in selection order. */
export async function writeSiftSelectionFile(localPath: string, facts: readonly SiftSelectionFacts[]): Promise<void> {
  await fs.writeFile(localPath, facts.map((f) => `${JSON.stringify(f)}\n`).join(''));
}

export async function readSiftSelectionFile(localPath: string): Promise<SiftSelectionFacts[]> {
  const lines = (await fs.readFile(localPath, 'utf8')).split('\n').filter((line) => line.trim() !== '');
  const facts: SiftSelectionFacts[] = [];
  for (const line of lines) {
    const f = JSON.parse(line) as SiftSelectionFacts;
    facts[f.query] = f;
  }
  return facts;
}
