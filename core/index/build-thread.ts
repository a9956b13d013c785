import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type IndexParams, type SearchResult, buildIndex } from './vector-index';

interface BuildJob {
  params: IndexParams;
  vectors: Float32Array;
  dimensions: number;
  file: string;
  queries: Float32Array;
  k: number;
}

/**
 * Builds an index, saves it to `file` and answers `queries` with it (the recall sample), in a worker thread: the
 * index libraries compute synchronously and would otherwise hold the thread that sends an activity's heartbeats.
 * Where the compiled thread script is absent (tests run from TypeScript sources), it runs on this thread.
 */
export function buildIndexInThread(
  params: IndexParams,
  vectors: Float32Array,
  dimensions: number,
  file: string,
  queries: Float32Array,
  k: number,
): Promise<SearchResult> {
  const job: BuildJob = { params, vectors, dimensions, file, queries, k };
  const script = path.join(__dirname, 'build-thread-main.js');
  if (!existsSync(script)) return buildSaveAndSearch(job);
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData: job });
    worker.once('message', (result: SearchResult) => resolve(result));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`index build thread exited with code ${code}`));
    });
  });
}

export async function buildSaveAndSearch(job: BuildJob): Promise<SearchResult> {
  const index = buildIndex(job.params, job.vectors, job.dimensions);
  try {
    await index.save(job.file);
    return index.search(job.queries, job.k);
  } finally {
    index.dispose();
  }
}
