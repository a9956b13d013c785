import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { EvaluationActivities } from '../../activities/evaluation';
import type { RetrievalActivities } from '../../activities/retrieval';
import type { EvalPlan } from '../../core/eval/run-layout';
import { evaluateWorkflow } from '../../workflows/evaluate';
import type { EvaluationInput } from '../../workflows/evaluate-types';
import { pageWorkflowId, pagedStageId } from '../../workflows/paged';
import { retrievalQueue, taskQueueName } from '../../workflows/shared';
import { localWorkflowEnvironment } from '../helpers/temporal-env';
import { sourceWorkflowBundle } from '../helpers/workflow-bundle';
import { largestPayload } from '../helpers/history';

/**
 * The evaluation's orchestration with stub activities on an ephemeral server: stages in order (plan, queries,
 * retrieval, one activity per document, compaction, manifest), a resumed run skipping what the plan says is done,
 * and the workflow's own history the same size for 5 documents as for 3,000.
 */
describe('evaluateWorkflow', () => {
  let env: TestWorkflowEnvironment;
  let counter = 0;

  beforeAll(async () => {
    env = await localWorkflowEnvironment();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function evaluate(documents: number, done: Partial<EvalPlan> = {}, settings: object = {}) {
    const prefix = `ev-${counter++}`;
    const calls: string[] = [];
    const plan: EvalPlan = {
      runUrl: 's3://x/runs/r1',
      buildId: 'b1',
      documents,
      parts: Math.ceil(documents / 1000),
      queriesEmbedded: false,
      retrieved: false,
      siftSelected: false,
      finished: false,
      ...done,
    };
    const stub: Partial<EvaluationActivities & RetrievalActivities> = {
      planEvaluation: () => Promise.resolve(plan),
      embedQueries: () => {
        calls.push('queries');
        return Promise.resolve({});
      },
      planRetrieval: () => Promise.resolve({ buildId: 'b1', groups: 1 }),
      searchShards: () => {
        calls.push('search');
        return Promise.resolve({ groups: 1 });
      },
      mergeNeighbors: ({ poolK }) => {
        calls.push(poolK === undefined ? 'merge' : `merge with a pool of ${poolK}`);
        return Promise.resolve({ buildId: 'b1', neighborsUrl: 's3://x/n.parquet', queries: documents, neighbors: 0 });
      },
      selectSiftNeighbors: () => {
        calls.push('sift');
        return Promise.resolve({});
      },
      evaluateDocument: ({ index }) => {
        calls.push(`document ${index}`);
        return Promise.resolve({ documents: 1, evaluated: 1, steps: 3 });
      },
      compactResults: ({ index }) => {
        calls.push(`part ${index}`);
        return Promise.resolve({});
      },
      writeEvaluationManifest: () => {
        calls.push('manifest');
        return Promise.resolve({
          runId: 'r1',
          runUrl: plan.runUrl,
          manifestUrl: `${plan.runUrl}/manifest.json`,
          buildId: 'b1',
          documents,
          evaluated: documents,
          skipped: {},
          steps: 3 * documents,
          parts: plan.parts,
          notDrawnOverSizeLimit: 0,
        });
      },
    };
    const bundle = await sourceWorkflowBundle();
    const queues = [taskQueueName(prefix, 'cpu'), taskQueueName(prefix, 'gpu'), retrievalQueue(prefix, 0)] as const;
    const workers = await Promise.all(
      queues.map((taskQueue, i) =>
        Worker.create({
          connection: env.nativeConnection,
          taskQueue,
          activities: stub,
          maxConcurrentActivityTaskExecutions: 400,
          ...(i === 0 ? { workflowBundle: bundle } : {}),
        }),
      ),
    );
    const input = {
      settings: { runId: 'r1', ...settings },
      runUrl: plan.runUrl,
      concurrency: 200,
      shardsPerGroup: 64,
      heartbeatTimeoutSeconds: 60,
      taskQueuePrefix: prefix,
    } as unknown as EvaluationInput;
    const workflowId = `eval/${prefix}`;
    const result = env.client.workflow.execute(evaluateWorkflow, {
      workflowId,
      taskQueue: queues[0],
      args: [input],
    });
    const [summary] = await Promise.all([result, ...workers.map((w) => w.runUntil(result))]);
    const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    return { summary, calls, events: events.length, payload: Math.max(...events.map(largestPayload)), workflowId };
  }

  it('plans, embeds the queries, retrieves, evaluates every document, compacts, then writes the manifest', async () => {
    const { summary, calls } = await evaluate(5);
    expect(summary).toMatchObject({ documents: 5, evaluated: 5, steps: 15 });
    expect(calls.slice(0, 3)).toEqual(['queries', 'search', 'merge']);
    expect(calls.slice(3, 8).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `document ${i}`));
    expect(calls.slice(8)).toEqual(['part 0', 'manifest']);
  });

  it('a resumed run never re-retrieves; a finished one only returns its manifest', async () => {
    const resumed = (await evaluate(3, { queriesEmbedded: true, retrieved: true })).calls;
    expect(resumed.slice(0, 3).sort()).toEqual(['document 0', 'document 1', 'document 2']);
    expect(resumed.slice(3)).toEqual(['part 0', 'manifest']);
    expect((await evaluate(3, { queriesEmbedded: true })).calls.slice(0, 2)).toEqual(['search', 'merge']);
    expect((await evaluate(3, { queriesEmbedded: true, retrieved: true, finished: true })).calls).toEqual(['manifest']);
  });

  it('with the SIFT baseline, retrieves a pool and selects from it after retrieval, before any document; once', async () => {
    const sift = { sift: { pool: 200, lambda: 0.01, alpha: 0 } };
    const { calls } = await evaluate(3, {}, sift);
    expect(calls.slice(0, 4)).toEqual(['queries', 'search', 'merge with a pool of 200', 'sift']);
    expect(calls.slice(4, 7).sort()).toEqual(['document 0', 'document 1', 'document 2']);
    // A run resumed after the selection (retrieval done too) goes straight to the documents.
    const resumed = await evaluate(3, { queriesEmbedded: true, retrieved: true, siftSelected: true }, sift);
    expect(resumed.calls.slice(0, 3).sort()).toEqual(['document 0', 'document 1', 'document 2']);
    // Retrieved but not yet selected (a worker lost in between): the selection runs, retrieval does not.
    const between = await evaluate(3, { queriesEmbedded: true, retrieved: true }, sift);
    expect(between.calls[0]).toBe('sift');
  });

  it("keeps the evaluation workflow's own history the same for 3,000 documents as for 5", async () => {
    const small = await evaluate(5);
    const large = await evaluate(3000);
    expect(large.calls.filter((c) => c.startsWith('document'))).toHaveLength(3000);
    expect(large.calls.filter((c) => c.startsWith('part'))).toHaveLength(3);
    expect(large.events).toBe(small.events);
    expect(large.payload).toBeLessThan(2048);
    const page = await env.client.workflow
      .getHandle(pageWorkflowId(pagedStageId(large.workflowId, 'evaluate'), 0))
      .fetchHistory();
    expect(page.events?.length ?? 0).toBeLessThanOrEqual(6 * 1000 + 10);
    console.log(
      `evaluateWorkflow: ${large.events} events for 3,000 documents (${small.events} for 5), largest payload ` +
        `${large.payload} bytes; an evaluation page ${page.events?.length} events`,
    );
  });
});
