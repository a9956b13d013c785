import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { IndexBuildActivities } from '../../activities/index-build';
import { buildIndexWorkflow } from '../../workflows/index-build';
import type { IndexBuildInput, IndexBuildRef } from '../../workflows/index-types';
import { pageWorkflowId, pagedStageId } from '../../workflows/paged';
import { taskQueueName } from '../../workflows/shared';
import { localWorkflowEnvironment } from '../helpers/temporal-env';
import { largestPayload } from '../helpers/history';
import { sourceWorkflowBundle } from '../helpers/workflow-bundle';

/**
 * The index build's orchestration with stub activities on an ephemeral server: stages run on their queues in
 * order, and the build workflow's own history is the same size for 3 shards and for 2,000 (references, not lists;
 * the stages' pages are bounded as test/workflows/paged-history.test.ts shows).
 */
describe('buildIndexWorkflow', () => {
  let env: TestWorkflowEnvironment;
  let counter = 0;

  beforeAll(async () => {
    env = await localWorkflowEnvironment();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function build(shards: number) {
    const prefix = `ib-${counter++}`;
    const calls: string[] = [];
    const ref: IndexBuildRef = {
      buildId: 'b1',
      buildUrl: 's3://x/builds/b1',
      corpusVersion: 'v1',
      shards,
      documents: shards * 10,
      done: false,
    };
    const stub: Partial<IndexBuildActivities> = {
      planIndexBuild: () => Promise.resolve(ref),
      embedShard: ({ index }) => {
        calls.push(`embed ${index}`);
        return Promise.resolve({ shards: 1, documents: 10, vectors: 10 });
      },
      buildShardIndex: ({ index }) => {
        calls.push(`index ${index}`);
        return Promise.resolve({ shards: 1, vectors: 10 });
      },
      writeIndexManifest: () => {
        calls.push('manifest');
        const stats = { buildId: 'b1', shards, documents: shards * 10, vectors: shards * 10, skipped: {} };
        return Promise.resolve({
          ...stats,
          recall: { k: 20, min: 1, mean: 1 },
          seconds: { embed: 0, index: 0 },
          manifestUrl: 's3://x/builds/b1/manifest.json',
        });
      },
      promoteIndexBuild: () => {
        calls.push('promote');
        return Promise.resolve();
      },
    };
    const bundle = await sourceWorkflowBundle();
    const workers = await Promise.all(
      (['cpu', 'gpu', 'index'] as const).map((kind) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: taskQueueName(prefix, kind),
          activities: stub,
          maxConcurrentActivityTaskExecutions: 400,
          ...(kind === 'cpu' ? { workflowBundle: bundle } : {}),
        }),
      ),
    );
    const input: IndexBuildInput = {
      corpusManifestUrl: 's3://x/corpus/v1/manifest.json',
      encoder: 'all-minilm-l6-v2',
      embed: { maxLength: 256, normalize: true, batchSize: 32, segmentRows: 1024 },
      index: { kind: 'usearch', metric: 'l2sq' },
      recall: { queries: 200, k: 20 },
      outUrl: 's3://x',
      promote: true,
      concurrency: { embed: 200, index: 200 },
      heartbeatTimeoutSeconds: 60,
      taskQueuePrefix: prefix,
    };
    const workflowId = `index-build/${prefix}`;
    const result = env.client.workflow.execute(buildIndexWorkflow, {
      workflowId,
      taskQueue: taskQueueName(prefix, 'cpu'),
      args: [input],
    });
    const [summary] = await Promise.all([result, ...workers.map((w) => w.runUntil(result))]);
    const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const page = await env.client.workflow
      .getHandle(pageWorkflowId(pagedStageId(workflowId, 'embed'), 0))
      .fetchHistory();
    return {
      summary,
      calls,
      events: events.length,
      payload: Math.max(...events.map(largestPayload)),
      pageEvents: page.events?.length ?? 0,
    };
  }

  it('embeds every shard, then indexes every shard, then writes the manifest and promotes, in that order', async () => {
    const { summary, calls } = await build(3);
    expect(summary).toMatchObject({ buildId: 'b1', vectors: 30, promoted: true });
    expect(calls.slice(0, 3).sort()).toEqual(['embed 0', 'embed 1', 'embed 2']);
    expect(calls.slice(3, 6).sort()).toEqual(['index 0', 'index 1', 'index 2']);
    expect(calls.slice(6)).toEqual(['manifest', 'promote']);
  });

  it("keeps the build workflow's own history the same for 2,000 shards as for 3", async () => {
    const small = await build(3);
    const large = await build(2000);
    expect(large.calls.filter((c) => c.startsWith('embed'))).toHaveLength(2000);
    expect(large.events).toBe(small.events);
    expect(large.payload).toBeLessThan(2048);
    // A stage page holds at most 1,000 shards' activities, whatever the build's size.
    expect(large.pageEvents).toBeLessThanOrEqual(6 * 1000 + 10);
    console.log(
      `buildIndexWorkflow: ${large.events} events for 2,000 shards (${small.events} for 3), largest payload ` +
        `${large.payload} bytes; a stage page ${large.pageEvents} events`,
    );
  });
});
