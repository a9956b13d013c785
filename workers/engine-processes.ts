import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { type Config, PROJECT_ROOT, isConfigVariable } from '../core/config';
import { NAMED_MODELS } from '../infra/models';
import { taskQueueName } from '../workflows/shared';

/** The built worker entry point (`npm run build` makes it), also when this module runs from source (tests). */
export const WORKER_MAIN = path.join(PROJECT_ROOT, 'dist', 'workers', 'main.js');

/** Said by a worker process once it polls its queues (workers/worker.ts). */
const READY_LINE = 'worker polling';
const READY_TIMEOUT_MS = 180_000;
/**
 * TensorFlow's start-up lines, written before absl's log settings apply. In-process they are hidden
 * (core/backend.ts `withoutStderr`), which cannot reopen a pipe: the children's are dropped here.
 */
const TENSORFLOW_PREAMBLE = /^(WARNING: All log messages before absl::InitializeLog\(\)|I\d{4} \d\d:\d\d:\d\d)/;

export interface EngineProcesses {
  /** Resolves when every process has exited. */
  exited: Promise<void>;
  /** SIGTERM to each (they drain as `tttnn worker` does), SIGKILL to any still running after the grace time. */
  stop(): Promise<void>;
}

/**
 * The `gpu` queue (encoders, language models) served by `count` child processes, each a `tttnn worker --queues gpu`
 * on this configuration with one activity at a time and an even share of the cores as TensorFlow threads.
 *
 * Why: tfjs runs a process's ops one after another from its one JavaScript thread, and on a document's small
 * kernels TensorFlow keeps only 1.2-1.7 of 2 cores busy, so on a CPU-only machine two single-threaded processes
 * evaluating two documents get through 1.37-1.54x the work of one process with both threads
 * (docs/engine-performance.md). Each child loads its own copy of the models.
 */
export async function startEngineProcesses(
  config: Config,
  count: number,
  log: (line: string) => void,
  /** As startWorkers' `quiet`: the children's Temporal log shows errors only. */
  quiet = false,
): Promise<EngineProcesses> {
  if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run 'npm run build' first`);
  // Installed here first: children installing a named model at once would race in the tools cache.
  for (const spec of new Set([config.index.encoder, config.model])) await NAMED_MODELS[spec]?.(config.toolsDir, log);

  const threads = Math.max(1, Math.floor(os.availableParallelism() / count));
  // The children read this process's resolved configuration from a private file (it holds the S3 secret), removed
  // once they have read it; configuration variables in the environment would otherwise apply a second time.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-engines-'));
  const file = path.join(dir, 'config.json');
  const childConfig = {
    ...config,
    s3: { ...config.s3, secretAccessKey: config.s3.secretAccessKey.reveal() },
    worker: { ...config.worker, queues: ['gpu'], engineProcesses: 1, maxConcurrentActivities: 1 },
  };
  await fs.writeFile(file, JSON.stringify(childConfig), { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { TF_NUM_INTRAOP_THREADS: String(threads) };
  for (const [key, value] of Object.entries(process.env)) if (!isConfigVariable(key)) env[key] = value;
  Object.assign(env, { TTTNN_CONFIG: file, TTTNN_EXIT_WITH_PARENT: '1' });
  if (quiet) env.TTTNN_LOG_LEVEL ??= 'error';

  const children: ChildProcess[] = [];
  let stopping = false;
  const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
  const killAll = () => children.filter(running).forEach((child) => child.kill('SIGKILL'));
  // A parent that exits kills them; one that is killed closes their stdin, on which they drain and exit.
  process.once('exit', killAll);
  const start = (name: string) =>
    new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn(process.execPath, [WORKER_MAIN], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(child);
      const named = `${name} (pid ${child.pid})`;
      const startup: string[] = [];
      let ready = false;
      const timer = setTimeout(
        () => reject(new Error(`${named} did not start polling in 3 minutes`)),
        READY_TIMEOUT_MS,
      );
      const onLine = (line: string) => {
        if (ready) {
          if (!TENSORFLOW_PREAMBLE.test(line)) log(`${name}: ${line}`);
        } else if (line.includes(READY_LINE)) {
          ready = true;
          clearTimeout(timer);
          resolve(child);
        } else startup.push(line);
      };
      readline.createInterface({ input: child.stdout }).on('line', onLine);
      readline.createInterface({ input: child.stderr }).on('line', onLine);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const how = signal ?? `code ${code}`;
        if (!ready) reject(new Error(`${named} exited (${how}) before polling:\n${startup.slice(-20).join('\n')}`));
        else if (!stopping) log(`${named} exited (${how}); Temporal retries its activities on the other workers`);
      });
    });
  try {
    await Promise.all(Array.from({ length: count }, (_, i) => start(`engine ${i + 1}`)));
  } catch (err) {
    killAll();
    throw err;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  const queue = taskQueueName(config.temporal.taskQueuePrefix, 'gpu');
  log(
    `worker polling ${queue} on ${config.temporal.address} in ${count} engine processes, ${threads} TensorFlow ` +
      `thread(s) each (pids ${children.map((child) => child.pid).join(', ')})`,
  );

  const exited = Promise.all(
    children.map((child) => new Promise<void>((done) => (running(child) ? child.once('exit', () => done()) : done()))),
  ).then(() => void process.removeListener('exit', killAll));
  return {
    exited,
    stop: async () => {
      stopping = true;
      for (const child of children.filter(running)) child.kill('SIGTERM');
      const grace = setTimeout(killAll, (config.worker.shutdownGraceSeconds + 15) * 1000);
      await exited;
      clearTimeout(grace);
    },
  };
}
