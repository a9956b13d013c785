import { executeChild, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { IndexBuildActivities } from '../activities/index-build';
import { type Counters, pagedStageId, pagedWorkWorkflow } from './paged';
import { activityOptions } from './profiles';
import {
  type IndexBuildInput,
  type IndexBuildProgress,
  type IndexBuildSummary,
  indexBuildProgressQuery,
} from './index-types';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import { taskQueueName } from './shared';

/**
 * Corpus shards → embeddings (gpu queue) → one vector index per shard (index queue) → manifest, written last.
 * Each stage fans out over shard numbers in pages of child workflows; only references and counts pass through
 * history, so a build over 100,000 shards stays inside Temporal's limits.
 */
export async function buildIndexWorkflow(input: IndexBuildInput): Promise<IndexBuildSummary> {
  const control = proxyActivities<IndexBuildActivities>(
    activityOptions('control', taskQueueName(input.taskQueuePrefix, 'cpu')),
  );
  const progress: IndexBuildProgress = {
    phase: 'planning',
    shardsTotal: 0,
    shardsEmbedded: 0,
    shardsIndexed: 0,
    documentsTotal: 0,
    vectors: 0,
  };
  setHandler(indexBuildProgressQuery, () => progress);

  const build = await control.planIndexBuild(input);
  Object.assign(progress, { buildId: build.buildId, shardsTotal: build.shards, documentsTotal: build.documents });
  // The starter sets the encoder only where the namespace has the attributes registered: upserting an unregistered
  // one would fail the workflow task. (A build started before builds were searchable has none, and upserts nothing.)
  if (workflowInfo().typedSearchAttributes.get(SEARCH_ATTRIBUTES.encoder) !== undefined) {
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.indexBuild, value: build.buildId },
      { key: SEARCH_ATTRIBUTES.corpus, value: build.corpusVersion },
    ]);
  }
  const forEachShard = (stage: 'verify' | 'embed' | 'index', activity: keyof IndexBuildActivities): Promise<Counters> =>
    executeChild(pagedWorkWorkflow, {
      workflowId: pagedStageId(workflowInfo().workflowId, stage),
      args: [
        {
          activity,
          args: { buildUrl: build.buildUrl },
          total: build.shards,
          taskQueue: taskQueueName(input.taskQueuePrefix, stage === 'embed' ? 'gpu' : 'index'),
          profile: 'item',
          heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
          concurrency: input.concurrency[stage === 'embed' ? 'embed' : 'index'],
        },
      ],
    });

  let done = build.done;
  if (input.verify === true) {
    // Every object against its record; damaged shards lose their records and are redone below.
    progress.phase = 'verifying';
    const verified = await forEachShard('verify', 'verifyShard');
    progress.damagedShards = verified.damaged_shards ?? 0;
    if (progress.damagedShards > 0 && done) {
      await control.withdrawIndexManifest({ buildUrl: build.buildUrl });
      done = false;
    }
  }
  if (!done) {
    progress.phase = 'embedding';
    const embedded = await forEachShard('embed', 'embedShard');
    Object.assign(progress, { shardsEmbedded: embedded.shards ?? 0, vectors: embedded.vectors ?? 0 });
    progress.phase = 'indexing';
    const indexed = await forEachShard('index', 'buildShardIndex');
    progress.shardsIndexed = indexed.shards ?? 0;
  }
  progress.phase = 'manifest';
  const summary = await control.writeIndexManifest({ buildUrl: build.buildUrl });
  if (input.promote) await control.promoteIndexBuild({ outUrl: input.outUrl, buildId: build.buildId });
  Object.assign(progress, {
    phase: 'done',
    shardsEmbedded: build.shards,
    shardsIndexed: build.shards,
    vectors: summary.vectors,
  });
  return {
    ...summary,
    promoted: input.promote,
    ...(input.verify === true ? { damagedShards: progress.damagedShards ?? 0 } : {}),
  };
}
