import { Index, MetricKind, ScalarKind } from 'usearch';
import { DEFAULT_HNSW, type IndexParams, type SearchResult, type VectorIndex } from './vector-index';
import { emptyResult, fileError, fileSize, putSorted, queryCount, readBytes, saveAtomically } from './results';

/**
 * npm `usearch` 2.26 (Unum; prebuilt N-API binary, SIMD distances). Its 'l2sq' is squared L2 and 'cos' is
 * 1 − cosine, our units. Keys are rows. `add` and batched `search` use `threads` (0: all cores); a build with
 * more than one thread inserts in a nondeterministic order (the graph, not the labels, differs between runs),
 * threads: 1 builds the same file every time. `view` memory-maps the saved file: nothing is read until searched.
 *
 * A saved file is usearch's own (Python and the other bindings open it): [rows u32, bytes per vector u32], the
 * vectors, a 64-byte head ("usearch", version, metric, scalar kind, …, count, dimensions), the graph. usearch
 * itself adopts whatever dimensions and metric the file has, and detects truncation but not every corruption
 * (damage inside the graph can abort the process), so the head is checked here first; bytes beyond it are
 * vouched for by the artifact store's SHA-256.
 */
const HEAD = 64;
const METRIC_CODES = { l2sq: 'e', cos: 'c' } as const;
const SCALAR_CODES = { f32: 11, f16: 12 } as const;

class UsearchIndex implements VectorIndex {
  readonly kind = 'usearch';

  constructor(
    private index: Index | undefined,
    readonly dimensions: number,
    private readonly threads: number,
  ) {}

  private get live(): Index {
    if (this.index === undefined) throw new Error('usearch index used after dispose()');
    return this.index;
  }

  get size(): number {
    return this.live.size();
  }

  search(queries: Float32Array, k: number): SearchResult {
    const nq = queryCount(queries, this.dimensions, k);
    const out = emptyResult(nq, k);
    if (nq === 0) return out;
    const found = this.live.search(queries, k, this.threads) as {
      keys: BigUint64Array;
      distances: Float32Array;
      counts?: BigUint64Array;
    };
    for (let q = 0; q < nq; q++) {
      // One query comes back trimmed to its matches; a batch as n×k with per-query counts.
      const count = found.counts === undefined ? found.keys.length : Number(found.counts[q]);
      const keys = found.keys.subarray(q * k, q * k + count);
      putSorted(out, q, k, Array.from(keys, Number), found.distances.subarray(q * k, q * k + count));
    }
    return out;
  }

  async save(file: string): Promise<void> {
    const index = this.live;
    await saveAtomically(file, (temp) => index.save(temp));
  }

  dispose(): void {
    // The binding frees the native index when the object is collected; no reference is kept here.
    this.index = undefined;
  }
}

function newIndex(params: IndexParams, dimensions: number): Index {
  return new Index({
    dimensions,
    metric: params.metric === 'cos' ? MetricKind.Cos : MetricKind.L2sq,
    quantization: params.dtype === 'f16' ? ScalarKind.F16 : ScalarKind.F32,
    connectivity: params.connectivity ?? DEFAULT_HNSW.connectivity,
    expansion_add: params.expansionAdd ?? DEFAULT_HNSW.expansionAdd,
    expansion_search: params.expansionSearch ?? DEFAULT_HNSW.expansionSearch,
    multi: false,
  });
}

export function buildUsearch(
  params: IndexParams,
  vectors: Float32Array,
  dimensions: number,
  threads: number,
): VectorIndex {
  const index = newIndex(params, dimensions);
  const n = vectors.length / dimensions;
  const keys = new BigUint64Array(n);
  for (let r = 0; r < n; r++) keys[r] = BigInt(r);
  index.add(keys, vectors, threads);
  return new UsearchIndex(index, dimensions, threads);
}

export async function openUsearch(
  params: IndexParams,
  file: string,
  dimensions: number,
  view: boolean,
  threads: number,
): Promise<VectorIndex> {
  const size = await fileSize(file);
  const matrix = await readBytes(file, 0, 8);
  if (matrix.length < 8) throw fileError(file, `${size} bytes: too short for a usearch index (truncated)`);
  const headAt = 8 + matrix.readUInt32LE(0) * matrix.readUInt32LE(4);
  const head = headAt + HEAD <= size ? await readBytes(file, headAt, HEAD) : Buffer.alloc(0);
  if (head.length < HEAD) throw fileError(file, `${size} bytes: ends before the usearch head (truncated or corrupt)`);
  if (head.toString('latin1', 0, 7) !== 'usearch') throw fileError(file, 'not a usearch index (no "usearch" head)');
  const metric = head.toString('latin1', 13, 14);
  if (metric !== METRIC_CODES[params.metric]) {
    throw fileError(file, `index metric code '${metric}', opened as ${params.metric}`);
  }
  const dtype = params.dtype ?? 'f32';
  if (head[14] !== SCALAR_CODES[dtype]) throw fileError(file, `index scalar kind ${head[14]}, opened as ${dtype}`);
  const dims = Number(head.readBigUInt64LE(33));
  if (dims !== dimensions) throw fileError(file, `index has dimension ${dims}, expected ${dimensions}`);
  if (head.readBigUInt64LE(17) === 0n) throw fileError(file, 'the index holds 0 vectors');
  const index = newIndex(params, dimensions);
  try {
    if (view) index.view(file);
    else index.load(file);
  } catch (err) {
    throw fileError(
      file,
      `usearch cannot ${view ? 'view' : 'load'} it (truncated or corrupt): ${(err as Error).message}`,
    );
  }
  return new UsearchIndex(index, dimensions, threads);
}
