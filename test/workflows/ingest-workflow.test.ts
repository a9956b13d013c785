import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { IngestActivities } from '../../activities/ingest';
import { ensureTemporalCli } from '../../infra/tools';
import { ingestWorkflow } from '../../workflows/ingest';
import {
  type FileIngestResult,
  type IngestInput,
  type IngestPlan,
  ingestProgressQuery,
  taskQueueName,
} from '../../workflows/shared';
import { WORKFLOW_BUNDLE } from '../../workers/worker';
import { existsSync } from 'node:fs';
import { testConfig } from '../test-config';

/** The ingest workflow's orchestration, with stub activities on an ephemeral server of the pinned Temporal CLI. */
describe('ingestWorkflow', () => {
  let env: TestWorkflowEnvironment;
  let queueCounter = 0;

  beforeAll(async () => {
    // The failure test fails on purpose: keep the SDK's warnings about it out of the test output.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    const path = await ensureTemporalCli(testConfig().toolsDir, () => undefined);
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path }, ip: '127.0.0.1' },
    });
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
  const plan: IngestPlan = {
    version: 'v1',
    inputStoreUrl: 's3://in/x',
    outStoreUrl: 's3://out/y/v1',
    files: Array.from({ length: 5 }, (_, i) => ({ key: `f${i}.jsonl`, size: 100 + i, fingerprint: `fp${i}` })),
  };
  const result = (file: string): FileIngestResult => ({
    file,
    lines: 3,
    documents: 2,
    bytes: 20,
    skipped: { malformed_json: 1 },
    domains: { Github: { documents: 2, bytes: 20 } },
    shards: [],
  });

  async function runWith(activities: Partial<IngestActivities>, run: (prefix: string) => Promise<void>) {
    const prefix = `wf-${queueCounter++}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: taskQueueName(prefix, 'cpu'),
      activities,
      ...(existsSync(WORKFLOW_BUNDLE)
        ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
        : { workflowsPath: require.resolve('../../workflows') }),
    });
    await worker.runUntil(run(prefix));
  }

  it('ingests every file with at most `concurrency` in flight, then writes the manifest last', async () => {
    const events: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    await runWith(
      {
        planIngest: () => Promise.resolve(plan),
        ingestFile: async ({ fileIndex }) => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 50));
          inFlight -= 1;
          events.push(`file ${fileIndex}`);
          return result(plan.files[fileIndex]!.key);
        },
        writeIngestManifest: ({ results }) => {
          events.push('manifest');
          expect(results.map((r) => r.file)).toEqual(plan.files.map((f) => f.key));
          return Promise.resolve({
            version: 'v1',
            manifestUrl: 's3://out/y/v1/manifest.json',
            files: results.length,
            documents: 10,
            bytes: 100,
            shards: 0,
            skipped: { malformed_json: 5 },
            domains: {},
            fileErrors: [],
          });
        },
      },
      async (prefix) => {
        const handle = await env.client.workflow.start(ingestWorkflow, {
          workflowId: `ingest-${prefix}`,
          taskQueue: taskQueueName(prefix, 'cpu'),
          args: [input(prefix)],
        });
        const summary = await handle.result();
        expect(summary.documents).toBe(10);
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
    expect(events[5]).toBe('manifest');
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
});
