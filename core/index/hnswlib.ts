import { HierarchicalNSW } from 'hnswlib-node';
import { DEFAULT_HNSW, type IndexParams, type SearchResult, type VectorIndex } from './vector-index';
import { emptyResult, fileError, fileSize, putSorted, queryCount, readBytes, saveAtomically } from './results';

/**
 * npm `hnswlib-node` 3.0 (the hnswlib C++ library, compiled here by node-gyp). Its 'l2' space returns squared L2
 * already; 'cosine' normalizes vectors on the way in and returns 1 − inner product: both our units. One vector
 * per call, as a JS array, single-threaded; the level generator has a fixed seed, so a build is deterministic.
 *
 * A saved file is hnswlib's own: a 96-byte header of sizes and offsets, then the level-0 records and the upper
 * links. It records neither metric nor dimensions, and hnswlib reads another dimension's file without
 * complaint, so the dimension is derived from the header's offsets and checked here; hnswlib itself rejects a
 * file whose length does not match its link lists (truncated or with trailing bytes).
 */
const SEED = 100;
const HEADER = 96;

class HnswlibIndex implements VectorIndex {
  readonly kind = 'hnswlib';

  constructor(
    private index: HierarchicalNSW | undefined,
    readonly dimensions: number,
    readonly size: number,
  ) {}

  private get live(): HierarchicalNSW {
    if (this.index === undefined) throw new Error('hnswlib index used after dispose()');
    return this.index;
  }

  search(queries: Float32Array, k: number): SearchResult {
    const index = this.live;
    const d = this.dimensions;
    const nq = queryCount(queries, d, k);
    const out = emptyResult(nq, k);
    for (let q = 0; q < nq; q++) {
      const found = index.searchKnn(Array.from(queries.subarray(q * d, (q + 1) * d)), Math.min(k, this.size));
      putSorted(out, q, k, found.neighbors, found.distances);
    }
    return out;
  }

  async save(file: string): Promise<void> {
    const index = this.live;
    await saveAtomically(file, async (temp) => {
      await index.writeIndex(temp);
    });
  }

  dispose(): void {
    this.index = undefined;
  }
}

function space(params: IndexParams): 'l2' | 'cosine' {
  return params.metric === 'cos' ? 'cosine' : 'l2';
}

export function buildHnswlib(params: IndexParams, vectors: Float32Array, dimensions: number): VectorIndex {
  const n = vectors.length / dimensions;
  const index = new HierarchicalNSW(space(params), dimensions);
  index.initIndex({
    maxElements: n,
    m: params.connectivity ?? DEFAULT_HNSW.connectivity,
    efConstruction: params.expansionAdd ?? DEFAULT_HNSW.expansionAdd,
    randomSeed: SEED,
  });
  for (let r = 0; r < n; r++) index.addPoint(Array.from(vectors.subarray(r * dimensions, (r + 1) * dimensions)), r);
  index.setEf(params.expansionSearch ?? DEFAULT_HNSW.expansionSearch);
  return new HnswlibIndex(index, dimensions, n);
}

export async function openHnswlib(params: IndexParams, file: string, dimensions: number): Promise<VectorIndex> {
  const size = await fileSize(file);
  const header = await readBytes(file, 0, HEADER);
  if (header.length < HEADER) throw fileError(file, `${size} bytes: too short for an hnswlib index (truncated)`);
  const u64 = (offset: number) => Number(header.readBigUInt64LE(offset));
  const h = {
    offsetLevel0: u64(0),
    maxElements: u64(8),
    count: u64(16),
    sizePerElement: u64(24),
    labelOffset: u64(32),
    offsetData: u64(40),
    maxM0: u64(64),
  };
  const wellFormed =
    h.offsetLevel0 === 0 &&
    h.offsetData === h.maxM0 * 4 + 4 &&
    h.labelOffset > h.offsetData &&
    (h.labelOffset - h.offsetData) % 4 === 0 &&
    h.sizePerElement === h.labelOffset + 8 &&
    h.count <= h.maxElements &&
    HEADER + h.count * h.sizePerElement <= size;
  if (!wellFormed) throw fileError(file, 'not an hnswlib index, or a truncated or corrupt one (bad header)');
  const dims = (h.labelOffset - h.offsetData) / 4;
  if (dims !== dimensions) throw fileError(file, `index has dimension ${dims}, expected ${dimensions}`);
  if (h.count === 0) throw fileError(file, 'the index holds 0 vectors');
  const index = new HierarchicalNSW(space(params), dimensions);
  try {
    await index.readIndex(file);
  } catch (err) {
    throw fileError(file, `hnswlib cannot load it (truncated or corrupt): ${(err as Error).message}`);
  }
  index.setEf(params.expansionSearch ?? DEFAULT_HNSW.expansionSearch);
  return new HnswlibIndex(index, dimensions, index.getCurrentCount());
}
