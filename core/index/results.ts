import { promises as fs } from 'node:fs';
import type { SearchResult } from './vector-index';

/** What every kind shares: query checks, result layout, file errors and atomic saves. */

/** Number of queries in `queries`, after checking its shape and k. */
export function queryCount(queries: Float32Array, dimensions: number, k: number): number {
  if (!Number.isInteger(k) || k <= 0) throw new Error(`k must be a positive integer, got ${k}`);
  if (queries.length % dimensions !== 0) {
    throw new Error(`queries of ${queries.length} floats are not a whole number of ${dimensions}-dimensional vectors`);
  }
  return queries.length / dimensions;
}

/** n×k result with every slot empty: row -1 at distance Infinity. */
export function emptyResult(queries: number, k: number): SearchResult {
  return { rows: new Int32Array(queries * k).fill(-1), distances: new Float32Array(queries * k).fill(Infinity) };
}

/**
 * Writes one query's neighbors (any order) into slot q of `out`, sorted by (distance, row); negative distances
 * from the libraries' rounding are clamped to 0, so that an exact copy reads as distance 0.
 */
export function putSorted(
  out: SearchResult,
  q: number,
  k: number,
  rows: ArrayLike<number>,
  distances: ArrayLike<number>,
): void {
  const order = Array.from({ length: Math.min(rows.length, k) }, (_, i) => i);
  const d = (i: number) => Math.max(0, Math.fround(distances[i] as number));
  order.sort((a, b) => d(a) - d(b) || (rows[a] as number) - (rows[b] as number));
  order.forEach((i, rank) => {
    out.rows[q * k + rank] = rows[i] as number;
    out.distances[q * k + rank] = d(i);
  });
}

/** One Error per damaged or mismatched file, naming it. */
export function fileError(file: string, what: string): Error {
  return new Error(`${file}: ${what}`);
}

/** Writes through a temporary file renamed into place, so that a crash never leaves a plausible partial index. */
export async function saveAtomically(file: string, write: (temp: string) => Promise<void> | void): Promise<void> {
  const temp = `${file}.${process.pid}.partial`;
  try {
    await write(temp);
    await fs.rename(temp, file);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
}

/** Reads `length` bytes at `position`, or fewer at the end of the file. */
export async function readBytes(file: string, position: number, length: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Size of `file`, or an Error naming it when it cannot be read. */
export async function fileSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    throw fileError(file, `cannot read the index file (${(err as Error).message})`);
  }
}
