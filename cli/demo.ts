import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Config } from '../core/config';
import { initBackend } from '../core/backend';
import { modelDigest } from '../core/checkpoints/from-store';
import { readDocumentShard } from '../core/corpus/document-shards';
import { embedTexts } from '../core/embed';
import { harnessPrefixToken } from '../core/metrics/bits-per-byte';
import { readNeighborsFile } from '../core/index/neighbors-file';
import { neighborTexts } from '../core/index/retrieve';
import { writeVectorsFile } from '../core/index/vectors-file';
import { loadCausalLM, loadEncoder } from '../core/models/registry';
import { downloadVerified, readManifest } from '../core/store/manifest';
import { openStore } from '../core/store/open-store';
import { formatTttNnTable, type TestWithNeighbors, tttNnOnNeighbors } from '../core/training/ttt-nn';
import { INGEST_MANIFEST_KIND } from '../activities/ingest';
import { ensureEngine } from '../infra/engine';
import { infraUp } from '../infra/local-infra';
import { locateModel as locate } from '../infra/models';
import { locateModel, pushModelCommand } from './lm-command';
import { startWorkers } from '../workers/worker';
import { followIngest, formatIngestSummary, ingestInput, startIngest } from './ingest-command';
import { followIndexBuild, formatIndexSummary, indexBuildInput, startIndexBuild } from './index-command';
import { connectClient } from './temporal-client';
import type { Client } from '@temporalio/client';
import { retrieveWorkflow } from '../workflows/retrieve';
import { taskQueueName } from '../workflows/shared';

const PROJECT_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
/** The small bundled sample in Pile format (see samples/pile/PROVENANCE.md); benches use it. */
export const SAMPLE_CORPUS_DIR = path.join(PROJECT_ROOT, 'samples', 'pile');
/** The demo's multi-domain corpus: a train part for the index, a test part to evaluate (samples/corpus/PROVENANCE.md). */
export const DEMO_CORPUS_DIR = path.join(PROJECT_ROOT, 'samples', 'corpus');
const DEMO_INPUT = 's3://tttnn/samples/corpus';
const DEMO_CORPORA = 's3://tttnn/corpus/demo';
const DEMO_INDEXES = 's3://tttnn/indexes/demo';
const MODELS = 's3://tttnn/models';

/**
 * TTT-NN on the test part with the real models, sized for a 2-core machine: max_length 512, short test documents,
 * neighbors cut to their first 512 tokens. On a GPU, the paper's 1024 (DEMO_TTT_GPU).
 */
const DEMO_TTT = { k: 2, maxLength: 512, lr: 2e-5, maxTestBytes: 2500, maxNeighborTokens: 512 };
const DEMO_TTT_GPU: typeof DEMO_TTT = { ...DEMO_TTT, maxLength: 1024, maxNeighborTokens: 1024 };

export interface DemoOptions {
  /** Test documents per domain for the TTT-NN step; 0 skips it. */
  tttDocs: number;
}

/**
 * The main job on the embedded default: local Temporal + S3 started for you; the sample corpus's train and test
 * parts uploaded and ingested into versioned Parquet shards; a vector index built over train (embeddings on the
 * gpu queue, one index per shard on the index queue) and promoted; neighbors of test documents retrieved through
 * the retrieval workers; and TTT-NN with SmolLM2-135M (pushed to the store as a model version) on them. Workers for
 * every queue run in this process.
 */
export async function runDemo(base: Config, options: DemoOptions, log: (line: string) => void): Promise<void> {
  const t0 = Date.now();
  const config: Config = {
    ...base,
    worker: { ...base.worker, queues: ['cpu', 'gpu', 'index', 'retrieval'] },
    index: { ...base.index, root: DEMO_INDEXES },
  };
  await infraUp(config, log);
  await ensureEngine(config, log); // the encoder runs on this process's gpu-queue worker
  for (const part of ['train', 'test']) {
    const input = openStore(`${DEMO_INPUT}/${part}`, config);
    for (const name of (await fs.readdir(path.join(DEMO_CORPUS_DIR, part))).filter((n) => n.endsWith('.jsonl.zst'))) {
      const local = path.join(DEMO_CORPUS_DIR, part, name);
      if ((await input.stat(name))?.size !== (await fs.stat(local)).size) await input.putFile(name, local);
    }
  }
  log(`sample corpus (samples/corpus): ${DEMO_INPUT}/train and /test`);
  const workers = await startWorkers(config, log, true);
  const client = await connectClient(config);
  try {
    const manifests: Record<string, string> = {};
    for (const part of ['train', 'test']) {
      const input = ingestInput(config, { input: `${DEMO_INPUT}/${part}`, out: `${DEMO_CORPORA}/${part}` });
      const handle = await startIngest(client, config, input);
      log(`ingest of ${part}: workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${config.temporal.uiPort})`);
      const summary = await followIngest(handle, true, taskQueueName(config.temporal.taskQueuePrefix, 'cpu'));
      log(formatIngestSummary(summary));
      manifests[part] = summary.manifestUrl;
    }
    const build = await startIndexBuild(
      client,
      config,
      indexBuildInput(config, { corpus: manifests.train!, promote: true }),
    );
    log(`index build over train: workflow ${build.workflowId}`);
    const summary = await followIndexBuild(client, build, true);
    log(formatIndexSummary(summary));

    if (options.tttDocs > 0) await tttNnDemo(config, client, summary.buildId, manifests.test!, options.tttDocs, log);
  } finally {
    await workers.shutdown();
    await client.connection.close();
  }
  log(
    `demo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s; servers keep running ('tttnn infra down' stops them)`,
  );
}

/** Test documents → query embeddings → batched retrieval through the workers → TTT-NN with SmolLM2 on each. */
async function tttNnDemo(
  config: Config,
  client: Client,
  buildId: string,
  testManifestUrl: string,
  perDomain: number,
  log: (line: string) => void,
): Promise<void> {
  const settings = (await initBackend({ backend: config.backend, log })).gpu === true ? DEMO_TTT_GPU : DEMO_TTT;
  const tests = pickTests(await readCorpus(config, testManifestUrl), perDomain, settings.maxTestBytes);
  const store = (url: string) => openStore(url, config);
  const encoderDir = await locate(config.index.encoder, { toolsDir: config.toolsDir, openStore: store, log });
  const encoder = await loadEncoder(encoderDir, { backend: config.backend, log: () => undefined });
  const vectors = embedTexts(
    encoder.model,
    encoder.tokenizer,
    tests.map((t) => t.text),
    { maxLength: config.index.maxLength, normalize: true },
  );
  const digest = (await modelDigest(encoderDir)).version;
  const runUrl = `s3://tttnn/demo/retrieval/${buildId}-${digest}-${createHash('sha256')
    .update(tests.map((t) => t.id).join())
    .digest('hex')
    .slice(0, 12)}`;
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-demo-'));
  try {
    const queries = path.join(scratch, 'queries.parquet');
    await writeVectorsFile(
      queries,
      tests.map((t, i) => ({ docId: t.id, shardRow: i })),
      new Float32Array(vectors.flatMap((v) => Array.from(v))),
      encoder.model.hiddenSize,
    );
    await store(runUrl).putFile('queries.parquet', queries);
    const retrieval = await client.workflow.execute(retrieveWorkflow, {
      workflowId: `retrieve/${path.basename(runUrl)}`,
      taskQueue: taskQueueName(config.temporal.taskQueuePrefix, 'cpu'),
      args: [
        {
          indexRoot: config.index.root,
          build: buildId,
          queriesUrl: `${runUrl}/queries.parquet`,
          k: settings.k,
          maxDistance: config.index.maxDistance,
          shardsPerGroup: config.index.shardsPerGroup,
          outUrl: runUrl,
          heartbeatTimeoutSeconds: config.index.heartbeatTimeoutSeconds,
          taskQueuePrefix: config.temporal.taskQueuePrefix,
        },
      ],
    });
    const local = path.join(scratch, 'neighbors.parquet');
    await fs.writeFile(local, await store(runUrl).getBytes('neighbors.parquet'));
    const { lists } = await readNeighborsFile(local);
    const manifest = await readManifest<{ corpus: { storeUrl: string } }>(
      store(config.index.root),
      `builds/${buildId}/manifest.json`,
      'tttnn.index',
    );
    const corpus = store(manifest!.body.corpus.storeUrl);
    const withNeighbors: TestWithNeighbors[] = [];
    for (const [i, test] of tests.entries()) {
      const texts = await neighborTexts(corpus, lists[i] ?? [], config.toolsDir);
      withNeighbors.push({ ...test, neighbors: texts.map((n) => ({ text: n.text, domain: n.domain })) });
    }
    log(
      `retrieved ${retrieval.neighbors} neighbors for ${retrieval.queries} test documents: ${retrieval.neighborsUrl}`,
    );

    const modelUrl = await pushModelCommand(config, { model: config.model, to: MODELS }, log);
    const lm = await loadCausalLM(await locateModel(config, modelUrl, log), {
      log,
      backend: config.backend,
      training: true,
    });
    const prefixToken = harnessPrefixToken(lm.tokenizer);
    log(
      `TTT-NN on ${tests.length} test documents (${perDomain} per domain); models: ${modelUrl}, ${config.index.encoder}`,
    );
    const result = tttNnOnNeighbors(withNeighbors, { ...lm, prefixToken }, settings, log);
    log(
      `${config.model}, k=${settings.k} nearest neighbors from the index (first ${settings.maxNeighborTokens} tokens ` +
        `each), max_length ${settings.maxLength}, lr ${settings.lr.toExponential()}:`,
    );
    log(formatTttNnTable(result));
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/** Per domain, the first `perDomain` documents (in corpus order) of at most `maxBytes`: short ones, for 2 cores. */
function pickTests(docs: { id: string; text: string; domain: string }[], perDomain: number, maxBytes: number) {
  const picked: { id: string; text: string; domain: string }[] = [];
  for (const domain of [...new Set(docs.map((d) => d.domain))].sort()) {
    picked.push(
      ...docs.filter((d) => d.domain === domain && Buffer.byteLength(d.text) <= maxBytes).slice(0, perDomain),
    );
  }
  return picked;
}

/** The documents of an ingested corpus version, read from its shards (each verified against the manifest). */
async function readCorpus(config: Config, manifestUrl: string) {
  const root = manifestUrl.slice(0, manifestUrl.lastIndexOf('/'));
  const store = openStore(root, config);
  const manifest = await readManifest(store, manifestUrl.slice(root.length + 1), INGEST_MANIFEST_KIND);
  if (!manifest) throw new Error(`${manifestUrl} does not exist`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-demo-'));
  try {
    const docs: { id: string; text: string; domain: string }[] = [];
    for (const entry of manifest.objects.filter((o) => o.key.endsWith('.parquet'))) {
      const local = path.join(dir, path.basename(entry.key));
      await downloadVerified(store, entry, local);
      for (const row of await readDocumentShard(local))
        docs.push({ id: row.doc_id, text: row.text, domain: row.domain });
    }
    return docs;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
