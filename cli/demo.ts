import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Config } from '../core/config';
import { openStore } from '../core/store/open-store';
import { infraUp } from '../infra/local-infra';
import { startWorkers } from '../workers/worker';
import { followIngest, formatIngestSummary, ingestInput, startIngest } from './ingest-command';
import { connectClient } from './temporal-client';
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

/**
 * The main job on the embedded default: local Temporal + S3 started for you, the sample corpus uploaded,
 * and ingested into versioned Parquet shards by a workflow that a worker in this process runs.
 */
export async function runDemo(config: Config, log: (line: string) => void): Promise<void> {
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
  try {
    const handle = await startIngest(client, config, ingestInput(config, { input: SAMPLE_INPUT, out: SAMPLE_OUT }));
    log(`ingest workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${config.temporal.uiPort})`);
    log(formatIngestSummary(await followIngest(handle, true, taskQueueName(config.temporal.taskQueuePrefix, 'cpu'))));
  } finally {
    await workers.shutdown();
    await client.connection.close();
  }
  log(
    `demo finished in ${((Date.now() - t0) / 1000).toFixed(1)} s; servers keep running ('tttnn infra down' stops them)`,
  );
}
