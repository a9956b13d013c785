import { executeChild, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { IngestActivities } from '../activities/ingest';
import { pagedStageId, pagedWorkWorkflow } from './paged';
import { activityOptions } from './profiles';
import {
  INGEST_FILES_STAGE,
  type IngestInput,
  type IngestProgress,
  type IngestSummary,
  ingestProgressFromCounters,
  ingestProgressQuery,
  taskQueueName,
} from './shared';

/**
 * Pile files → sharded Parquet + manifest. Plans (lists inputs, derives the version, stores the file list), ingests
 * each file as one heartbeating activity in a paged stage (child workflows, at most `concurrency` files in flight),
 * then writes the manifest last. Only references and counts pass through history: the file list, the per-file
 * records and the shard lists stay in the store.
 */
export async function ingestWorkflow(input: IngestInput): Promise<IngestSummary> {
  const taskQueue = taskQueueName(input.taskQueuePrefix, 'cpu');
  const { planIngest, writeIngestManifest } = proxyActivities<IngestActivities>(
    activityOptions('control', taskQueue, input.heartbeatTimeoutSeconds),
  );

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
    filesTotal: plan.files,
    bytesTotal: plan.bytesTotal,
  });

  // Live progress of this phase is the stage's (pagedProgressQuery on `<this id>/files` and its running pages).
  const counters = await executeChild(pagedWorkWorkflow, {
    workflowId: pagedStageId(workflowInfo().workflowId, INGEST_FILES_STAGE),
    args: [
      {
        activity: 'ingestFile',
        args: { outStoreUrl: plan.outStoreUrl, limits: input.limits },
        total: plan.files,
        taskQueue,
        profile: 'item',
        heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
        concurrency: input.concurrency,
        // One page at a time: `concurrency` bounds the files in flight, as the configuration says.
        pageConcurrency: 1,
      },
    ],
  });
  Object.assign(progress, ingestProgressFromCounters(counters), { phase: 'manifest' });

  const summary = await writeIngestManifest({ outStoreUrl: plan.outStoreUrl, limits: input.limits });
  progress.phase = 'done';
  return summary;
}
