import { ParquetReader, ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';

/**
 * An evaluation's results: one row per selected test document, as Parquet (DuckDB and pyarrow read the repeated
 * columns as lists). Curves are indexed by k, the number of neighbors trained on: entry 0 is before any training.
 * Bits/byte are stored beside the NLL they come from (bits/byte = NLL nats / bytes / ln 2) so that a reader can
 * aggregate as lm-evaluation-harness does: sum of NLL over sum of bytes. A skipped document keeps its row, with
 * `skip_reason` set and empty curves.
 */
export interface EvalResultRow {
  /** Position in the run's selection (0-based); rows are written in this order. */
  doc_index: number;
  doc_id: string;
  domain: string;
  bytes: number;
  tokens: number;
  /** Empty when evaluated; otherwise why not (e.g. `empty_after_tokenizing`, `over_size_limit`). */
  skip_reason: string;

  /** TTT-NN: bits/byte and NLL (nats) of the whole document after k = 0..K neighbors. */
  bits_per_byte: number[];
  nll: number[];
  neighbor_ids: string[];
  neighbor_distances: number[];
  neighbor_domains: string[];
  /** Mean training loss on each neighbor (NaN for a neighbor too short to step on). */
  neighbor_losses: number[];
  /** Neighbors whose text is byte-identical to the document's (test-set contamination), and how many were excluded. */
  exact_copies: number;
  excluded_copies: number;
  steps: number;

  /** Random-neighbor control (as many documents drawn uniformly from the index): same shape as the TTT-NN curve. */
  random_bits_per_byte: number[];
  random_nll: number[];
  random_steps: number;

  /**
   * SIFT baseline: the same loop over SIFT's picks from the nearest `pool` (pick order; a repeated pick is trained on
   * again), same shape as the TTT-NN curve. `sift_stop`: the picks adaptive SIFT keeps (the curve's k where it
   * stops), -1 without an adaptive rule (α = 0) or without the baseline. Empty curves when it was not run.
   */
  sift_bits_per_byte: number[];
  sift_nll: number[];
  sift_steps: number;
  sift_neighbor_ids: string[];
  sift_stop: number;

  /**
   * Dynamic evaluation: the document's second half (`split_bytes` bytes, `split_tokens` tokens) scored before
   * training, after training on the first half, and after TTT-NN on all the neighbors (the same split, for a fair
   * comparison). NaN when the baseline was not run.
   */
  split_bytes: number;
  split_tokens: number;
  split_nll_before: number;
  split_nll_dynamic: number;
  split_nll_ttt: number;
  dynamic_steps: number;

  /** In-context baseline: NLL of the whole document with the neighbors, nearest first, filling the context. */
  in_context_nll: number;

  seconds_retrieval: number;
  /** SIFT's selection for this document (in the selection activity, before training; not in `seconds_total`). */
  seconds_selection: number;
  seconds_training: number;
  seconds_evaluation: number;
  seconds_total: number;
  backend: string;
  model_digest: string;
  index_build: string;
}

const list = (type: 'DOUBLE' | 'UTF8') => ({ type, repeated: true, compression: 'SNAPPY', statistics: false }) as const;
const scalar = (type: 'INT32' | 'INT64' | 'DOUBLE' | 'UTF8') => ({ type, compression: 'SNAPPY' }) as const;

export const RESULT_SCHEMA = new ParquetSchema({
  doc_index: scalar('INT32'),
  doc_id: scalar('UTF8'),
  domain: scalar('UTF8'),
  bytes: scalar('INT64'),
  tokens: scalar('INT32'),
  skip_reason: scalar('UTF8'),
  bits_per_byte: list('DOUBLE'),
  nll: list('DOUBLE'),
  neighbor_ids: list('UTF8'),
  neighbor_distances: list('DOUBLE'),
  neighbor_domains: list('UTF8'),
  neighbor_losses: list('DOUBLE'),
  exact_copies: scalar('INT32'),
  excluded_copies: scalar('INT32'),
  steps: scalar('INT32'),
  random_bits_per_byte: list('DOUBLE'),
  random_nll: list('DOUBLE'),
  random_steps: scalar('INT32'),
  sift_bits_per_byte: list('DOUBLE'),
  sift_nll: list('DOUBLE'),
  sift_steps: scalar('INT32'),
  sift_neighbor_ids: list('UTF8'),
  sift_stop: scalar('INT32'),
  split_bytes: scalar('INT64'),
  split_tokens: scalar('INT32'),
  split_nll_before: scalar('DOUBLE'),
  split_nll_dynamic: scalar('DOUBLE'),
  split_nll_ttt: scalar('DOUBLE'),
  dynamic_steps: scalar('INT32'),
  in_context_nll: scalar('DOUBLE'),
  seconds_retrieval: scalar('DOUBLE'),
  seconds_selection: scalar('DOUBLE'),
  seconds_training: scalar('DOUBLE'),
  seconds_evaluation: scalar('DOUBLE'),
  seconds_total: scalar('DOUBLE'),
  backend: scalar('UTF8'),
  model_digest: scalar('UTF8'),
  index_build: scalar('UTF8'),
});

const LIST_COLUMNS = [
  'bits_per_byte',
  'nll',
  'neighbor_ids',
  'neighbor_distances',
  'neighbor_domains',
  'neighbor_losses',
  'random_bits_per_byte',
  'random_nll',
  'sift_bits_per_byte',
  'sift_nll',
  'sift_neighbor_ids',
] as const;

/** Columns added after results were first written, as a row from before them reads: the baseline was not run. */
const ABSENT_FROM_OLDER_ROWS: Partial<EvalResultRow> = { sift_steps: 0, sift_stop: -1, seconds_selection: 0 };

/** Writes rows (in the order given) to a local Parquet file. Output depends only on the rows. */
export async function writeResultsFile(localPath: string, rows: readonly EvalResultRow[]): Promise<void> {
  const writer = await ParquetWriter.openFile(RESULT_SCHEMA, localPath, { rowGroupSize: 1024, useDataPageV2: false });
  for (const row of rows) await writer.appendRow({ ...row });
  await writer.close();
}

/** Reads a results file back; parquetjs leaves an empty repeated column out of the row, so it is restored here. */
export async function readResultsFile(localPath: string): Promise<EvalResultRow[]> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const rows: EvalResultRow[] = [];
    const cursor = reader.getCursor();
    for (let r = (await cursor.next()) as Record<string, unknown> | null; r; r = (await cursor.next()) as typeof r) {
      const row = { ...r };
      for (const column of LIST_COLUMNS) row[column] = row[column] ?? [];
      for (const [column, value] of Object.entries(ABSENT_FROM_OLDER_ROWS)) row[column] ??= value;
      for (const column of ['bytes', 'split_bytes'] as const) row[column] = Number(row[column]);
      rows.push(row as unknown as EvalResultRow);
    }
    return rows;
  } finally {
    await reader.close();
  }
}

/** A row for a document that could not be evaluated: counted and reported, never lost. */
export function skippedRow(
  base: Pick<EvalResultRow, 'doc_index' | 'doc_id' | 'domain' | 'bytes' | 'tokens' | 'skip_reason'> &
    Pick<EvalResultRow, 'backend' | 'model_digest' | 'index_build'>,
): EvalResultRow {
  return {
    ...base,
    bits_per_byte: [],
    nll: [],
    neighbor_ids: [],
    neighbor_distances: [],
    neighbor_domains: [],
    neighbor_losses: [],
    exact_copies: 0,
    excluded_copies: 0,
    steps: 0,
    random_bits_per_byte: [],
    random_nll: [],
    random_steps: 0,
    sift_bits_per_byte: [],
    sift_nll: [],
    sift_steps: 0,
    sift_neighbor_ids: [],
    sift_stop: -1,
    split_bytes: 0,
    split_tokens: 0,
    split_nll_before: NaN,
    split_nll_dynamic: NaN,
    split_nll_ttt: NaN,
    dynamic_steps: 0,
    in_context_nll: NaN,
    seconds_retrieval: 0,
    seconds_selection: 0,
    seconds_training: 0,
    seconds_evaluation: 0,
    seconds_total: 0,
  };
}

const TEXT_FIELDS = new Set([
  'doc_id',
  'domain',
  'skip_reason',
  'neighbor_ids',
  'neighbor_domains',
  'sift_neighbor_ids',
  'backend',
  'model_digest',
  'index_build',
]);

/** A row as JSON (a document's committed result): NaN and ±Infinity kept as strings, which JSON lacks. */
export function encodeRow(row: EvalResultRow): string {
  return JSON.stringify(row, (_, value: unknown) =>
    typeof value === 'number' && !Number.isFinite(value) ? String(value) : value,
  );
}

export function decodeRow(json: string): EvalResultRow {
  const row = JSON.parse(json) as Record<string, unknown>;
  const number = (v: unknown) => (typeof v === 'string' ? Number(v) : v);
  for (const [key, value] of Object.entries(row)) {
    if (TEXT_FIELDS.has(key)) continue;
    row[key] = Array.isArray(value) ? value.map(number) : number(value);
  }
  for (const column of LIST_COLUMNS) row[column] ??= [];
  for (const [column, value] of Object.entries(ABSENT_FROM_OLDER_ROWS)) row[column] ??= value;
  return row as unknown as EvalResultRow;
}
