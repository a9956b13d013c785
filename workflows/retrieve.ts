import { executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { RetrievalActivities } from '../activities/retrieval';
import { pagedStageId, pagedWorkWorkflow } from './paged';
import { activityOptions } from './profiles';
import { retrievalQueue, taskQueueName } from './shared';

export interface RetrievalInput {
  /** The index root (`<root>/builds/<id>/`, `<root>/current.json`) and the build: an id or `current`. */
  indexRoot: string;
  build: string;
  /** A vectors Parquet file (doc_id = query id, vector) in the store: the batch of queries, by reference. */
  queriesUrl: string;
  k: number;
  /**
   * Also keep each query's `poolK` nearest as `pool.parquet` (the SIFT baseline's candidates): the search asks for
   * max(k, poolK), and `neighbors.parquet` is still the first k.
   */
  poolK?: number;
  maxDistance: number;
  shardsPerGroup: number;
  /** Where the per-group candidates, `neighbors.parquet` and its manifest go. */
  outUrl: string;
  heartbeatTimeoutSeconds: number;
  taskQueuePrefix: string;
}

export interface RetrievalPlan {
  buildId: string;
  groups: number;
}

export interface RetrievalSummary {
  buildId: string;
  neighborsUrl: string;
  /** Present when `poolK` was asked for. */
  poolUrl?: string;
  queries: number;
  neighbors: number;
}

/**
 * Batched retrieval: every query against every shard group in one pass (one activity per group, on that group's
 * queue, where a worker keeps its indexes open), then each query's global top k, merged by distance then document id.
 */
export async function retrieveWorkflow(input: RetrievalInput): Promise<RetrievalSummary> {
  const control = proxyActivities<RetrievalActivities>(
    activityOptions('control', taskQueueName(input.taskQueuePrefix, 'cpu')),
  );
  const plan = await control.planRetrieval(input);
  await executeChild(pagedWorkWorkflow, {
    workflowId: pagedStageId(workflowInfo().workflowId, 'search'),
    args: [
      {
        activity: 'searchShards',
        args: { ...input, buildId: plan.buildId },
        total: plan.groups,
        taskQueue: retrievalQueue(input.taskQueuePrefix, ''),
        queuePerItem: true,
        profile: 'item',
        heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
        concurrency: Math.max(1, plan.groups),
      },
    ],
  });
  return control.mergeNeighbors({ ...input, ...plan });
}
