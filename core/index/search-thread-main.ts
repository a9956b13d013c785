import { parentPort } from 'node:worker_threads';
import { IndexCache, type ShardSearchJob } from './search-thread';

// The thread of SearchThread: answers jobs in order, keeping the indexes it opened.
const cache = new IndexCache();
parentPort?.on('message', (m: { id: number; job: ShardSearchJob }) => {
  cache
    .search(m.job)
    .then((results) => parentPort?.postMessage({ id: m.id, results }))
    .catch((err: Error) => parentPort?.postMessage({ id: m.id, error: err.message }));
});
