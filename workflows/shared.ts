import { defineQuery } from '@temporalio/workflow';
import type { SkipReason } from '../core/corpus/pile-reader';

/** Task queues by kind; the full name is `<prefix>-<kind>` so that test runs and deployments can share a server. */
export const QUEUE_KINDS = ['cpu', 'gpu', 'index'] as const;
export type QueueKind = (typeof QUEUE_KINDS)[number];

export function taskQueueName(prefix: string, kind: QueueKind): string {
  return `${prefix}-${kind}`;
}

export type IngestSkipReason = SkipReason;

export interface IngestLimits {
  rowsPerShard: number;
  maxShardBytes: number;
  maxDocumentBytes: number;
}

export interface IngestInput {
  /** A Pile file (`*.jsonl`, `*.jsonl.zst`) or a folder/prefix holding them: `s3://...`, `file:///...` or a path. */
  inputUrl: string;
  /** Where versions of this corpus go: the ingest writes `<outUrl>/<version>/`. */
  outUrl: string;
  limits: IngestLimits;
  concurrency: number;
  heartbeatTimeoutSeconds: number;
  /** The queue prefix of the workers that run the activities. */
  taskQueuePrefix: string;
}

export interface IngestFileRef {
  key: string;
  size: number;
  /** Size and SHA-256 of the first and last MiB. */
  fingerprint: string;
}

export interface IngestPlan {
  /** Content-derived: the same input and limits give the same version, any change a new one. */
  version: string;
  inputStoreUrl: string;
  outStoreUrl: string;
  files: IngestFileRef[];
}

export interface DomainCount {
  documents: number;
  bytes: number;
}

export interface ShardInfo {
  key: string;
  size: number;
  sha256: string;
  rows: number;
}

export interface FileIngestResult {
  file: string;
  lines: number;
  documents: number;
  bytes: number;
  skipped: Partial<Record<IngestSkipReason, number>>;
  domains: Record<string, DomainCount>;
  shards: ShardInfo[];
  /** Set when the file itself is damaged (e.g. a truncated .zst); what was read before it is kept. */
  error?: string;
}

export interface IngestSummary {
  version: string;
  manifestUrl: string;
  files: number;
  documents: number;
  bytes: number;
  shards: number;
  skipped: Partial<Record<IngestSkipReason, number>>;
  domains: Record<string, DomainCount>;
  fileErrors: { file: string; error: string }[];
}

export interface IngestProgress {
  phase: 'planning' | 'ingesting' | 'manifest' | 'done';
  version?: string;
  filesTotal: number;
  filesDone: number;
  bytesTotal: number;
  /** Input bytes of the files finished so far; in-flight files report theirs in activity heartbeats. */
  bytesDone: number;
  documents: number;
  skipped: number;
}

export const ingestProgressQuery = defineQuery<IngestProgress>('ingestProgress');

/** What an ingestFile activity heartbeats: its resumable checkpoint and its live progress. */
export interface IngestFileHeartbeat {
  checkpoint?: FileIngestResult & { throughLine: number };
  rawBytesRead: number;
}
