import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { compress } from 'zstd-napi';
import type { Config } from '../../core/config';
import { MANIFEST_FILE, readManifest } from '../../core/store/manifest';
import { openStore } from '../../core/store/open-store';
import type { IngestManifestBody } from '../../activities/ingest';
import { INGEST_MANIFEST_KIND } from '../../activities/ingest';
import { WORKER_MAIN } from '../../workers/engine-processes';

/** The environment that gives a child process the same configuration as `config`. */
export function configEnv(config: Config): NodeJS.ProcessEnv {
  return {
    ...process.env,
    TTTNN_HOME: config.home,
    TTTNN_TEMPORAL_ADDRESS: config.temporal.address,
    TTTNN_TEMPORAL_TASK_QUEUE_PREFIX: config.temporal.taskQueuePrefix,
    TTTNN_S3_ENDPOINT: config.s3.endpoint,
    TTTNN_S3_ACCESS_KEY_ID: config.s3.accessKeyId,
    TTTNN_S3_SECRET_ACCESS_KEY: config.s3.secretAccessKey.reveal(),
    TTTNN_WORKER_SHUTDOWN_GRACE_SECONDS: String(config.worker.shutdownGraceSeconds),
  };
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A real worker process (the built `dist/workers/main.js`), so that tests can SIGKILL it. */
export async function spawnWorker(config: Config, queues = 'cpu', env: NodeJS.ProcessEnv = {}): Promise<WorkerProcess> {
  if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run 'npm run build' before the tests`);
  const child = spawn(process.execPath, [WORKER_MAIN, '--queues', queues], {
    env: { ...configEnv(config), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while ((output.match(/worker polling/g) ?? []).length < queues.split(',').length) {
    if (child.exitCode !== null) throw new Error(`worker exited at start: ${output}`);
    if (Date.now() > deadline) throw new Error(`worker did not start: ${output}`);
    await sleep(50);
  }
  return { child, output: () => output, exited };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const uniqueName = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A Pile-format file of `count` generated documents across a few domains, optionally zstd-compressed. */
export async function writeGeneratedPile(file: string, count: number, compressed: boolean, seed = 1): Promise<void> {
  const domains = ['Github', 'ArXiv', 'Pile-CC', 'FreeLaw'];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const words = Array.from(
      { length: 40 + ((i * 7919 + seed) % 300) },
      (_, j) => `w${(i * 31 + j * 17 + seed) % 997}`,
    );
    lines.push(
      JSON.stringify({ text: `doc ${seed}-${i}: ${words.join(' ')}`, meta: { pile_set_name: domains[i % 4] } }),
    );
  }
  const bytes = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, compressed ? compress(bytes) : bytes);
}

/** What an ingest produced, as readers see it: the manifest's object list and the per-file results. */
export async function ingestArtifacts(config: Config, manifestUrl: string) {
  const storeUrl = manifestUrl.slice(0, -`/${MANIFEST_FILE}`.length);
  const store = openStore(storeUrl, config);
  const manifest = await readManifest<IngestManifestBody>(store, MANIFEST_FILE, INGEST_MANIFEST_KIND);
  if (!manifest) throw new Error(`no manifest at ${manifestUrl}`);
  return { store, manifest };
}
