import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { withLocalCopy } from '../../activities/evaluation';
import { evaluationInput, evaluationWorkflowId, readRunResults, startEvaluation } from '../../cli/eval-command';
import { indexBuildInput, startIndexBuild } from '../../cli/index-command';
import { ingestInput, startIngest } from '../../cli/ingest-command';
import { connectClient } from '../../cli/temporal-client';
import type { Config } from '../../core/config';
import type { EvalResultRow } from '../../core/eval/results';
import { RETRIEVAL_DIR, SIFT_NEIGHBORS_FILE, SIFT_POOL_FILE, documentKey } from '../../core/eval/run-layout';
import { readNeighborsFile } from '../../core/index/neighbors-file';
import { openStore } from '../../core/store/open-store';
import { localServerSpecs } from '../../infra/local-infra';
import { ensureServer, stopServer } from '../../infra/managed-process';
import type { evaluateWorkflow } from '../../workflows/evaluate';
import type { EvaluationSummary } from '../../workflows/evaluate-types';
import { pageWorkflowId, pagedStageId } from '../../workflows/paged';
import { testConfig } from '../test-config';
import { type WorkerProcess, sleep, spawnWorker, uniqueName, waitFor, writeGeneratedPile } from './harness';

const TINY_LM = path.resolve(__dirname, '..', 'fixtures', 'models', 'tiny-gpt2');
const ALL_QUEUES = 'cpu,gpu,index,retrieval';

/**
 * The evaluation workflow end to end on the real servers: a generated train corpus indexed with MiniLM, test
 * documents drawn per domain, TTT-NN with a tiny GPT-2 (dropout 0.1: reproducible only because masks are seeded per
 * document), the random-neighbor control, SIFT's picks from a pool of nearest neighbors, dynamic evaluation and the
 * in-context baseline.
 */
describe('evaluation on the real Temporal server and versitygw', () => {
  const scratch = path.join(os.tmpdir(), uniqueName('tttnn-eval-test'));
  let client: Client;
  let config: Config;
  let testCorpus: string;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    const base = testConfig();
    config = {
      ...base,
      model: TINY_LM,
      temporal: { ...base.temporal, taskQueuePrefix: uniqueName('t') },
      ingest: { ...base.ingest, rowsPerShard: 16 },
      index: {
        ...base.index,
        root: `s3://tttnn/${uniqueName('indexes')}`,
        kind: 'flat',
        maxLength: 64,
        segmentRows: 16,
        recallQueries: 10,
        recallK: 5,
        heartbeatTimeoutSeconds: 10,
      },
      eval: {
        ...base.eval,
        root: `s3://tttnn/${uniqueName('evals')}`,
        perDomain: 2,
        k: 3,
        maxLength: 32,
        maxNeighborTokens: 96,
        baselines: ['random', 'dynamic', 'in-context', 'sift'],
        siftPool: 8,
        // Adaptive SIFT keeps at least ⌊1/α⌋ = 1 pick; where it stops is recorded, not trained for.
        siftAlpha: 0.9,
        dynamicIterations: 2,
        heartbeatTimeoutSeconds: 10,
      },
    };
    client = await connectClient(config);
    workers.push(await spawnWorker(config, ALL_QUEUES));
    const corpora: Record<string, string> = {};
    for (const [part, count, seed] of [
      ['train', 64, 3],
      ['test', 16, 11],
    ] as const) {
      await writeGeneratedPile(path.join(scratch, `${part}.jsonl.zst`), count, true, seed);
      const input = `s3://tttnn/${uniqueName(part)}`;
      await openStore(input, config).putFile('corpus.jsonl.zst', path.join(scratch, `${part}.jsonl.zst`));
      const handle = await startIngest(
        client,
        config,
        ingestInput(config, { input, out: `s3://tttnn/${uniqueName('corpus')}` }),
        uniqueName('ingest'),
      );
      corpora[part] = (await handle.result()).manifestUrl;
    }
    testCorpus = corpora.test!;
    const build = await startIndexBuild(
      client,
      config,
      indexBuildInput(config, { corpus: corpora.train!, promote: true }),
    );
    await build.result();
  });

  afterEach(() => {
    for (const worker of workers.splice(0)) worker.child.kill('SIGKILL');
  });

  afterAll(async () => {
    for (const worker of workers.splice(0)) worker.child.kill('SIGKILL');
    await client.connection.close();
    await fs.rm(scratch, { recursive: true, force: true });
  });

  /** Everything but wall times, which no two runs share. */
  const comparable = (rows: EvalResultRow[]) =>
    rows.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !column.startsWith('seconds_'))));

  /** The result, waiting out a Temporal server that is being restarted. */
  async function resultOf(runId: string): Promise<EvaluationSummary> {
    for (;;) {
      try {
        return await client.workflow.getHandle<typeof evaluateWorkflow>(evaluationWorkflowId(runId)).result();
      } catch (err) {
        if (!/UNAVAILABLE|unavailable|connect|ECONNREFUSED|deadline/i.test(String(err))) throw err;
        await sleep(500);
      }
    }
  }

  /** Per document activity of the run, the attempt that completed it (1 = it ran once). */
  async function attempts(runId: string, documents: number): Promise<number[]> {
    const stage = pagedStageId(evaluationWorkflowId(runId), 'evaluate');
    const history = await client.workflow.getHandle(pageWorkflowId(stage, 0)).fetchHistory();
    const scheduled = new Map<string, number>(); // scheduled event id → document index
    const result = new Array<number>(documents).fill(0);
    for (const event of history.events ?? []) {
      if (event.activityTaskScheduledEventAttributes) {
        const payload = event.activityTaskScheduledEventAttributes.input!.payloads![0]!;
        const args = JSON.parse(Buffer.from(payload.data!).toString('utf8')) as { index: number };
        scheduled.set(String(event.eventId), args.index);
      }
      if (event.activityTaskStartedEventAttributes) {
        const attrs = event.activityTaskStartedEventAttributes;
        const index = scheduled.get(String(attrs.scheduledEventId))!;
        result[index] = attrs.attempt ?? 1;
      }
    }
    return result;
  }

  it('survives a SIGKILLed worker mid-document and a Temporal restart: results equal an undisturbed run, each document once', async () => {
    const undisturbedId = uniqueName('a');
    await startEvaluation(client, config, evaluationInput(config, { test: testCorpus, runId: undisturbedId }));
    const undisturbed = await resultOf(undisturbedId);
    expect(undisturbed).toMatchObject({ documents: 8, evaluated: 8, skipped: {} });
    const expected = await readRunResults(config, undisturbedId);
    expect(expected.rows.map((r) => r.doc_index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const row of expected.rows) {
      expect(row.bits_per_byte).toHaveLength(row.neighbor_ids.length + 1);
      expect(row.random_bits_per_byte).toHaveLength(row.neighbor_ids.length + 1);
      expect(row.steps).toBeGreaterThan(0);
      expect(row.dynamic_steps).toBeGreaterThan(0);
      expect(row.split_bytes).toBeGreaterThan(0);
      for (const column of ['split_nll_before', 'split_nll_dynamic', 'split_nll_ttt', 'in_context_nll'] as const) {
        expect(Number.isFinite(row[column])).toBe(true);
      }
    }
    // The neighbor lists persisted before training name each neighbor's domain, as the results rows do.
    const runStoreA = openStore(`${config.eval.root}/runs/${undisturbedId}`, config);
    const lists = await withLocalCopy(runStoreA, `${RETRIEVAL_DIR}/neighbors.parquet`, readNeighborsFile);
    for (const row of expected.rows) {
      const persisted = lists.lists[row.doc_index]!;
      expect(persisted.map((n) => n.docId)).toEqual(row.neighbor_ids);
      expect(persisted.map((n) => n.domain)).toEqual(row.neighbor_domains);
      for (const domain of row.neighbor_domains) expect(['Github', 'ArXiv', 'Pile-CC', 'FreeLaw']).toContain(domain);
    }
    // SIFT: k picks from the pool (whose first k are the nearest neighbors), persisted before training in pick
    // order, the curve over all of them, and adaptive SIFT's stop within them.
    const pool = await withLocalCopy(runStoreA, SIFT_POOL_FILE, readNeighborsFile);
    const siftLists = await withLocalCopy(runStoreA, SIFT_NEIGHBORS_FILE, readNeighborsFile);
    const k = config.eval.k;
    for (const row of expected.rows) {
      const candidates = pool.lists[row.doc_index]!;
      expect(candidates).toHaveLength(config.eval.siftPool);
      expect(candidates.slice(0, k).map((n) => n.docId)).toEqual(row.neighbor_ids);
      expect(row.sift_neighbor_ids).toHaveLength(k);
      for (const id of row.sift_neighbor_ids) expect(candidates.map((n) => n.docId)).toContain(id);
      expect(siftLists.lists[row.doc_index]!.map((n) => n.docId)).toEqual(row.sift_neighbor_ids);
      expect(row.sift_bits_per_byte).toHaveLength(k + 1);
      expect(row.sift_bits_per_byte[0]).toBe(row.bits_per_byte[0]); // the same model before training
      expect(row.sift_steps).toBeGreaterThan(0);
      expect(row.sift_stop).toBeGreaterThanOrEqual(1);
      expect(row.sift_stop).toBeLessThanOrEqual(k);
    }
    // Neighbors trained on lower bits/byte on average (the tiny model learns the generated vocabulary).
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    expect(mean(expected.rows.map((r) => r.bits_per_byte.at(-1)!))).toBeLessThan(
      mean(expected.rows.map((r) => r.bits_per_byte[0]!)),
    );

    // The disturbed run on workers that checkpoint every neighbor (eval.checkpointEvery): the retry continues from
    // the checkpoint instead of replaying, and the results must still equal the undisturbed run's (which replays).
    const checkpointing = { TTTNN_EVAL_CHECKPOINT_EVERY: '1' };
    workers.splice(0).forEach((w) => w.child.kill('SIGKILL'));
    workers.push(await spawnWorker(config, ALL_QUEUES, checkpointing));
    const disturbedId = uniqueName('b');
    const runStore = openStore(`${config.eval.root}/runs/${disturbedId}`, config);
    await startEvaluation(client, config, evaluationInput(config, { test: testCorpus, runId: disturbedId }));
    // SIGKILL once a document has a checkpoint (it is part-way through its neighbors) and is not committed, with at
    // least one document committed. Decided from the store alone, checkpoints listed before documents, and the kill
    // follows at once: heartbeat details on the server lag by up to the throttle interval, long enough on a fast
    // machine for the document to finish in between.
    const killedAt = await waitFor(
      'a checkpointed document not yet committed',
      async () => {
        const checkpointed: number[] = [];
        for await (const { key } of runStore.list('checkpoints/'))
          checkpointed.push(Number(/(\d+)\.ckpt$/.exec(key)![1]));
        const committed = new Set<string>();
        for await (const { key } of runStore.list('documents/')) committed.add(key);
        const inFlight = checkpointed.find((index) => !committed.has(documentKey(index)));
        if (inFlight === undefined || committed.size === 0) return undefined;
        workers.splice(0).forEach((w) => w.child.kill('SIGKILL'));
        return { index: inFlight };
      },
      120_000,
    );
    expect(await runStore.stat(documentKey(killedAt.index))).toBeUndefined();

    const [temporalServer] = (await localServerSpecs(config, () => undefined)).filter((s) => s.name === 'temporal');
    await stopServer(temporalServer!);
    await ensureServer(temporalServer!);
    workers.push(await spawnWorker(config, ALL_QUEUES, checkpointing));
    const disturbed = await resultOf(disturbedId);
    // The killed document continued from its last checkpoint (saved before the heartbeat the kill waited for).
    expect(workers[0]!.output()).toContain(`document ${killedAt.index}: resuming from its checkpoint after`);

    expect(disturbed).toMatchObject({ documents: 8, evaluated: 8, steps: undisturbed.steps });
    const got = await readRunResults(config, disturbedId);
    expect(comparable(got.rows)).toEqual(comparable(expected.rows));
    // Each document once: only the one in flight at the kill ran again; those committed before it ran once.
    const tries = await attempts(disturbedId, 8);
    expect(tries[killedAt.index]).toBeGreaterThan(1);
    expect(tries.filter((attempt, i) => i !== killedAt.index && attempt === 1).length).toBeGreaterThanOrEqual(6);
    let committed = 0;
    for await (const _ of runStore.list('documents/')) committed += 1;
    expect(committed).toBe(8);
    // Committed documents leave no checkpoint behind.
    const leftovers: string[] = [];
    for await (const { key } of runStore.list('checkpoints/')) leftovers.push(key);
    expect(leftovers).toEqual([]);
  }, 900_000);

  it('one run per run id: two starts at once attach to the same workflow, searchable by run id; other settings under that id are refused', async () => {
    workers.push(await spawnWorker(config, ALL_QUEUES));
    // Only the run's identity is under test: the lightest evaluation (a document per domain, one neighbor, no
    // baselines) keeps it short.
    const light: Config = { ...config, eval: { ...config.eval, perDomain: 1, k: 1, baselines: [] } };
    const runId = uniqueName('c');
    const input = evaluationInput(light, { test: testCorpus, runId });
    const [first, second] = await Promise.all([
      startEvaluation(client, config, input),
      startEvaluation(client, config, input),
    ]);
    const [a, b] = await Promise.all([first.describe(), second.describe()]);
    expect(b.runId).toBe(a.runId);
    await resultOf(runId);
    let executions = 0;
    for await (const _ of client.workflow.list({ query: `WorkflowId = '${evaluationWorkflowId(runId)}'` })) {
      executions += 1;
    }
    expect(executions).toBe(1);
    // Searchable in the Temporal UI by run id and model.
    const found = await waitFor('the run in visibility', async () => {
      const ids: string[] = [];
      const query = `TttnnRunId = '${runId}' AND TttnnModel = '${config.model}'`;
      for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids.length > 0 ? ids : undefined;
    });
    expect(found).toEqual([evaluationWorkflowId(runId)]);

    // The same run id with another k: a new workflow execution (the first finished) whose plan refuses it.
    const other = evaluationInput({ ...light, eval: { ...light.eval, k: 2 } }, { test: testCorpus, runId });
    const refused = await startEvaluation(client, config, other);
    const failure = await refused.result().then(
      () => undefined,
      (err: { cause?: { cause?: Error } }) => err,
    );
    expect(String(failure?.cause?.cause?.message)).toMatch(/was started with other settings.*eval resume/);
  }, 600_000);
});
