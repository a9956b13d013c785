import { parentPort, workerData } from 'node:worker_threads';
import { buildSaveAndSearch } from './build-thread';

// The worker thread of buildIndexInThread: one job, one answer.
void buildSaveAndSearch(workerData as Parameters<typeof buildSaveAndSearch>[0]).then((result) =>
  parentPort?.postMessage(result),
);
