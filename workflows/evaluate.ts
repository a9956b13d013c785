import { executeChild, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { EvaluationActivities } from '../activities/evaluation';
import { pagedStageId, pagedWorkWorkflow } from './paged';
import { activityOptions } from './profiles';
import { retrieveWorkflow } from './retrieve';
import { taskQueueName } from './shared';
import {
  type EvaluationInput,
  type EvaluationProgress,
  type EvaluationSummary,
  evaluationProgressQuery,
} from './evaluate-types';

/**
 * TTT-NN evaluation, as the paper runs it and durable: select the test documents, embed them, retrieve every
 * document's neighbors in one batched pass and persist them (with the SIFT baseline, also a wider pool and SIFT's
 * picks from it, selected on the cpu queue), then one activity per document on the gpu queue
 * (bits/byte before, a step per chunk of each neighbor, bits/byte after each, the baselines), each result committed
 * once; finally the results compacted into Parquet parts and a manifest. Only references and counts pass through
 * history: the selection, neighbors and results live in the store under the run's URL.
 */
export async function evaluateWorkflow(input: EvaluationInput): Promise<EvaluationSummary> {
  const cpu = taskQueueName(input.taskQueuePrefix, 'cpu');
  const gpu = taskQueueName(input.taskQueuePrefix, 'gpu');
  const control = proxyActivities<EvaluationActivities>(activityOptions('control', cpu));
  const onGpu = proxyActivities<EvaluationActivities>(activityOptions('item', gpu, input.heartbeatTimeoutSeconds));
  const onCpu = proxyActivities<EvaluationActivities>(activityOptions('item', cpu, input.heartbeatTimeoutSeconds));
  const progress: EvaluationProgress = { phase: 'planning', runId: input.settings.runId, documents: 0 };
  setHandler(evaluationProgressQuery, () => progress);
  const self = workflowInfo().workflowId;

  /** One activity per item (document or results part) of the run, as a paged stage: history stays bounded. */
  const forEach = (
    stage: string,
    activity: keyof EvaluationActivities,
    total: number,
    on: { taskQueue: string; concurrency: number },
  ) =>
    executeChild(pagedWorkWorkflow, {
      workflowId: pagedStageId(self, stage),
      args: [
        {
          activity,
          args: { runUrl: input.runUrl },
          total,
          ...on,
          profile: 'item',
          heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
        },
      ],
    });

  const plan = await control.planEvaluation(input);
  Object.assign(progress, { buildId: plan.buildId, documents: plan.documents });
  if (!plan.finished) {
    if (!plan.retrieved) {
      progress.phase = 'embedding';
      if (!plan.queriesEmbedded) await onGpu.embedQueries({ runUrl: plan.runUrl });
      progress.phase = 'retrieving';
      await executeChild(retrieveWorkflow, {
        workflowId: `${self}/retrieve`,
        args: [
          {
            indexRoot: input.settings.indexRoot,
            build: plan.buildId,
            queriesUrl: `${plan.runUrl}/queries.parquet`,
            k: input.settings.k,
            ...(input.settings.sift && { poolK: input.settings.sift.pool }),
            maxDistance: input.settings.maxDistance,
            shardsPerGroup: input.shardsPerGroup,
            outUrl: `${plan.runUrl}/retrieval`,
            heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
            taskQueuePrefix: input.taskQueuePrefix,
          },
        ],
      });
    }
    if (input.settings.sift && !plan.siftSelected) {
      // SIFT's picks from the pool, persisted before any training, as the nearest neighbors are.
      progress.phase = 'selecting';
      await onCpu.selectSiftNeighbors({ runUrl: plan.runUrl });
    }
    progress.phase = 'evaluating';
    await forEach('evaluate', 'evaluateDocument', plan.documents, { taskQueue: gpu, concurrency: input.concurrency });
    progress.phase = 'compacting';
    await forEach('compact', 'compactResults', plan.parts, { taskQueue: cpu, concurrency: 2 });
  }
  const summary = await control.writeEvaluationManifest({ runUrl: plan.runUrl });
  progress.phase = 'done';
  return summary;
}
