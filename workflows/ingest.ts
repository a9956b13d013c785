import { proxyActivities, setHandler } from '@temporalio/workflow';
import type { IngestActivities } from '../activities/ingest';
import {
  type FileIngestResult,
  type IngestInput,
  type IngestProgress,
  type IngestSummary,
  ingestProgressQuery,
  taskQueueName,
} from './shared';

/**
 * Pile files → sharded Parquet + manifest. Plans (lists inputs, derives the version), ingests each file
 * as one heartbeating activity with at most `concurrency` in flight, then writes the manifest last.
 */
export async function ingestWorkflow(input: IngestInput): Promise<IngestSummary> {
  const taskQueue = taskQueueName(input.taskQueuePrefix, 'cpu');
  const { planIngest, writeIngestManifest } = proxyActivities<IngestActivities>({
    taskQueue,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  const { ingestFile } = proxyActivities<IngestActivities>({
    taskQueue,
    startToCloseTimeout: '24 hours',
    // A killed worker stops heartbeating: the file is retried elsewhere from its last committed shard.
    heartbeatTimeout: `${input.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
  });

  const progress: IngestProgress = {
    phase: 'planning',
    filesTotal: 0,
    filesDone: 0,
    bytesTotal: 0,
    bytesDone: 0,
    documents: 0,
    skipped: 0,
  };
  setHandler(ingestProgressQuery, () => progress);

  const plan = await planIngest(input);
  Object.assign(progress, {
    phase: 'ingesting',
    version: plan.version,
    filesTotal: plan.files.length,
    bytesTotal: plan.files.reduce((sum, f) => sum + f.size, 0),
  });

  const results: FileIngestResult[] = new Array<FileIngestResult>(plan.files.length);
  let next = 0;
  const lane = async () => {
    while (next < plan.files.length) {
      const fileIndex = next++;
      const result = await ingestFile({ plan, fileIndex, limits: input.limits });
      results[fileIndex] = result;
      progress.filesDone += 1;
      progress.bytesDone += plan.files[fileIndex]!.size;
      progress.documents += result.documents;
      progress.skipped += Object.values(result.skipped).reduce((sum, n) => sum + n, 0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(input.concurrency, plan.files.length) }, lane));

  progress.phase = 'manifest';
  const summary = await writeIngestManifest({ plan, limits: input.limits, results });
  progress.phase = 'done';
  return summary;
}
