import { createHash } from 'node:crypto';
import type { ArtifactStore, ObjectInfo } from '../store/artifact-store';
import { MANIFEST_FILE, readManifest } from '../store/manifest';
import type { VectorPrecision } from './kinds';
import type { IndexParams } from './vector-index';

/**
 * An index build's artifacts under `<index root>/builds/<build id>/`:
 * - `plan.json`: the corpus, the encoder's digest, every setting and the shard list (written by the plan);
 * - `embeddings/<shard>/<segment>.parquet` (doc_id, shard_row, vector) and `embeddings/<shard>.json` (the record);
 * - `index/<shard>.<kind>`, `index/<shard>.ids.json` (label → document) and `index/<shard>.json` (the record);
 * - `manifest.json`, written last: a build without one is not finished and is never read.
 * `<index root>/current.json` names the build that serves `current`.
 */
export const INDEX_MANIFEST_KIND = 'tttnn.index';

/** Bumped when the build's layout changes, so that old and new builds never share an id. */
export const INDEX_FORMAT = 2; // 2: neighbor domains in the id maps

/** What the encoder sees of each document and how embeddings are committed (one segment file at a time). */
export interface EmbedSettings {
  /** Tokens of each document the encoder sees (its first ones; the reference: RoBERTa's 512, MiniLM's 256). */
  maxLength: number;
  /** L2-normalise the mean-pooled vectors (sentence-transformers models do). */
  normalize: boolean;
  batchSize: number;
  /** Documents per committed segment: a retried shard resumes after the last segment it uploaded. */
  segmentRows: number;
  /**
   * How the segments store vectors. Absent means float32: builds planned before the option keep their ids, and a
   * float32 build requested now gets the id it had then.
   */
  vectorPrecision?: Exclude<VectorPrecision, 'float32'>;
}

/**
 * `embeddings/<shard>/<segment>.parquet`: the segment of the build's `shard`-th corpus shard that holds its rows
 * [segment × segmentRows, (segment + 1) × segmentRows) (those that embedded: a row whose text tokenized to nothing
 * has no vector). Segment boundaries depend only on `segmentRows`, so a row's segment follows from its number.
 */
export function embeddingSegmentKey(shard: number, segment: number): string {
  return `embeddings/${String(shard).padStart(5, '0')}/${String(segment).padStart(5, '0')}.parquet`;
}

export interface EmbeddingSegment {
  key: string;
  size: number;
  sha256: string;
  /** Rows of the corpus shard it covers: [firstRow, firstRow + rows). */
  firstRow: number;
  rows: number;
  vectors: number;
  skipped: Record<string, number>;
}

export interface IndexBuildStats {
  buildId: string;
  shards: number;
  documents: number;
  vectors: number;
  skipped: Record<string, number>;
  /** Per-shard recall@k against exact search: the lowest and the mean over shards with vectors. */
  recall: { k: number; min: number; mean: number };
  seconds: { embed: number; index: number };
}

/** Everything a build's workers need, written once by the plan: `<buildUrl>/plan.json`. */
export interface IndexBuildPlan {
  buildId: string;
  format: number;
  corpus: { manifestUrl: string; storeUrl: string; version: string };
  encoder: { spec: string; digest: string };
  embed: EmbedSettings;
  index: IndexParams;
  recall: { queries: number; k: number };
  shards: (ObjectInfo & { rows: number })[];
}

export interface EmbeddingRecord {
  shard: string;
  /** The encoder's width: every vector of the build has it. */
  dimensions: number;
  documents: number;
  vectors: number;
  skipped: Record<string, number>;
  segments: EmbeddingSegment[];
  seconds: number;
}

export interface ShardIndexRecord {
  shard: string;
  vectors: number;
  /** The index file and the row → document map; absent for a shard without vectors. */
  index?: ObjectInfo;
  ids?: ObjectInfo;
  recall?: number;
  seconds: number;
}

/** `index/<n>.ids.json`: label i of the shard's index is document docIds[i], row shardRows[i] of the corpus shard. */
export interface ShardIds {
  docIds: string[];
  shardRows: number[];
  /** Each row's domain (builds of format 1 have none). */
  domains?: string[];
}

export interface IndexManifestBody {
  buildId: string;
  format: number;
  corpus: IndexBuildPlan['corpus'];
  encoder: IndexBuildPlan['encoder'];
  embed: EmbedSettings;
  index: IndexParams;
  dimensions: number;
  summary: IndexBuildStats;
  shards: {
    shard: string;
    documents: number;
    vectors: number;
    index?: string;
    ids?: string;
    recall?: number;
    seconds: { embed: number; index: number };
  }[];
}

export const CURRENT_POINTER = 'current.json';

/**
 * Points `current.json` at a finished build, as a compare-and-swap against the pointer read just before (an S3
 * conditional write): of two promotions racing, one wins and the other fails saying so, never a torn or lost update.
 * One object written whole, so a reader sees the old build or the new one.
 */
export async function promoteBuild(out: ArtifactStore, buildId: string): Promise<void> {
  const manifest = await readManifest<IndexManifestBody>(
    out,
    `builds/${buildId}/${MANIFEST_FILE}`,
    INDEX_MANIFEST_KIND,
  );
  if (!manifest) throw new Error(`build ${buildId} under ${out.url} is not finished (no manifest): nothing to promote`);
  const before = (await out.stat(CURRENT_POINTER)) ? await out.getBytes(CURRENT_POINTER) : undefined;
  const expected = before && createHash('sha256').update(before).digest('hex');
  const pointer = JSON.stringify({ buildId, promotedAt: new Date().toISOString() });
  if (!(await out.putBytesIfUnchanged(CURRENT_POINTER, pointer, expected))) {
    throw new Error(
      `${out.url}${CURRENT_POINTER} changed while build ${buildId} was promoted (another promotion?): run it again`,
    );
  }
}
