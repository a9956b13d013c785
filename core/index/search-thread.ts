import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type IndexParams, type SearchResult, type VectorIndex, openIndex } from './vector-index';

export interface ShardSearchJob {
  params: IndexParams;
  dimensions: number;
  /** Local index files, one per shard; each is opened (memory-mapped where the library can) once per thread. */
  files: string[];
  queries: Float32Array;
  k: number;
}

/**
 * Searches shard indexes on a thread of their own: every index library's search is synchronous, and a retrieval
 * activity must keep heartbeating (and its worker keep polling) while a batch of queries runs. Opened indexes stay
 * open between jobs, so a worker serving a shard group opens each of its indexes once. Where the compiled thread
 * script is absent (tests from TypeScript sources), jobs run on the calling thread.
 */
export class SearchThread {
  private worker: Worker | undefined;
  private next = 0;
  private readonly pending = new Map<number, { resolve(r: SearchResult[]): void; reject(e: Error): void }>();
  private readonly inline = new IndexCache();

  search(job: ShardSearchJob): Promise<SearchResult[]> {
    const worker = this.thread();
    if (!worker) return this.inline.search(job);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    this.inline.dispose();
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private thread(): Worker | undefined {
    if (this.worker) return this.worker;
    const script = path.join(__dirname, 'search-thread-main.js');
    if (!existsSync(script)) return undefined;
    const worker = new Worker(script);
    worker.on('message', (m: { id: number; results?: SearchResult[]; error?: string }) => {
      const waiter = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error !== undefined) waiter?.reject(new Error(m.error));
      else waiter?.resolve(m.results!);
    });
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => {
      this.worker = undefined;
      this.failAll(new Error(`the search thread exited with code ${code}`));
    });
    worker.unref(); // an idle search thread does not keep the process alive
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}

/** Indexes opened by file, kept open; the search thread holds one. */
export class IndexCache {
  private readonly open = new Map<string, Promise<VectorIndex>>();

  async search(job: ShardSearchJob): Promise<SearchResult[]> {
    const results: SearchResult[] = [];
    for (const file of job.files) {
      let index = this.open.get(file);
      if (!index) {
        index = openIndex(job.params, file, job.dimensions, { view: true });
        this.open.set(file, index);
        index.catch(() => this.open.delete(file));
      }
      const opened = await index;
      results.push(opened.search(job.queries, Math.min(job.k, opened.size)));
    }
    return results;
  }

  dispose(): void {
    for (const index of this.open.values()) void index.then((i) => i.dispose()).catch(() => undefined);
    this.open.clear();
  }
}
