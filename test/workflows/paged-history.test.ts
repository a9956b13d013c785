import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { IngestActivities } from '../../activities/ingest';
import { type PagedWorkStatus, pagedWorkStatus } from '../../cli/paged-progress';
import { ingestWorkflow } from '../../workflows/ingest';
import {
  type Counters,
  type PagedWorkInput,
  pageWorkflowId,
  pagedProgressQuery,
  pagedStageId,
  pagedWorkWorkflow,
} from '../../workflows/paged';
import { INGEST_FILES_STAGE, type IngestSummary, ingestProgressQuery, taskQueueName } from '../../workflows/shared';
import { localWorkflowEnvironment } from '../helpers/temporal-env';
import { sourceWorkflowBundle } from '../helpers/workflow-bundle';

/**
 * Item counts: on 2 shared cores the server runs ~200 instant activities/s, so the suite runs 10,000 items through
 * the paged stage and 3,000 files through the ingest; `TTTNN_HISTORY_ITEMS=20000` runs both at that count
 * (the README's figures).
 */
const ITEMS = Number(process.env.TTTNN_HISTORY_ITEMS ?? 10_000);
const INGEST_FILES = Number(process.env.TTTNN_HISTORY_ITEMS ?? 3_000);
const PAGE_SIZE = 1000;
const pagesOf = (items: number) => Math.ceil(items / PAGE_SIZE);
/**
 * Bounds that do not depend on the item count. Events: a page of N items records 3 per activity (scheduled, started,
 * completed) and 3 per workflow task, at most one task per completion plus the first: 6N + 8 at worst; a parent run
 * records fewer (pagesPerRun children). Payloads: inputs are references and results a fixed set of counters.
 */
const MAX_EVENTS_PER_EXECUTION = 6 * PAGE_SIZE + 10;
const MAX_HISTORY_BYTES = 4 * 1024 * 1024;
const MAX_PAYLOAD_BYTES = 8 * 1024;

interface ExecutionFigures {
  workflowId: string;
  runId: string;
  events: number;
  historyBytes: number;
  largestPayload: number;
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Bytes of a Payload as stored: data plus metadata keys and values. */
function payloadBytes(payload: { data?: Uint8Array | null; metadata?: Record<string, Uint8Array> | null }): number {
  let bytes = payload.data?.length ?? 0;
  for (const [key, value] of Object.entries(payload.metadata ?? {})) bytes += key.length + value.length;
  return bytes;
}

/** The largest Payload anywhere in an event: inputs, results, heartbeat details, headers, memos. */
function largestPayloadIn(value: unknown, seen = new Set<unknown>()): number {
  if (typeof value !== 'object' || value === null || seen.has(value) || value instanceof Uint8Array) return 0;
  seen.add(value);
  const record = value as Record<string, unknown>;
  if (record.data instanceof Uint8Array && typeof record.metadata === 'object') return payloadBytes(record);
  let largest = 0;
  for (const child of Object.values(record)) largest = Math.max(largest, largestPayloadIn(child, seen));
  return largest;
}

/** Every run of a workflow id, newest first, following continue-as-new back to the first run. */
async function runsOf(client: Client, workflowId: string): Promise<ExecutionFigures[]> {
  const figures: ExecutionFigures[] = [];
  let runId: string | undefined;
  for (;;) {
    const handle = client.workflow.getHandle(workflowId, runId);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const description = await handle.describe();
    figures.push({
      workflowId,
      runId: description.runId,
      events: events.length,
      historyBytes: description.historySize ?? 0,
      largestPayload: Math.max(0, ...events.map((event) => largestPayloadIn(event))),
    });
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
    if (!runId) return figures;
  }
}

/** Every execution of a paged stage: the parent's runs and one child per page. */
async function stageExecutions(client: Client, stageId: string, pages: number): Promise<ExecutionFigures[]> {
  const executions = await runsOf(client, stageId);
  for (let page = 0; page < pages; page++) executions.push(...(await runsOf(client, pageWorkflowId(stageId, page))));
  return executions;
}

const max = (executions: ExecutionFigures[], f: (e: ExecutionFigures) => number) => Math.max(...executions.map(f));

function report(what: string, executions: ExecutionFigures[], seconds: number): string {
  const largest = (f: (e: ExecutionFigures) => number) => max(executions, f);
  return (
    `${what}: ${executions.length} executions in ${seconds.toFixed(1)} s; per execution at most ` +
    `${largest((e) => e.events)} events, ${(largest((e) => e.historyBytes) / 1024).toFixed(0)} KiB of history; ` +
    `largest payload ${largest((e) => e.largestPayload)} bytes`
  );
}

function expectBounded(executions: ExecutionFigures[]): void {
  expect(max(executions, (e) => e.events)).toBeLessThanOrEqual(MAX_EVENTS_PER_EXECUTION);
  expect(max(executions, (e) => e.historyBytes)).toBeLessThanOrEqual(MAX_HISTORY_BYTES);
  expect(max(executions, (e) => e.largestPayload)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
}

/**
 * The paged fan-out's history stays bounded whatever the item count: a real (ephemeral) Temporal server runs it
 * over 20,000 instant stub items, then every execution's history is fetched and measured.
 */
describe('pagedWorkWorkflow history', () => {
  let env: TestWorkflowEnvironment;
  let queueCounter = 0;

  beforeAll(async () => {
    // Activities on the workflow's own queue go out with the workflow task's reply: same events, less load.
    env = await localWorkflowEnvironment(['--dynamic-config-value', 'system.enableActivityEagerExecution=true']);
  });
  afterAll(async () => {
    await env?.teardown();
  });

  async function runWith(activities: object, run: (taskQueue: string) => Promise<void>) {
    const taskQueue = taskQueueName(`paged-${queueCounter++}`, 'cpu');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      activities,
      maxConcurrentActivityTaskExecutions: 400,
      workflowBundle: await sourceWorkflowBundle(),
    });
    await worker.runUntil(run(taskQueue));
  }

  const work = (taskQueue: string, total: number): PagedWorkInput => ({
    activity: 'countItem',
    args: { corpus: 's3://bucket/corpus/v1' },
    total,
    taskQueue,
    profile: 'item',
    heartbeatTimeoutSeconds: 30,
    concurrency: 200,
  });

  it('runs every item once across pages and continue-as-new, and sums their counters', async () => {
    const calls: number[] = [];
    const args: unknown[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const countItem = async (arg: { index: number; corpus: string }): Promise<Counters> => {
      calls.push(arg.index);
      args.push(arg);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight -= 1;
      return { items: 1, index_sum: arg.index };
    };
    let result: Counters | undefined;
    let progress: unknown;
    let stageRuns: ExecutionFigures[] = [];
    await runWith({ countItem }, async (taskQueue) => {
      const workflowId = `paged-small-${taskQueue}`;
      const input = { ...work(taskQueue, 23), concurrency: 3, pageSize: 4, pagesPerRun: 2, pageConcurrency: 2 };
      result = await env.client.workflow.execute(pagedWorkWorkflow, { workflowId, taskQueue, args: [input] });
      progress = await env.client.workflow.getHandle(workflowId).query(pagedProgressQuery);
      stageRuns = await runsOf(env.client, workflowId);
    });
    expect(result).toEqual({ items: 23, index_sum: (22 * 23) / 2 });
    expect(calls.sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect(args).toContainEqual({ corpus: 's3://bucket/corpus/v1', index: 22 });
    expect(maxInFlight).toBeLessThanOrEqual(3 * 2);
    expect(maxInFlight).toBeGreaterThan(1);
    // 6 pages, 2 per run: three runs, the last one answering for the whole stage.
    expect(stageRuns).toHaveLength(3);
    expect(progress).toEqual({ itemsDone: 23, total: 23, counters: result, runningPages: [] });
  });

  it('shows live progress to a CLI: finished pages from the parent, the running page and its heartbeats', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const countItem = async ({ index }: { index: number }): Promise<Counters> => {
      if (index === 5) {
        Context.current().heartbeat({ rawBytesRead: 42 });
        await gate;
      }
      return { items: 1 };
    };
    let status: PagedWorkStatus | undefined;
    let result: Counters | undefined;
    await runWith({ countItem }, async (taskQueue) => {
      const workflowId = `paged-live-${taskQueue}`;
      const input = { ...work(taskQueue, 7), concurrency: 2, pageSize: 4 };
      const handle = await env.client.workflow.start(pagedWorkWorkflow, { workflowId, taskQueue, args: [input] });
      // Until items 4 and 6 are done and 5 has heartbeated; then nothing moves until the gate opens.
      status = await waitFor(async () => {
        const now = await pagedWorkStatus(env.client.workflow, workflowId, true).catch(() => undefined);
        return now?.heartbeats.length && now.itemsDone === 6 ? now : undefined;
      });
      release();
      result = await handle.result();
    });
    // Page 0 (items 0-3) finished and summed by the parent; in page 1, items 4 and 6 done, 5 in flight.
    expect(status).toEqual({
      itemsDone: 6,
      total: 7,
      counters: { items: 6 },
      runningPages: [1],
      heartbeats: [{ rawBytesRead: 42 }],
    });
    expect(result).toEqual({ items: 7 });
  });

  it(`keeps every execution within ${MAX_EVENTS_PER_EXECUTION} events and ${MAX_PAYLOAD_BYTES} bytes per payload over ${ITEMS} items`, async () => {
    let calls = 0;
    const countItem = (arg: { index: number }): Promise<Counters> => {
      calls += 1;
      return Promise.resolve({ items: 1, bytes: arg.index % 7, skipped_blank_line: arg.index % 2 });
    };
    let result: Counters | undefined;
    let executions: ExecutionFigures[] = [];
    let seconds = 0;
    await runWith({ countItem }, async (taskQueue) => {
      const workflowId = `paged-big-${taskQueue}`;
      const started = Date.now();
      const input = { ...work(taskQueue, ITEMS), pageSize: PAGE_SIZE, pagesPerRun: 5, pageConcurrency: 4 };
      result = await env.client.workflow.execute(pagedWorkWorkflow, { workflowId, taskQueue, args: [input] });
      seconds = (Date.now() - started) / 1000;
      executions = await stageExecutions(env.client, workflowId, pagesOf(ITEMS));
    });
    console.log(report(`pagedWorkWorkflow over ${ITEMS} items`, executions, seconds));
    expect(calls).toBe(ITEMS);
    expect(result?.items).toBe(ITEMS);
    // Five pages per parent run: the parent's runs and one child per page.
    expect(executions).toHaveLength(Math.ceil(pagesOf(ITEMS) / 5) + pagesOf(ITEMS));
    expectBounded(executions);
  });

  it(`keeps the ingest's executions within the same bounds over ${INGEST_FILES} files (stub activities)`, async () => {
    let files = 0;
    const activities: Partial<IngestActivities> = {
      planIngest: () =>
        Promise.resolve({
          version: 'v1',
          outStoreUrl: 's3://out/v1',
          files: INGEST_FILES,
          bytesTotal: INGEST_FILES * 10,
        }),
      ingestFile: () => {
        files += 1;
        return Promise.resolve({
          files: 1,
          bytes_in: 10,
          documents: 3,
          text_bytes: 25,
          shards: 1,
          skipped_blank_line: 1,
        });
      },
      writeIngestManifest: () =>
        Promise.resolve<IngestSummary>({
          version: 'v1',
          manifestUrl: 's3://out/v1/manifest.json',
          files: INGEST_FILES,
          documents: 3 * INGEST_FILES,
          bytes: 25 * INGEST_FILES,
          shards: INGEST_FILES,
          skipped: { blank_line: INGEST_FILES },
          domains: { Github: { documents: 3 * INGEST_FILES, bytes: 25 * INGEST_FILES } },
          fileErrors: [],
        }),
    };
    let executions: ExecutionFigures[] = [];
    let progress: unknown;
    let seconds = 0;
    await runWith(activities, async (taskQueue) => {
      const prefix = taskQueue.replace(/-cpu$/, '');
      const workflowId = `ingest-big-${prefix}`;
      const started = Date.now();
      const handle = await env.client.workflow.start(ingestWorkflow, {
        workflowId,
        taskQueue,
        args: [
          {
            inputUrl: 's3://in/x',
            outUrl: 's3://out',
            limits: { rowsPerShard: 10, maxShardBytes: 1000, maxDocumentBytes: 100 },
            concurrency: 200,
            heartbeatTimeoutSeconds: 30,
            taskQueuePrefix: prefix,
          },
        ],
      });
      await handle.result();
      seconds = (Date.now() - started) / 1000;
      progress = await handle.query(ingestProgressQuery);
      executions = [
        ...(await runsOf(env.client, workflowId)),
        ...(await stageExecutions(env.client, pagedStageId(workflowId, INGEST_FILES_STAGE), pagesOf(INGEST_FILES))),
      ];
    });
    console.log(report(`ingestWorkflow over ${INGEST_FILES} stub files`, executions, seconds));
    expect(files).toBe(INGEST_FILES);
    expect(progress).toMatchObject({
      phase: 'done',
      filesDone: INGEST_FILES,
      bytesDone: 10 * INGEST_FILES,
      skipped: INGEST_FILES,
    });
    // The ingest, its stage's parent runs (20 pages per run by default) and one child per page.
    expect(executions).toHaveLength(1 + Math.ceil(pagesOf(INGEST_FILES) / 20) + pagesOf(INGEST_FILES));
    expectBounded(executions);
  });
});
