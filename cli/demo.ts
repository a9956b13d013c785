import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Config } from '../core/config';
import { initBackend } from '../core/backend';
import { readDocumentShard } from '../core/corpus/document-shards';
import { loadCausalLM, loadEncoder } from '../core/models/registry';
import { downloadVerified, readManifest } from '../core/store/manifest';
import { openStore } from '../core/store/open-store';
import { type CorpusDocument, formatTttNnTable, tttNnOnCorpus, type TttNnSettings } from '../core/training/ttt-nn';
import { INGEST_MANIFEST_KIND } from '../activities/ingest';
import { infraUp } from '../infra/local-infra';
import { ensureMiniLM } from '../infra/models';
import { locateModel, pushModelCommand } from './lm-command';
import { startWorkers } from '../workers/worker';
import { followIngest, formatIngestSummary, ingestInput, startIngest } from './ingest-command';
import { connectClient } from './temporal-client';
import { ensureEngine } from '../infra/engine';
import { taskQueueName } from '../workflows/shared';

/** The bundled sample corpus, in Pile format (see samples/pile/PROVENANCE.md). */
export const SAMPLE_CORPUS_DIR = path.resolve(
  __dirname,
  __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..',
  'samples',
  'pile',
);
const SAMPLE_INPUT = 's3://tttnn/samples/pile';
const SAMPLE_OUT = 's3://tttnn/corpus/sample';

const MODELS = 's3://tttnn/models';

/**
 * TTT-NN on the ingested sample with the real models, sized for a 2-core machine (about a minute): max_length
 * 512, short test documents, neighbors cut to their first 512 tokens. On a GPU, the paper's 1024 (DEMO_TTT_GPU).
 */
const DEMO_TTT: Omit<TttNnSettings, 'testsPerDomain'> = {
  k: 2,
  maxLength: 512,
  lr: 2e-5,
  maxTestBytes: 2000,
  maxNeighborTokens: 512,
};

const DEMO_TTT_GPU: typeof DEMO_TTT = { ...DEMO_TTT, maxLength: 1024, maxNeighborTokens: 1024 };

export interface DemoOptions {
  /** Test documents per domain for the TTT-NN step; 0 skips it. */
  tttDocs: number;
}

/**
 * The main job on the embedded default: local Temporal + S3 started for you, the sample corpus uploaded and
 * ingested into versioned Parquet shards by a workflow that a worker in this process runs, SmolLM2-135M pushed to
 * the artifact store as a model version, and TTT-NN run on documents read back from the shards.
 */
export async function runDemo(config: Config, options: DemoOptions, log: (line: string) => void): Promise<void> {
  const t0 = Date.now();
  await infraUp(config, log);
  const input = openStore(SAMPLE_INPUT, config);
  for (const name of (await fs.readdir(SAMPLE_CORPUS_DIR)).filter((n) => n.endsWith('.jsonl.zst')).sort()) {
    const local = path.join(SAMPLE_CORPUS_DIR, name);
    const stat = await input.stat(name);
    if (stat?.size !== (await fs.stat(local)).size) await input.putFile(name, local);
    log(`sample corpus: ${SAMPLE_INPUT}/${name}`);
  }
  const workers = await startWorkers(config, log, true);
  const client = await connectClient(config);
  let manifestUrl: string;
  try {
    const handle = await startIngest(client, config, ingestInput(config, { input: SAMPLE_INPUT, out: SAMPLE_OUT }));
    log(`ingest workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${config.temporal.uiPort})`);
    const summary = await followIngest(handle, true, taskQueueName(config.temporal.taskQueuePrefix, 'cpu'));
    log(formatIngestSummary(summary));
    manifestUrl = summary.manifestUrl;
  } finally {
    await workers.shutdown();
    await client.connection.close();
  }

  if (options.tttDocs > 0) {
    const modelUrl = await pushModelCommand(config, { model: config.model, to: MODELS }, log);
    const docs = await readCorpus(config, manifestUrl);
    log(
      `TTT-NN on ${options.tttDocs} document(s) per domain of ${docs.length} ingested ones; models: ${modelUrl}, all-MiniLM-L6-v2`,
    );
    await ensureEngine(config, log);
    const settings = (await initBackend({ backend: config.backend, log })).gpu === true ? DEMO_TTT_GPU : DEMO_TTT;
    const encoder = await loadEncoder(await ensureMiniLM(config.toolsDir, log), { log, backend: config.backend });
    const lm = await loadCausalLM(await locateModel(config, modelUrl, log), {
      log,
      backend: config.backend,
      training: true,
    });
    const eot = lm.tokenizer.specialTokenId('eos_token');
    if (eot === undefined) throw new Error(`${modelUrl}: the tokenizer names no eos_token`);
    const result = tttNnOnCorpus(docs, encoder, { ...lm, eot }, { ...settings, testsPerDomain: options.tttDocs }, log);
    log(
      `${config.model}, k=${settings.k} nearest neighbors (first ${settings.maxNeighborTokens} tokens each), ` +
        `max_length ${settings.maxLength}, lr ${settings.lr.toExponential()}:`,
    );
    log(formatTttNnTable(result));
  }
  log(
    `demo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s; servers keep running ('tttnn infra down' stops them)`,
  );
}

/** The documents of an ingested corpus version, read from its shards (each verified against the manifest). */
async function readCorpus(config: Config, manifestUrl: string): Promise<CorpusDocument[]> {
  const root = manifestUrl.slice(0, manifestUrl.lastIndexOf('/'));
  const store = openStore(root, config);
  const manifest = await readManifest(store, manifestUrl.slice(root.length + 1), INGEST_MANIFEST_KIND);
  if (!manifest) throw new Error(`${manifestUrl} does not exist`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-demo-'));
  try {
    const docs: CorpusDocument[] = [];
    for (const entry of manifest.objects.filter((o) => o.key.endsWith('.parquet'))) {
      const local = path.join(dir, path.basename(entry.key));
      await downloadVerified(store, entry, local);
      for (const row of await readDocumentShard(local)) docs.push({ text: row.text, domain: row.domain });
    }
    return docs;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
