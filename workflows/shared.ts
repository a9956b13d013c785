import { defineQuery } from '@temporalio/workflow';
import type { SkipReason } from '../core/corpus/pile-reader';
import type { Counters } from './paged';

/** Task queues by kind; the full name is `<prefix>-<kind>` so that test runs and deployments can share a server. */
export const QUEUE_KINDS = ['cpu', 'gpu', 'index', 'retrieval'] as const;
export type QueueKind = (typeof QUEUE_KINDS)[number];

export function taskQueueName(prefix: string, kind: QueueKind): string {
  return `${prefix}-${kind}`;
}

/** Retrieval runs per shard group, each group on its own queue, so that a worker keeps its groups' indexes open. */
export function retrievalQueue(prefix: string, group: number | ''): string {
  return `${taskQueueName(prefix, 'retrieval')}-g${group}`;
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

/**
 * The plan as stored under `<outStoreUrl>/`: `plan.json` (this header, written last) and the file list in chunks of
 * `chunkSize` entries, `plan/00000.json`, `plan/00001.json`, …, so that one file's activity reads one chunk.
 */
export interface IngestPlanHeader {
  /** Content-derived: the same input and limits give the same version, any change a new one. */
  version: string;
  inputStoreUrl: string;
  outStoreUrl: string;
  files: number;
  bytesTotal: number;
  chunkSize: number;
}

/** What planIngest returns to the workflow: references and counts, never the file list. */
export type IngestPlanRef = Pick<IngestPlanHeader, 'version' | 'outStoreUrl' | 'files' | 'bytesTotal'>;

/** The argument of ingestFile, the same for every file but `index`. */
export interface IngestFileInput {
  outStoreUrl: string;
  limits: IngestLimits;
  index: number;
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
  /** Damaged files; the summary lists the first `MAX_SUMMARY_FILE_ERRORS`, the manifest every one. */
  fileErrors: { file: string; error: string }[];
  /** Set when the list above was cut: how many damaged files it leaves out. */
  fileErrorsOmitted?: number;
}

export const MAX_SUMMARY_FILE_ERRORS = 100;

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

/** The paged stage of an ingest (one ingestFile per file): its workflow id is `<ingest id>/files`. */
export const INGEST_FILES_STAGE = 'files';

/**
 * What one ingestFile returns, summed over files by the paged stage: `files` (1), `bytes_in` (input size),
 * `documents`, `text_bytes`, `lines`, `shards`, `damaged_files` (0 or 1) and `skipped_<reason>` per skip reason.
 */
export type IngestFileCounters = Counters;

/** The progress fields that follow from the summed counters of finished files. */
export function ingestProgressFromCounters(
  counters: Counters,
): Pick<IngestProgress, 'filesDone' | 'bytesDone' | 'documents' | 'skipped'> {
  let skipped = 0;
  for (const [name, n] of Object.entries(counters)) if (name.startsWith('skipped_')) skipped += n;
  return {
    filesDone: counters.files ?? 0,
    bytesDone: counters.bytes_in ?? 0,
    documents: counters.documents ?? 0,
    skipped,
  };
}

/** What an ingestFile activity heartbeats: its resumable checkpoint and its live progress. */
export interface IngestFileHeartbeat {
  checkpoint?: FileIngestResult & { throughLine: number };
  rawBytesRead: number;
}
