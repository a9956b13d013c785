import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { IngestActivities } from '../../activities/ingest';
import { ingestWorkflow } from '../../workflows/ingest';
import type { Counters } from '../../workflows/paged';
import {
  type IngestFileInput,
  type IngestInput,
  type IngestPlanRef,
  type IngestSummary,
  ingestProgressQuery,
  taskQueueName,
} from '../../workflows/shared';
import { localWorkflowEnvironment } from '../helpers/temporal-env';
import { sourceWorkflowBundle } from '../helpers/workflow-bundle';

/** The ingest workflow's orchestration, with stub activities on an ephemeral server of the pinned Temporal CLI. */
describe('ingestWorkflow', () => {
  let env: TestWorkflowEnvironment;
  let queueCounter = 0;

  beforeAll(async () => {
    env = await localWorkflowEnvironment();
  });
  afterAll(async () => {
    await env?.teardown();
  });

  const input = (prefix: string): IngestInput => ({
    inputUrl: 's3://in/x',
    outUrl: 's3://out/y',
    limits: { rowsPerShard: 10, maxShardBytes: 1000, maxDocumentBytes: 100 },
    concurrency: 2,
    heartbeatTimeoutSeconds: 5,
    taskQueuePrefix: prefix,
  });
  const plan: IngestPlanRef = { version: 'v1', outStoreUrl: 's3://out/y/v1', files: 5, bytesTotal: 510 };
  const counters = (index: number): Counters => ({
    files: 1,
    bytes_in: 100 + index,
    documents: 2,
    text_bytes: 20,
    shards: 1,
    skipped_malformed_json: 1,
  });
  const summary: IngestSummary = {
    version: 'v1',
    manifestUrl: 's3://out/y/v1/manifest.json',
    files: 5,
    documents: 10,
    bytes: 100,
    shards: 5,
    skipped: { malformed_json: 5 },
    domains: {},
    fileErrors: [],
  };

  async function runWith(activities: Partial<IngestActivities>, run: (prefix: string) => Promise<void>) {
    const prefix = `wf-${queueCounter++}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: taskQueueName(prefix, 'cpu'),
      activities,
      workflowBundle: await sourceWorkflowBundle(),
    });
    await worker.runUntil(run(prefix));
  }

  /** The innermost cause of a failure: through the ingest, its paged stage, the page and the activity. */
  function rootCause(error: unknown): Error {
    let cause = error as Error;
    while (cause.cause instanceof Error) cause = cause.cause;
    return cause;
  }

  it('ingests every file with at most `concurrency` in flight and small inputs, then writes the manifest last', async () => {
    const events: string[] = [];
    const fileInputs: IngestFileInput[] = [];
    const manifestInputs: unknown[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    await runWith(
      {
        planIngest: () => Promise.resolve(plan),
        ingestFile: async (fileInput) => {
          fileInputs.push(fileInput);
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 50));
          inFlight -= 1;
          events.push(`file ${fileInput.index}`);
          return counters(fileInput.index);
        },
        writeIngestManifest: (manifestInput) => {
          events.push('manifest');
          manifestInputs.push(manifestInput);
          return Promise.resolve(summary);
        },
      },
      async (prefix) => {
        const handle = await env.client.workflow.start(ingestWorkflow, {
          workflowId: `ingest-${prefix}`,
          taskQueue: taskQueueName(prefix, 'cpu'),
          args: [input(prefix)],
        });
        expect(await handle.result()).toEqual(summary);
        const progress = await handle.query(ingestProgressQuery);
        expect(progress).toEqual({
          phase: 'done',
          version: 'v1',
          filesTotal: 5,
          filesDone: 5,
          bytesTotal: 510,
          bytesDone: 510,
          documents: 10,
          skipped: 5,
        });
      },
    );
    expect(maxInFlight).toBe(2);
    expect(events.slice(0, 5).sort()).toEqual(['file 0', 'file 1', 'file 2', 'file 3', 'file 4']);
    expect(events.slice(5)).toEqual(['manifest']);
    // References only: every file gets the same small argument but its index; the manifest step reads the store.
    const limits = input('x').limits;
    expect(fileInputs.sort((a, b) => a.index - b.index)).toEqual(
      [0, 1, 2, 3, 4].map((index) => ({ outStoreUrl: plan.outStoreUrl, limits, index })),
    );
    expect(manifestInputs).toEqual([{ outStoreUrl: plan.outStoreUrl, limits }]);
  });

  it('fails with the cause when an input is missing, without retrying, and writes no manifest', async () => {
    let planCalls = 0;
    let manifestCalls = 0;
    await runWith(
      {
        planIngest: () => {
          planCalls += 1;
          throw ApplicationFailure.nonRetryable('no *.jsonl or *.jsonl.zst files under s3://in/x', 'MissingInput');
        },
        writeIngestManifest: () => {
          manifestCalls += 1;
          throw new Error('must not be called');
        },
      },
      async (prefix) => {
        const error = await env.client.workflow
          .execute(ingestWorkflow, {
            workflowId: `ingest-${prefix}`,
            taskQueue: taskQueueName(prefix, 'cpu'),
            args: [input(prefix)],
          })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WorkflowFailedError);
        expect(((error as WorkflowFailedError).cause?.cause as Error).message).toMatch(/no \*\.jsonl/);
      },
    );
    expect(planCalls).toBe(1);
    expect(manifestCalls).toBe(0);
  });

  it('fails through the stage and its page when a file fails for good, without retrying, and writes no manifest', async () => {
    const fileCalls: number[] = [];
    let manifestCalls = 0;
    let error: unknown;
    await runWith(
      {
        planIngest: () => Promise.resolve({ ...plan, files: 1, bytesTotal: 100 }),
        ingestFile: ({ index }) => {
          fileCalls.push(index);
          throw ApplicationFailure.nonRetryable('input file s3://in/x/f0.jsonl does not exist', 'MissingInput');
        },
        writeIngestManifest: () => {
          manifestCalls += 1;
          return Promise.resolve(summary);
        },
      },
      async (prefix) => {
        error = await env.client.workflow
          .execute(ingestWorkflow, {
            workflowId: `ingest-${prefix}`,
            taskQueue: taskQueueName(prefix, 'cpu'),
            args: [input(prefix)],
          })
          .catch((e: unknown) => e);
      },
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = rootCause(error);
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('MissingInput');
    expect(cause.message).toMatch(/f0\.jsonl does not exist/);
    expect(fileCalls).toEqual([0]);
    expect(manifestCalls).toBe(0);
  });
});
