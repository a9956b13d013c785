import { defineQuery } from '@temporalio/workflow';
import type { EmbedSettings, EmbeddingSegment, IndexBuildStats } from '../core/index/build-layout';
import type { IndexParams } from '../core/index/vector-index';

export type { EmbedSettings };

export interface IndexBuildInput {
  /** The ingest manifest of the corpus version to index (`<corpus>/<version>/manifest.json`). */
  corpusManifestUrl: string;
  /** Encoder: a named model (all-minilm-l6-v2), a model version URL (s3://, file://) or a local HF folder. */
  encoder: string;
  embed: EmbedSettings;
  index: IndexParams;
  /** recall@k of each shard's index against exact search, on this many of its own vectors as queries. */
  recall: { queries: number; k: number };
  /** Builds go to `<outUrl>/builds/<buildId>/`; `<outUrl>/current.json` names the one that serves. */
  outUrl: string;
  /** Default: derived from the corpus, the encoder's digest and every setting above. */
  buildId?: string;
  /** Make this build the current one once its manifest is written. */
  promote: boolean;
  /** Re-read every object of the build first and redo the shards whose objects are damaged. */
  verify?: boolean;
  concurrency: { embed: number; index: number };
  heartbeatTimeoutSeconds: number;
  taskQueuePrefix: string;
}

/** The plan's reference, as workflows pass it: never the shard list itself (that is in `<buildUrl>/plan.json`). */
export interface IndexBuildRef {
  buildId: string;
  buildUrl: string;
  /** The corpus manifest's version (content-derived), as `tttnn ingest` printed it. */
  corpusVersion: string;
  shards: number;
  documents: number;
  /** The build's manifest exists already: nothing to do. */
  done: boolean;
}

export interface IndexBuildSummary extends IndexBuildStats {
  manifestUrl: string;
  promoted: boolean;
  /** With `verify`: the shards found damaged and rebuilt by this run. */
  damagedShards?: number;
}

export interface IndexBuildProgress {
  phase: 'planning' | 'verifying' | 'embedding' | 'indexing' | 'manifest' | 'done';
  buildId?: string;
  shardsTotal: number;
  shardsEmbedded: number;
  shardsIndexed: number;
  documentsTotal: number;
  vectors: number;
  /** Shards a verification found damaged (and that are redone). */
  damagedShards?: number;
}

export const indexBuildProgressQuery = defineQuery<IndexBuildProgress>('indexBuildProgress');

/** What embedShard heartbeats: the segments it has committed (uploaded), so a retry starts after them. */
export interface EmbedShardHeartbeat {
  segments: EmbeddingSegment[];
  documentsDone: number;
}
