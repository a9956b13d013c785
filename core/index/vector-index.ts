import { buildFlat, openFlat } from './flat';
import { INDEX_KINDS, type IndexKind } from './kinds';
import { buildHnswlib, openHnswlib } from './hnswlib';
import { buildUsearch, openUsearch } from './usearch';

/**
 * Per-shard nearest-neighbor indexes behind one interface. Every kind labels a vector by its row (its position
 * in the shard as added), returns distances in the same units (squared L2, or 1 − cosine) sorted ascending with
 * ties broken by the smaller row, and saves to one local file in the library's own format ('flat': ours).
 * Search is synchronous: the native bindings block the thread that calls them.
 */
export { INDEX_KINDS, type IndexKind } from './kinds';

export interface IndexParams {
  kind: IndexKind;
  /** Squared L2 distance ('l2sq', faiss IndexFlatL2's convention, the reference's) or 'cos'. Default 'l2sq'. */
  metric: 'l2sq' | 'cos';
  /** HNSW graph degree (M) and construction/search beam widths; ignored by 'flat'. */
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
  /** Stored scalar type: 'f32' (default) or 'f16' (usearch only; others reject it with a clear error). */
  dtype?: 'f32' | 'f16';
}

export interface SearchResult {
  /** n*k row numbers (position of the vector in the shard as added: 0..size-1), -1 where fewer than k exist. */
  rows: Int32Array;
  /** n*k distances in the metric's units, ascending per query; ties broken by smaller row. Infinity where row is -1. */
  distances: Float32Array;
}

export interface VectorIndex {
  readonly kind: IndexKind;
  readonly dimensions: number;
  readonly size: number;
  /** queries: n*dimensions floats, row-major. Synchronous (bindings block) — callers run it off the heartbeat thread. */
  search(queries: Float32Array, k: number): SearchResult;
  /** Writes the index to one local file. */
  save(file: string): Promise<void>;
  dispose(): void;
}

/**
 * HNSW defaults (hnswlib's M and efConstruction), chosen on `npm run bench:index`: on 150,000 clustered 384-d
 * vectors efSearch 64 gave recall@20 0.9997 (hnswlib, usearch f32) at 94–102× exact search's batched queries/s, but
 * on 1,000,000 only 0.81–0.87; efSearch 256 gives usearch f32 0.993 there at 1,210 queries/s (356× exact), hence
 * 256. See README, "Choices, measured".
 */
export const DEFAULT_HNSW = { connectivity: 16, expansionAdd: 128, expansionSearch: 256 } as const;

/**
 * The project's default index: usearch. In f32 its recall and single-query latency match hnswlib's (builds too:
 * 987 vectors/s on 2 threads against 1,050 on one), its distances are the exact ones rounded to float32, and
 * beyond that it opens memory-mapped (`view`: 19 ms against ~300 ms to load 150k vectors), batches on all
 * cores, and ships a prebuilt binary. `dtype: 'f16'` halves memory and file size, builds 2× and searches
 * batches 4× faster, at recall −0.001 and distances within ~1e-4.
 */
export const DEFAULT_INDEX_PARAMS: IndexParams = { kind: 'usearch', metric: 'l2sq', dtype: 'f32', ...DEFAULT_HNSW };

/** Builds an index over n = vectors.length / dimensions vectors, labelled by row 0..n-1. */
export function buildIndex(
  params: IndexParams,
  vectors: Float32Array,
  dimensions: number,
  opts: { threads?: number } = {},
): VectorIndex {
  checkParams(params);
  if (!Number.isInteger(dimensions) || dimensions <= 0) throw new Error(`dimensions must be > 0, got ${dimensions}`);
  if (vectors.length % dimensions !== 0) {
    throw new Error(`${vectors.length} floats are not a whole number of ${dimensions}-dimensional vectors`);
  }
  if (vectors.length === 0) throw new Error(`cannot build a ${params.kind} index over 0 vectors`);
  switch (params.kind) {
    case 'flat':
      return buildFlat(params, vectors, dimensions);
    case 'usearch':
      return buildUsearch(params, vectors, dimensions, opts.threads ?? 0);
    case 'hnswlib':
      return buildHnswlib(params, vectors, dimensions);
  }
}

/** Opens a saved index; `view: true` memory-maps where the library can (usearch), else loads. */
export async function openIndex(
  params: IndexParams,
  file: string,
  dimensions: number,
  opts: { view?: boolean; threads?: number } = {},
): Promise<VectorIndex> {
  checkParams(params);
  switch (params.kind) {
    case 'flat':
      return openFlat(params, file, dimensions);
    case 'usearch':
      return openUsearch(params, file, dimensions, opts.view ?? false, opts.threads ?? 0);
    case 'hnswlib':
      return openHnswlib(params, file, dimensions);
  }
}

function checkParams(params: IndexParams): void {
  if (!(INDEX_KINDS as readonly string[]).includes(params.kind)) {
    throw new Error(`unknown index kind '${params.kind}' (one of ${INDEX_KINDS.join(', ')})`);
  }
  if (params.metric !== 'l2sq' && params.metric !== 'cos') {
    throw new Error(`unknown metric '${String(params.metric)}' (l2sq or cos)`);
  }
  const dtype = params.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new Error(`unknown dtype '${String(dtype)}' (f32 or f16)`);
  if (dtype === 'f16' && params.kind !== 'usearch') {
    throw new Error(`dtype 'f16' is supported by the usearch kind only, not by '${params.kind}'`);
  }
  for (const name of ['connectivity', 'expansionAdd', 'expansionSearch'] as const) {
    const value = params[name];
    if (value !== undefined && (!Number.isInteger(value) || value < (name === 'connectivity' ? 2 : 1))) {
      throw new Error(`${name} must be an integer ≥ ${name === 'connectivity' ? 2 : 1}, got ${value}`);
    }
  }
}

export { exactSearch } from './flat';

/** recall@k of `approx` against `exact` (fraction of exact top-k rows found in approx top-k), averaged over queries. */
export function recallAtK(approx: SearchResult, exact: SearchResult, k: number): number {
  if (!Number.isInteger(k) || k <= 0) throw new Error(`k must be a positive integer, got ${k}`);
  if (approx.rows.length !== exact.rows.length || exact.rows.length % k !== 0) {
    throw new Error(`results of ${approx.rows.length} and ${exact.rows.length} rows are not both n×${k}`);
  }
  const queries = exact.rows.length / k;
  let sum = 0;
  let counted = 0;
  for (let q = 0; q < queries; q++) {
    const found = new Set(approx.rows.subarray(q * k, (q + 1) * k));
    let relevant = 0;
    let hits = 0;
    for (const row of exact.rows.subarray(q * k, (q + 1) * k)) {
      if (row < 0) continue;
      relevant++;
      if (found.has(row)) hits++;
    }
    // A query with no exact neighbors (an empty index) has nothing to recall.
    if (relevant === 0) continue;
    sum += hits / relevant;
    counted++;
  }
  return counted === 0 ? 1 : sum / counted;
}
