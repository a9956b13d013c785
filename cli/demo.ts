import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { type Config, PROJECT_ROOT } from '../core/config';
import { engineSettings, initBackend } from '../core/backend';
import { openStore } from '../core/store/open-store';
import { ensureEngine } from '../infra/engine';
import { infraUp } from '../infra/local-infra';
import { pushModelCommand } from './lm-command';
import { startWorkers } from '../workers/worker';
import { followIngest, formatIngestSummary, ingestInput, startIngest } from './ingest-command';
import { followIndexBuild, formatIndexSummary, indexBuildInput, startIndexBuild } from './index-command';
import { connectClient } from './temporal-client';
import type { Client } from '@temporalio/client';
import type { EvaluationSummary } from '../workflows/evaluate-types';
import {
  evaluationInput,
  followEvaluation,
  formatEvaluationSummary,
  reportCommand,
  startEvaluation,
} from './eval-command';
import { taskQueueName } from '../workflows/shared';

/** The small bundled sample in Pile format (see samples/pile/PROVENANCE.md); benches use it. */
export const SAMPLE_CORPUS_DIR = path.join(PROJECT_ROOT, 'samples', 'pile');
/** The demo's multi-domain corpus: a train part for the index, a test part to evaluate (samples/corpus/PROVENANCE.md). */
export const DEMO_CORPUS_DIR = path.join(PROJECT_ROOT, 'samples', 'corpus');
const DEMO_INPUT = 's3://tttnn/samples/corpus';
const DEMO_CORPORA = 's3://tttnn/corpus/demo';
const DEMO_INDEXES = 's3://tttnn/indexes/demo';
const MODELS = 's3://tttnn/models';

const DEMO_EVALS = 's3://tttnn/evals/demo';
const DEMO_REPORT_DIR = path.join('reports', 'demo');

/**
 * The evaluation sized for a 2-core machine: max_length 512, short test documents, neighbors cut to their first
 * 512 tokens, k = 2. On a GPU, the paper's 1024 (DEMO_EVAL_GPU).
 */
const DEMO_EVAL = {
  k: 2,
  maxLength: 512,
  maxDocumentBytes: 2500,
  maxNeighborTokens: 512,
  baselines: ['random', 'in-context'] as Config['eval']['baselines'],
};
const DEMO_EVAL_GPU: typeof DEMO_EVAL = { ...DEMO_EVAL, maxLength: 1024, maxNeighborTokens: 1024 };

export interface DemoOptions {
  /** Test documents per domain for the TTT-NN step; 0 skips it. */
  tttDocs: number;
  /** Nearest neighbors per test document; default DEMO_EVAL's. */
  k?: number;
}

/**
 * The main job on the embedded default: local Temporal + S3 started for you; the sample corpus's train and test
 * parts uploaded and ingested into versioned Parquet shards; a vector index built over train (embeddings on the
 * gpu queue, one index per shard on the index queue) and promoted; then the evaluation workflow on test documents
 * (retrieval through the retrieval workers, TTT-NN with SmolLM2-135M and the random-neighbor control on the gpu
 * queue), and its report. Workers for every queue run in this process, the gpu queue's in two child processes
 * when there is no GPU.
 */
export async function runDemo(base: Config, options: DemoOptions, log: (line: string) => void): Promise<void> {
  const t0 = Date.now();
  await withDemoPipeline(base, log, async ({ config, client, buildId, testManifestUrl }) => {
    if (options.tttDocs === 0) return;
    const settings = { ...(await demoEvalSettings(config)), ...(options.k !== undefined && { k: options.k }) };
    const evaluation = await evaluate(
      config,
      client,
      { ...settings, perDomain: options.tttDocs },
      testManifestUrl,
      buildId,
      log,
    );
    await reportCommand(evalConfig(config, settings), evaluation.runId, DEMO_REPORT_DIR, log);
  });
  log(
    `demo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s; servers keep running ('tttnn infra down' stops them)`,
  );
}

export interface DemoPipeline {
  /** The demo's config: workers for every queue, the demo's index root. */
  config: Config;
  client: Client;
  /** The promoted index build over the train part, and the test part's corpus version. */
  buildId: string;
  testManifestUrl: string;
}

/**
 * Servers up, workers for every queue (see runDemo), the sample corpus ingested and indexed (each step a no-op
 * when already done); then `work` on it, and the workers shut down. The demo and `bench:eval` run on this.
 */
export async function withDemoPipeline(
  base: Config,
  log: (line: string) => void,
  work: (pipeline: DemoPipeline) => Promise<void>,
): Promise<void> {
  await infraUp(base, log);
  await ensureEngine(base, log); // the encoder and the language model run on the gpu queue's workers
  // Without a GPU, two single-threaded engine processes get through ~1.4x the work of one (docs/engine-performance.md),
  // where there are two cores and memory for two copies of the models (a TTT step at 512 tokens peaks at ~4.6 GiB).
  const gpu = await usesGpu(base);
  const engineProcesses = !gpu && os.availableParallelism() >= 2 && os.totalmem() >= 16 * 2 ** 30 ? 2 : 1;
  const config: Config = {
    ...base,
    worker: { ...base.worker, queues: ['cpu', 'gpu', 'index', 'retrieval'], engineProcesses },
    index: { ...base.index, root: DEMO_INDEXES },
    eval: { ...base.eval, concurrency: Math.max(base.eval.concurrency, engineProcesses) },
  };
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
    await work({ config, client, buildId: summary.buildId, testManifestUrl: manifests.test! });
  } finally {
    await workers.shutdown();
    await client.connection.close();
  }
}

export type DemoEvalSettings = typeof DEMO_EVAL & { model: string };

/** Whether the configured backend computes on a GPU here (loading it, as the demo's workers will). */
async function usesGpu(config: Config): Promise<boolean> {
  return (await initBackend({ ...engineSettings(config), log: () => undefined })).gpu === true;
}

/** The demo's evaluation settings for this machine's backend, with SmolLM2 pushed to the store as a model version. */
export async function demoEvalSettings(config: Config): Promise<DemoEvalSettings> {
  const gpu = await usesGpu(config);
  const model = await pushModelCommand(config, { model: config.model, to: MODELS }, () => undefined);
  return { ...(gpu ? DEMO_EVAL_GPU : DEMO_EVAL), model };
}

/** The config an evaluation with `settings` runs under (its eval root is the demo's). */
export function evalConfig(config: Config, settings: DemoEvalSettings & { perDomain?: number }): Config {
  const { model, ...evalSettings } = settings;
  return { ...config, model, eval: { ...config.eval, root: DEMO_EVALS, ...evalSettings } };
}

/**
 * The evaluation workflow on the test part: documents drawn per domain, embedded and retrieved through the workers,
 * TTT-NN with SmolLM2 on each, beside the baselines; every figure lands in Parquet under the run.
 */
export async function evaluate(
  config: Config,
  client: Client,
  settings: DemoEvalSettings & { perDomain: number },
  testManifestUrl: string,
  buildId: string,
  log: (line: string) => void,
  runId?: string,
): Promise<EvaluationSummary> {
  const c = evalConfig(config, settings);
  const input = evaluationInput(c, { test: testManifestUrl, index: buildId, ...(runId !== undefined && { runId }) });
  const handle = await startEvaluation(client, c, input);
  log(
    `evaluation ${input.settings.runId}: ${settings.perDomain} test document(s) per domain, k=${settings.k} nearest ` +
      `neighbors (first ${settings.maxNeighborTokens} tokens each), max_length ${settings.maxLength}, ` +
      `lr ${input.settings.lr.toExponential()}, baselines: ${settings.baselines.join(', ')}; model ${settings.model}`,
  );
  const summary = await followEvaluation(client, handle, true, log);
  log(formatEvaluationSummary(summary));
  return summary;
}
