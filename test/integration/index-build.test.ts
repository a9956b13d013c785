import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient } from '../../cli/temporal-client';
import { indexBuildInput, startIndexBuild } from '../../cli/index-command';
import { ingestInput, startIngest } from '../../cli/ingest-command';
import type { Config } from '../../core/config';
import { readDocumentShard } from '../../core/corpus/document-shards';
import { embedTexts } from '../../core/embed';
import { promoteBuild } from '../../core/index/build-layout';
import { readNeighborsFile } from '../../core/index/neighbors-file';
import { IndexBuildReader, resolveBuildId } from '../../core/index/retrieve';
import { writeVectorsFile } from '../../core/index/vectors-file';
import { loadEncoder } from '../../core/models/registry';
import type { Manifest } from '../../core/store/manifest';
import { downloadVerified } from '../../core/store/manifest';
import { openStore } from '../../core/store/open-store';
import { ensureMiniLM } from '../../infra/models';
import type { IndexBuildSummary } from '../../workflows/index-types';
import { retrieveWorkflow } from '../../workflows/retrieve';
import { testConfig } from '../test-config';
import { type WorkerProcess, spawnWorker, uniqueName, waitFor, writeGeneratedPile } from './harness';

/** A config for one test: its own task queues and index root. */
function isolated(index: Partial<Config['index']> = {}): Config {
  const base = testConfig();
  return {
    ...base,
    temporal: { ...base.temporal, taskQueuePrefix: uniqueName('t') },
    index: {
      ...base.index,
      root: `s3://tttnn/${uniqueName('indexes')}`,
      maxLength: 64,
      batchSize: 8,
      segmentRows: 8,
      recallQueries: 20,
      recallK: 10,
      embedConcurrency: 1,
      buildConcurrency: 1,
      heartbeatTimeoutSeconds: 5,
      ...index,
    },
  };
}

describe('index build on the real Temporal server and versitygw', () => {
  const scratch = path.join(os.tmpdir(), uniqueName('tttnn-index-test'));
  let client: Client;
  let corpusManifestUrl: string;
  const docs: { docId: string; text: string }[] = [];
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    const config = { ...testConfig(), temporal: { ...testConfig().temporal, taskQueuePrefix: uniqueName('t') } };
    client = await connectClient(config);
    // Four domains, 6 shards of 16 documents.
    await writeGeneratedPile(path.join(scratch, 'corpus.jsonl.zst'), 96, true, 5);
    const input = `s3://tttnn/${uniqueName('input')}`;
    await openStore(input, config).putFile('corpus.jsonl.zst', path.join(scratch, 'corpus.jsonl.zst'));
    workers.push(await spawnWorker(config));
    const ingestConfig = { ...config, ingest: { ...config.ingest, rowsPerShard: 16 } };
    const handle = await startIngest(
      client,
      ingestConfig,
      ingestInput(ingestConfig, { input, out: `s3://tttnn/${uniqueName('corpus')}` }),
      uniqueName('ingest'),
    );
    corpusManifestUrl = (await handle.result()).manifestUrl;
    workers.splice(0).forEach((w) => w.child.kill('SIGKILL'));
    const corpus = openStore(corpusManifestUrl.slice(0, -'/manifest.json'.length), config);
    const manifest = JSON.parse((await corpus.getBytes('manifest.json')).toString()) as Manifest<unknown>;
    for (const object of manifest.objects.filter((o) => o.key.endsWith('.parquet'))) {
      const local = path.join(scratch, path.basename(object.key));
      await downloadVerified(corpus, object, local);
      for (const row of await readDocumentShard(local)) docs.push({ docId: row.doc_id, text: row.text });
    }
  });

  afterEach(() => {
    for (const worker of workers.splice(0)) worker.child.kill('SIGKILL');
  });

  afterAll(async () => {
    await client.connection.close();
    await fs.rm(scratch, { recursive: true, force: true });
  });

  async function build(config: Config, id?: string): Promise<IndexBuildSummary> {
    const handle = await startIndexBuild(
      client,
      config,
      indexBuildInput(config, { corpus: corpusManifestUrl, id, promote: false }),
    );
    return handle.result();
  }

  async function objectsOf(config: Config, buildId: string): Promise<Map<string, string>> {
    const store = openStore(`${config.index.root}/builds/${buildId}`, config);
    const manifest = JSON.parse((await store.getBytes('manifest.json')).toString()) as Manifest<unknown>;
    return new Map(manifest.objects.map((o) => [o.key, o.sha256]));
  }

  /** Neighbors of a few corpus documents' own texts, through the build as a reader opens it. */
  async function neighborsOf(config: Config, buildId: string) {
    const store = (url: string) => openStore(url, config);
    const reader = await IndexBuildReader.open(
      store(config.index.root),
      buildId,
      path.join(scratch, uniqueName('cache')),
      store,
    );
    try {
      const { model, tokenizer } = await loadEncoder(await ensureMiniLM(config.toolsDir, () => undefined), {
        log: () => undefined,
      });
      const probes = [docs[0]!, docs[37]!, docs[95]!];
      const vectors = embedTexts(
        model,
        tokenizer,
        probes.map((d) => d.text),
        { maxLength: 64, normalize: true },
      );
      const queries = new Float32Array(vectors.flatMap((v) => Array.from(v)));
      return {
        probes,
        results: await reader.search(queries, 5),
        texts: await reader.texts((await reader.search(queries, 2)).flat()),
      };
    } finally {
      reader.dispose();
    }
  }

  it('builds per-shard indexes whose search finds a document itself first, at distance 0; a re-run does no work', async () => {
    const config = isolated({ kind: 'usearch' });
    workers.push(await spawnWorker(config, 'cpu,gpu,index'));
    const startedAt = new Date().toISOString();
    const summary = await build(config);
    expect(summary).toMatchObject({ shards: 6, documents: 96, vectors: 96, skipped: {} });
    expect(summary.recall.min).toBeGreaterThanOrEqual(0.9);

    // Findable in the Temporal UI by build id, corpus version and encoder (visibility lags the start a little).
    // Started by this test: a Temporal server reused from an earlier run holds earlier builds of the same corpus.
    const corpusVersion = corpusManifestUrl.split('/').at(-2)!;
    const query =
      `TttnnIndexBuild = '${summary.buildId}' AND TttnnCorpus = '${corpusVersion}' ` +
      `AND TttnnEncoder = '${config.index.encoder}' AND StartTime >= '${startedAt}'`;
    const found = await waitFor('the build in visibility', async () => {
      const ids: string[] = [];
      for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids.length > 0 ? ids : undefined;
    });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^index-build\//);

    const { probes, results, texts } = await neighborsOf(config, summary.buildId);
    probes.forEach((probe, q) => {
      expect(results[q]![0]!.docId).toBe(probe.docId);
      expect(results[q]![0]!.distance).toBeLessThan(1e-5);
      expect(results[q]!.map((n) => n.rank)).toEqual([1, 2, 3, 4, 5]);
      const distances = results[q]!.map((n) => n.distance);
      expect([...distances].sort((a, b) => a - b)).toEqual(distances);
      expect(texts[q * 2]!.text).toBe(probe.text);
    });

    // The same request again: the plan finds the manifest and nothing is written.
    const root = openStore(config.index.root, config);
    const keys = async () => {
      const all: string[] = [];
      for await (const o of root.list('')) all.push(o.key);
      return all;
    };
    const before = await keys();
    const again = await build(config);
    expect(again.buildId).toBe(summary.buildId);
    expect(await keys()).toEqual(before);

    // Batched retrieval through workers, two shard groups on their own queues: the same neighbors as the reader.
    const queryFile = path.join(scratch, uniqueName('queries'));
    const { model, tokenizer } = await loadEncoder(await ensureMiniLM(config.toolsDir, () => undefined), {
      log: () => undefined,
    });
    const probeVectors = embedTexts(
      model,
      tokenizer,
      probes.map((d) => d.text),
      { maxLength: 64, normalize: true },
    );
    await writeVectorsFile(
      queryFile,
      probes.map((p, i) => ({ docId: p.docId, shardRow: i })),
      new Float32Array(probeVectors.flatMap((v) => Array.from(v))),
      probeVectors[0]!.length,
    );
    const retrievalOut = `s3://tttnn/${uniqueName('retrieval')}`;
    await openStore(retrievalOut, config).putFile('queries.parquet', queryFile);
    workers.push(await spawnWorker(config, 'retrieval'));
    const retrieved = await client.workflow.execute(retrieveWorkflow, {
      workflowId: uniqueName('retrieve'),
      taskQueue: `${config.temporal.taskQueuePrefix}-cpu`,
      args: [
        {
          indexRoot: config.index.root,
          build: summary.buildId,
          queriesUrl: `${retrievalOut}/queries.parquet`,
          k: 5,
          maxDistance: 4,
          shardsPerGroup: 4,
          outUrl: retrievalOut,
          heartbeatTimeoutSeconds: 30,
          taskQueuePrefix: config.temporal.taskQueuePrefix,
        },
      ],
    });
    expect(retrieved).toMatchObject({ buildId: summary.buildId, queries: 3, neighbors: 15 });
    const neighborsFile = path.join(scratch, uniqueName('neighbors'));
    await fs.writeFile(neighborsFile, await openStore(retrievalOut, config).getBytes('neighbors.parquet'));
    const { queryIds, lists } = await readNeighborsFile(neighborsFile);
    expect(queryIds).toEqual(probes.map((p) => p.docId));
    expect(lists).toEqual(results);

    // A damaged index file: one line naming it; a verifying re-run rebuilds that shard alone, with the same results.
    const store = (url: string) => openStore(url, config);
    await expect(IndexBuildReader.open(root, 'nope', scratch, store)).rejects.toThrow(
      `no finished index build nope under ${config.index.root}/`,
    );
    const buildStore = openStore(`${config.index.root}/builds/${summary.buildId}`, config);
    const damaged = 'index/00002.usearch';
    const bytes = await buildStore.getBytes(damaged);
    bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
    await buildStore.putBytes(damaged, bytes);
    await expect(
      IndexBuildReader.open(root, summary.buildId, path.join(scratch, uniqueName('cache')), store),
    ).rejects.toThrow(
      new RegExp(
        `object .*builds/${summary.buildId}/${damaged} does not match its manifest .*--verify' rebuilds the damaged shards`,
      ),
    );
    const verified = await startIndexBuild(
      client,
      config,
      indexBuildInput(config, { corpus: corpusManifestUrl, promote: false, verify: true }),
    ).then((h) => h.result());
    expect(verified).toMatchObject({ buildId: summary.buildId, damagedShards: 1, vectors: 96 });
    // The reader verifies every object against the new manifest as it opens them.
    expect((await neighborsOf(config, summary.buildId)).results).toEqual(results);

    // Promotion: 'current' names it.
    await expect(resolveBuildId(root, 'current')).rejects.toThrow(/no build is current/);
    await promoteBuild(root, summary.buildId);
    expect(await resolveBuildId(root, 'current')).toBe(summary.buildId);
  });

  it('serves the gpu queue from engine processes: both embed, the index finds each probe, and they stop with the worker', async () => {
    const config = isolated({ kind: 'flat' });
    const spawnWithEngines = async () => {
      const worker = await spawnWorker(config, 'cpu,gpu,index', { TTTNN_WORKER_ENGINE_PROCESSES: '2' });
      workers.push(worker);
      const pids = /in 2 engine processes, \d+ TensorFlow thread\(s\) each \(pids (\d+), (\d+)\)/.exec(worker.output());
      return { worker, pids: [Number(pids?.[1]), Number(pids?.[2])] };
    };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const { worker, pids } = await spawnWithEngines();
    expect(pids.every(alive)).toBe(true);

    const handle = await startIndexBuild(
      client,
      config,
      indexBuildInput(config, { corpus: corpusManifestUrl, promote: false }),
    );
    const summary = await handle.result();
    expect(summary).toMatchObject({ shards: 6, documents: 96, vectors: 96, skipped: {} });
    // Who embedded: the worker identity (pid@host) in each embedShard's started event.
    const embeddedBy = new Set<number>();
    for (let page = 0; ; page++) {
      const id = `${handle.workflowId}/embed/page-${String(page).padStart(5, '0')}`;
      const history = await client.workflow
        .getHandle(id)
        .fetchHistory()
        .catch(() => undefined);
      if (!history) break;
      for (const event of history.events ?? []) {
        const identity = event.activityTaskStartedEventAttributes?.identity;
        if (identity) embeddedBy.add(Number(identity.split('@')[0]));
      }
    }
    expect([...embeddedBy].sort()).toEqual([...pids].sort());
    const { probes, results } = await neighborsOf(config, summary.buildId);
    probes.forEach((probe, q) => expect(results[q]![0]!.docId).toBe(probe.docId));

    // SIGTERM drains the worker and its engine processes; SIGKILL leaves none polling either (their stdin closes).
    worker.child.kill('SIGTERM');
    await worker.exited;
    const gone = (some: number[]) => () => Promise.resolve(some.some(alive) ? undefined : true);
    await waitFor('the engine processes to exit after SIGTERM', gone(pids));
    const killed = await spawnWithEngines();
    expect(killed.pids.every(alive)).toBe(true);
    killed.worker.child.kill('SIGKILL');
    await waitFor('the engine processes to exit after SIGKILL', gone(killed.pids));
  });

  it('after SIGKILLed workers mid-embedding and mid-indexing, the build equals an undisturbed one', async () => {
    const config = isolated({ kind: 'flat' });
    workers.push(await spawnWorker(config, 'cpu,gpu,index'));
    const undisturbed = await build(config, uniqueName('a'));
    workers.splice(0).forEach((w) => w.child.kill('SIGKILL'));

    const control = await spawnWorker(config, 'cpu');
    const compute = await spawnWorker(config, 'gpu,index');
    workers.push(control, compute);
    const id = uniqueName('b');
    const result = build(config, id);
    const buildStore = openStore(`${config.index.root}/builds/${id}`, config);
    // Killed once a segment of the first shard is uploaded, before its record (the shard's end) is written.
    await waitFor('a first embedding segment', async () =>
      (await buildStore.stat('embeddings/00000/00000.parquet')) ? true : undefined,
    );
    compute.child.kill('SIGKILL');
    const embeddedAtKill = (await buildStore.stat('embeddings/00005.json')) === undefined;
    const second = await spawnWorker(config, 'gpu,index');
    workers.push(second);
    await waitFor(
      'the index stage',
      async () => ((await buildStore.stat('embeddings/00005.json')) ? true : undefined),
      120_000,
    );
    second.child.kill('SIGKILL');
    workers.push(await spawnWorker(config, 'gpu,index'));
    const disturbed = await result;

    expect(embeddedAtKill).toBe(true);
    expect(disturbed.vectors).toBe(undisturbed.vectors);
    expect(await objectsOf(config, id)).toEqual(await objectsOf(config, undisturbed.buildId));
    const [a, b] = [await neighborsOf(config, undisturbed.buildId), await neighborsOf(config, id)];
    expect(b.results).toEqual(a.results);

    // A reader of 'current' keeps the build it opened while another is promoted; the next reader gets the new one.
    const root = openStore(config.index.root, config);
    const store = (url: string) => openStore(url, config);
    await promoteBuild(root, undisturbed.buildId);
    const reader = await IndexBuildReader.open(root, 'current', path.join(scratch, uniqueName('cache')), store);
    const probe = new Float32Array(384).fill(1 / Math.sqrt(384));
    const before = await reader.search(probe, 3);
    await promoteBuild(root, id);
    expect(reader.buildId).toBe(undisturbed.buildId);
    expect(await reader.search(probe, 3)).toEqual(before);
    reader.dispose();
    const next = await IndexBuildReader.open(root, 'current', path.join(scratch, uniqueName('cache')), store);
    expect(next.buildId).toBe(id);
    next.dispose();
  });
});
