import { promises as fs } from 'node:fs';
import os from 'node:os';
import { crc32 } from 'node:zlib';
import { emptyResult, fileError, fileSize, queryCount, readBytes, saveAtomically } from './results';
import type { IndexParams, SearchResult, VectorIndex } from './vector-index';

/**
 * Exact search by brute force: the 'flat' kind and the recall reference of the others.
 *
 * Distances come from dot products, ||q − x||² = ||q||² + ||x||² − 2 q·x and 1 − q·x / (||q|| ||x||), with the
 * rows' norms computed once. Everything is accumulated in float64 (JS numbers: each float32 product is exact),
 * in the same order for a norm as for a dot product, so an exact copy of the query comes out at exactly 0, and
 * other distances are within ~1e-15 of the float64 value of the direct sum, then rounded to float32. Selection
 * compares the float32 distance first and the row second, so ties go to the smaller row and the result is
 * deterministic. The kernel computes 4 queries × 2 rows per pass over a pair of rows (the queries interleaved in
 * a float64 block), ~1 G multiply-adds/s on one core here (a plain loop: ~0.3); a lone query takes 4 rows per
 * pass (~0.5).
 */

/** Rows scored per chunk before selecting: dot products of a 4-query block stay in cache. */
const CHUNK = 2048;

/** ||x||² of each row, summed in the order of `dotBlock`'s loop. */
export function rowNorms(vectors: Float32Array, dimensions: number): Float64Array {
  const n = vectors.length / dimensions;
  const norms = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const o = r * dimensions;
    let s = 0;
    for (let c = 0; c < dimensions; c++) {
      const x = vectors[o + c] as number;
      s += x * x;
    }
    norms[r] = s;
  }
  return norms;
}

/**
 * dots[j * CHUNK + (r - from)] = q_j · x_r for the 4 queries interleaved in `qt` (qt[c * 4 + j]) and rows
 * from..to-1.
 */
function dotBlock(
  vectors: Float32Array,
  d: number,
  qt: Float64Array,
  from: number,
  to: number,
  dots: Float64Array,
): void {
  let r = from;
  for (; r + 1 < to; r += 2) {
    const o0 = r * d;
    const o1 = o0 + d;
    // prettier-ignore
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    for (let c = 0; c < d; c++) {
      const x = vectors[o0 + c] as number;
      const y = vectors[o1 + c] as number;
      const k = c * 4;
      const q0 = qt[k] as number;
      const q1 = qt[k + 1] as number;
      const q2 = qt[k + 2] as number;
      const q3 = qt[k + 3] as number;
      a0 += q0 * x;
      a1 += q1 * x;
      a2 += q2 * x;
      a3 += q3 * x;
      b0 += q0 * y;
      b1 += q1 * y;
      b2 += q2 * y;
      b3 += q3 * y;
    }
    const i = r - from;
    dots[i] = a0;
    dots[CHUNK + i] = a1;
    dots[2 * CHUNK + i] = a2;
    dots[3 * CHUNK + i] = a3;
    dots[i + 1] = b0;
    dots[CHUNK + i + 1] = b1;
    dots[2 * CHUNK + i + 1] = b2;
    dots[3 * CHUNK + i + 1] = b3;
  }
  if (r < to) {
    const o0 = r * d;
    // prettier-ignore
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (let c = 0; c < d; c++) {
      const x = vectors[o0 + c] as number;
      const k = c * 4;
      a0 += (qt[k] as number) * x;
      a1 += (qt[k + 1] as number) * x;
      a2 += (qt[k + 2] as number) * x;
      a3 += (qt[k + 3] as number) * x;
    }
    const i = r - from;
    dots[i] = a0;
    dots[CHUNK + i] = a1;
    dots[2 * CHUNK + i] = a2;
    dots[3 * CHUNK + i] = a3;
  }
}

/** dots[r - from] = q · x_r for one query (`qt` holds it in slots c * 4), four rows per pass. */
function dotOne(vectors: Float32Array, d: number, qt: Float64Array, from: number, to: number, dots: Float64Array) {
  let r = from;
  for (; r + 3 < to; r += 4) {
    const o0 = r * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    // prettier-ignore
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (let c = 0; c < d; c++) {
      const q = qt[c * 4] as number;
      a0 += q * (vectors[o0 + c] as number);
      a1 += q * (vectors[o1 + c] as number);
      a2 += q * (vectors[o2 + c] as number);
      a3 += q * (vectors[o3 + c] as number);
    }
    const i = r - from;
    dots[i] = a0;
    dots[i + 1] = a1;
    dots[i + 2] = a2;
    dots[i + 3] = a3;
  }
  for (; r < to; r++) {
    const o0 = r * d;
    let a0 = 0;
    for (let c = 0; c < d; c++) a0 += (qt[c * 4] as number) * (vectors[o0 + c] as number);
    dots[r - from] = a0;
  }
}

/**
 * The k best (distance, row) pairs seen so far, as a max-heap on (distance, row): rows arrive in ascending
 * order, so a candidate that only ties the worst kept one never displaces it.
 */
class TopK {
  readonly rows: Int32Array;
  readonly dist: Float32Array;
  size = 0;

  constructor(readonly k: number) {
    this.rows = new Int32Array(k);
    this.dist = new Float32Array(k);
  }

  /** Distance a candidate must beat, Infinity until k are kept. */
  get bound(): number {
    return this.size < this.k ? Infinity : (this.dist[0] as number);
  }

  push(dist: number, row: number): void {
    const { rows, dist: ds } = this;
    let i: number;
    if (this.size < this.k) {
      i = this.size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(dist, row, ds[p] as number, rows[p] as number)) break;
        ds[i] = ds[p] as number;
        rows[i] = rows[p] as number;
        i = p;
      }
    } else {
      i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= this.k) break;
        const r = l + 1;
        const c = r < this.k && worse(ds[r] as number, rows[r] as number, ds[l] as number, rows[l] as number) ? r : l;
        if (!worse(ds[c] as number, rows[c] as number, dist, row)) break;
        ds[i] = ds[c] as number;
        rows[i] = rows[c] as number;
        i = c;
      }
    }
    ds[i] = dist;
    rows[i] = row;
  }

  /** Writes the kept pairs, best first, into slot q of `out` (k wide). */
  drain(out: SearchResult, q: number, k: number): void {
    const order = Array.from({ length: this.size }, (_, i) => i).sort(
      (a, b) =>
        (this.dist[a] as number) - (this.dist[b] as number) || (this.rows[a] as number) - (this.rows[b] as number),
    );
    order.forEach((i, rank) => {
      out.rows[q * k + rank] = this.rows[i] as number;
      out.distances[q * k + rank] = this.dist[i] as number;
    });
  }
}

function worse(d1: number, r1: number, d2: number, r2: number): boolean {
  return d1 > d2 || (d1 === d2 && r1 > r2);
}

/** Top-k over `vectors` (whose `norms` are given) for each query. */
function searchExact(
  vectors: Float32Array,
  norms: Float64Array,
  dimensions: number,
  queries: Float32Array,
  k: number,
  metric: 'l2sq' | 'cos',
): SearchResult {
  const d = dimensions;
  const nq = queryCount(queries, d, k);
  const n = norms.length;
  const out = emptyResult(nq, k);
  const qNorms = rowNorms(queries, d);
  const qt = new Float64Array(4 * d);
  const dots = new Float64Array(4 * CHUNK);
  for (let q0 = 0; q0 < nq; q0 += 4) {
    const block = Math.min(4, nq - q0);
    qt.fill(0);
    for (let j = 0; j < block; j++) {
      for (let c = 0; c < d; c++) qt[c * 4 + j] = queries[(q0 + j) * d + c] as number;
    }
    const heaps = Array.from({ length: block }, () => new TopK(Math.min(k, n)));
    for (let from = 0; from < n; from += CHUNK) {
      const to = Math.min(n, from + CHUNK);
      // A lone query (a single search, or the last of a batch) takes the one-query kernel: twice as fast as
      // a 4-query block with three empty slots.
      if (block === 1) dotOne(vectors, d, qt, from, to, dots);
      else dotBlock(vectors, d, qt, from, to, dots);
      for (let j = 0; j < block; j++) {
        const heap = heaps[j] as TopK;
        const qn = qNorms[q0 + j] as number;
        let bound = heap.bound;
        let full = heap.size === heap.k;
        for (let r = from; r < to; r++) {
          const dot = dots[j * CHUNK + r - from] as number;
          const xn = norms[r] as number;
          let dist: number;
          if (metric === 'l2sq') dist = qn + xn - 2 * dot;
          else dist = qn === 0 || xn === 0 ? 1 : 1 - dot / Math.sqrt(qn * xn);
          dist = Math.fround(dist > 0 ? dist : 0);
          if (dist < bound || !full) {
            heap.push(dist, r);
            bound = heap.bound;
            full = heap.size === heap.k;
          }
        }
      }
    }
    heaps.forEach((heap, j) => heap.drain(out, q0 + j, k));
  }
  return out;
}

/** Exact top-k by brute force (the recall reference and the 'flat' kind's search): deterministic, ties by row. */
export function exactSearch(
  vectors: Float32Array,
  dimensions: number,
  queries: Float32Array,
  k: number,
  metric: 'l2sq' | 'cos',
): SearchResult {
  if (vectors.length % dimensions !== 0) {
    throw new Error(`${vectors.length} floats are not a whole number of ${dimensions}-dimensional vectors`);
  }
  return searchExact(vectors, rowNorms(vectors, dimensions), dimensions, queries, k, metric);
}

// ─── The flat index and its file ──────────────────────────────────────────────────────────────────────────────

/**
 * File: a 32-byte header — magic "TTTNNFLT", format version (u32), metric (u32: 0 l2sq, 1 cos), dimensions
 * (u32), CRC-32 of the payload (u32), count (u64) — then count × dimensions float32, little-endian, row-major.
 */
const MAGIC = 'TTTNNFLT';
const VERSION = 1;
const HEADER = 32;
const METRICS = ['l2sq', 'cos'] as const;
/** Bytes per write/read call (one call is limited to 2 GiB). */
const IO_CHUNK = 1 << 26;

class FlatIndex implements VectorIndex {
  readonly kind = 'flat';
  readonly size: number;
  private norms: Float64Array;

  constructor(
    private readonly metric: 'l2sq' | 'cos',
    private vectors: Float32Array,
    readonly dimensions: number,
  ) {
    this.size = vectors.length / dimensions;
    this.norms = rowNorms(vectors, dimensions);
  }

  search(queries: Float32Array, k: number): SearchResult {
    if (this.norms.length !== this.size) throw new Error('flat index used after dispose()');
    return searchExact(this.vectors, this.norms, this.dimensions, queries, k, this.metric);
  }

  async save(file: string): Promise<void> {
    if (this.norms.length !== this.size) throw new Error('flat index used after dispose()');
    const payload = Buffer.from(this.vectors.buffer, this.vectors.byteOffset, this.vectors.byteLength);
    const header = Buffer.alloc(HEADER);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(METRICS.indexOf(this.metric), 12);
    header.writeUInt32LE(this.dimensions, 16);
    header.writeUInt32LE(crcOf(payload), 20);
    header.writeBigUInt64LE(BigInt(this.size), 24);
    await saveAtomically(file, async (temp) => {
      const handle = await fs.open(temp, 'w');
      try {
        await handle.write(header, 0, HEADER, 0);
        for (let o = 0; o < payload.length; o += IO_CHUNK) {
          await handle.write(payload, o, Math.min(IO_CHUNK, payload.length - o), HEADER + o);
        }
      } finally {
        await handle.close();
      }
    });
  }

  dispose(): void {
    this.vectors = new Float32Array(0);
    this.norms = new Float64Array(0);
  }
}

function crcOf(bytes: Buffer): number {
  let crc = 0;
  for (let o = 0; o < bytes.length; o += IO_CHUNK) crc = crc32(bytes.subarray(o, o + IO_CHUNK), crc);
  return crc;
}

export function buildFlat(params: IndexParams, vectors: Float32Array, dimensions: number): VectorIndex {
  // A copy: the caller may reuse its buffer, and the index owns what it saves.
  return new FlatIndex(params.metric, vectors.slice(), dimensions);
}

export async function openFlat(params: IndexParams, file: string, dimensions: number): Promise<VectorIndex> {
  if (os.endianness() !== 'LE') throw fileError(file, 'flat index files are little-endian; this machine is not');
  const size = await fileSize(file);
  const header = await readBytes(file, 0, HEADER);
  if (header.length < HEADER || header.toString('latin1', 0, 8) !== MAGIC) {
    throw fileError(file, 'not a flat index file (bad magic or shorter than its header)');
  }
  const version = header.readUInt32LE(8);
  if (version !== VERSION) throw fileError(file, `flat index format version ${version}, expected ${VERSION}`);
  const metric = METRICS[header.readUInt32LE(12)];
  if (metric === undefined) throw fileError(file, `unknown metric code ${header.readUInt32LE(12)}`);
  if (metric !== params.metric) throw fileError(file, `index metric is ${metric}, opened as ${params.metric}`);
  const dims = header.readUInt32LE(16);
  if (dims !== dimensions) throw fileError(file, `index has dimension ${dims}, expected ${dimensions}`);
  const count = Number(header.readBigUInt64LE(24));
  const expected = HEADER + count * dims * 4;
  if (size !== expected) {
    throw fileError(file, `${size} bytes, expected ${expected} for ${count} vectors (truncated or corrupt)`);
  }
  if (count === 0) throw fileError(file, 'the index holds 0 vectors');
  const vectors = new Float32Array(count * dims);
  const payload = Buffer.from(vectors.buffer);
  const handle = await fs.open(file, 'r');
  try {
    for (let o = 0; o < payload.length;) {
      const { bytesRead } = await handle.read(payload, o, Math.min(IO_CHUNK, payload.length - o), HEADER + o);
      if (bytesRead === 0) throw fileError(file, 'ended early while reading (truncated)');
      o += bytesRead;
    }
  } finally {
    await handle.close();
  }
  if (crcOf(payload) !== header.readUInt32LE(20)) throw fileError(file, 'payload checksum mismatch (corrupt)');
  return new FlatIndex(metric, vectors, dims);
}
