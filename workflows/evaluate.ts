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
 * document's neighbors in one batched pass and persist them, then one activity per document on the gpu queue
 * (bits/byte before, a step per chunk of each neighbor, bits/byte after each, the baselines), each result committed
 * once; finally the results compacted into Parquet parts and a manifest. Only references and counts pass through
 * history: the selection, neighbors and results live in the store under the run's URL.
 */
export async function evaluateWorkflow(input: EvaluationInput): Promise<EvaluationSummary> {
  const cpu = taskQueueName(input.taskQueuePrefix, 'cpu');
  const gpu = taskQueueName(input.taskQueuePrefix, 'gpu');
  const control = proxyActivities<EvaluationActivities>(activityOptions('control', cpu));
  const onGpu = proxyActivities<EvaluationActivities>(activityOptions('item', gpu, input.heartbeatTimeoutSeconds));
  const progress: EvaluationProgress = { phase: 'planning', runId: input.settings.runId, documents: 0 };
  setHandler(evaluationProgressQuery, () => progress);
  const self = workflowInfo().workflowId;

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
            maxDistance: input.settings.maxDistance,
            shardsPerGroup: input.shardsPerGroup,
            outUrl: `${plan.runUrl}/retrieval`,
            heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
            taskQueuePrefix: input.taskQueuePrefix,
          },
        ],
      });
    }
    progress.phase = 'evaluating';
    await executeChild(pagedWorkWorkflow, {
      workflowId: pagedStageId(self, 'evaluate'),
      args: [
        {
          activity: 'evaluateDocument',
          args: { runUrl: plan.runUrl },
          total: plan.documents,
          taskQueue: gpu,
          profile: 'item',
          heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
          concurrency: input.concurrency,
        },
      ],
    });
    progress.phase = 'compacting';
    await executeChild(pagedWorkWorkflow, {
      workflowId: pagedStageId(self, 'compact'),
      args: [
        {
          activity: 'compactResults',
          args: { runUrl: plan.runUrl },
          total: plan.parts,
          taskQueue: cpu,
          profile: 'control',
          concurrency: 2,
        },
      ],
    });
  }
  const summary = await control.writeEvaluationManifest({ runUrl: plan.runUrl });
  progress.phase = 'done';
  return summary;
}
