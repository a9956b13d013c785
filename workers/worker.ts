import { promiseCache } from '../core/promise-cache';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type WorkerOptions,
  makeTelemetryFilterString,
} from '@temporalio/worker';
import { failFastOnPermanentErrors } from '../activities/failures';
import { createIndexBuildActivities, type LoadedEncoder } from '../activities/index-build';
import { createIngestActivities } from '../activities/ingest';
import { createEvaluationActivities } from '../activities/evaluation';
import { createRetrievalActivities } from '../activities/retrieval';
import { languageModelPool } from './language-models';
import { startEngineProcesses } from './engine-processes';
import { SearchThread } from '../core/index/search-thread';
import { modelDigest } from '../core/checkpoints/from-store';
import { type Config, parseGroups } from '../core/config';
import { temporalTls } from '../core/temporal-tls';
import { engineSettings } from '../core/backend';
import { loadEncoder } from '../core/models/registry';
import { openStore } from '../core/store/open-store';
import { ensureEngine } from '../infra/engine';
import { locateModel } from '../infra/models';
import { type QueueKind, retrievalQueue, taskQueueName } from '../workflows/shared';

/** Prebuilt by `npm run build` (scripts/build-workflow-bundle.ts); bundling at start-up costs seconds. */
export const WORKFLOW_BUNDLE = path.resolve(__dirname, '..', 'workflow-bundle.js');

/**
 * The activities each queue kind serves; workflows and their control steps (plans, manifests) run on the cpu
 * queue, encoders and language models on the gpu queue (which a CPU machine may serve too), index builds on the
 * index queue.
 */
function activitiesFor(kind: QueueKind, config: Config, log: (line: string) => void): object {
  // Clients, caches and loaded models are built once per process and shared by every activity of that process.
  const deps = processDeps(config, log);
  const index = createIndexBuildActivities(deps);
  const retrieval = createRetrievalActivities(deps);
  const evaluation = createEvaluationActivities(deps);
  switch (kind) {
    case 'cpu':
      return failFastOnPermanentErrors({
        ...createIngestActivities(deps),
        ...pick(index, ['planIndexBuild', 'writeIndexManifest', 'withdrawIndexManifest', 'promoteIndexBuild']),
        ...pick(retrieval, ['planRetrieval', 'mergeNeighbors']),
        ...pick(evaluation, ['planEvaluation', 'selectSiftNeighbors', 'compactResults', 'writeEvaluationManifest']),
      });
    case 'gpu':
      return failFastOnPermanentErrors({
        ...pick(index, ['embedShard']),
        ...pick(evaluation, ['embedQueries', 'evaluateDocument']),
      });
    case 'index':
      return failFastOnPermanentErrors(pick(index, ['buildShardIndex', 'verifyShard']));
    case 'retrieval':
      return failFastOnPermanentErrors(pick(retrieval, ['searchShards']));
  }
}

/** Some of a factory's activities (they are closures: taking them off the object is safe). */
function pick<T extends object, K extends keyof T>(activities: T, names: K[]): Pick<T, K> {
  return Object.fromEntries(names.map((name) => [name, activities[name]])) as Pick<T, K>;
}

let sharedDeps: ReturnType<typeof makeDeps> | undefined;
const processDeps = (config: Config, log: (line: string) => void) => (sharedDeps ??= makeDeps(config, log));

function makeDeps(config: Config, log: (line: string) => void) {
  const store = (url: string) => openStore(url, config);
  const locate = (spec: string) => locateModel(spec, { toolsDir: config.toolsDir, openStore: store, log });
  const encoders = promiseCache<LoadedEncoder>();
  return {
    openStore: store,
    cacheDir: config.toolsDir,
    checkpointEvery: config.eval.checkpointEvery,
    log,
    searchThread: new SearchThread(),
    withLanguageModel: languageModelPool({ locate, engine: engineSettings(config), log }),
    encoderDigest: async (spec: string) => (await modelDigest(await locate(spec))).version,
    loadEncoder: (spec: string) =>
      encoders(spec, async () => {
        const dir = await locate(spec);
        const { model, tokenizer } = await loadEncoder(dir, { ...engineSettings(config), log });
        return { encoder: model, tokenizer, digest: (await modelDigest(dir)).version };
      }),
  };
}

let runtimeInstalled = false;

export interface RunningWorkers {
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Graceful stop: activities in flight get `shutdownGraceSeconds`, then are cancelled and handed back. */
  shutdown(): Promise<void>;
}

/**
 * Starts one Temporal worker per queue kind in this process, the `gpu` queue's in `worker.engineProcesses` child
 * processes when that is above 1; SIGINT/SIGTERM shut them down gracefully.
 */
export async function startWorkers(
  config: Config,
  log: (line: string) => void = console.log,
  /** Embedded in the CLI, a worker's warnings (an activity failed and is retried) would garble its output. */
  quiet = false,
): Promise<RunningWorkers> {
  const { queues, engineProcesses } = config.worker;
  if (engineProcesses > 1 && queues.includes('gpu')) {
    const engines = await startEngineProcesses(config, engineProcesses, log, quiet);
    const rest = queues.filter((kind) => kind !== 'gpu');
    const local =
      rest.length > 0
        ? await startWorkers({ ...config, worker: { ...config.worker, queues: rest } }, log, quiet).catch(
            async (err: unknown) => {
              await engines.stop();
              throw err;
            },
          )
        : undefined;
    // A signal stops this process's workers (Temporal's runtime handles it) and then the engine processes; a failed
    // worker's error reaches the caller through `done`.
    const stopEngines = () => engines.stop();
    if (local) void local.done.then(stopEngines, stopEngines);
    else for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stopEngines());
    return {
      done: Promise.all([engines.exited, local?.done]).then(() => undefined),
      shutdown: async () => void (await Promise.all([engines.stop(), local?.shutdown()])),
    };
  }
  if (!runtimeInstalled) {
    Runtime.install({
      logger: new DefaultLogger(workerLogLevel(quiet)),
      shutdownSignals: ['SIGINT', 'SIGTERM'],
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
    });
    runtimeInstalled = true;
  }
  const connection = await NativeConnection.connect({
    address: config.temporal.address,
    tls: temporalTls(config.temporal),
  });
  const workers: Worker[] = [];
  try {
    for (const kind of config.worker.queues) {
      const activities = activitiesFor(kind, config, log);
      const prefix = config.temporal.taskQueuePrefix;
      // A retrieval worker serves its shard groups, each on the group's own queue.
      const groups = kind === 'retrieval' ? parseGroups(config.worker.retrievalGroups) : [];
      const queues =
        kind === 'retrieval' ? groups.map((g) => retrievalQueue(prefix, g)) : [taskQueueName(prefix, kind)];
      for (const taskQueue of queues) {
        const options: WorkerOptions = {
          connection,
          namespace: config.temporal.namespace,
          taskQueue,
          activities,
          maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
          shutdownGraceTime: `${config.worker.shutdownGraceSeconds} seconds`,
          // Heartbeat details carry progress that the CLI shows: send them within seconds, not the default minute.
          maxHeartbeatThrottleInterval: '5 seconds',
        };
        if (kind === 'cpu') {
          if (existsSync(WORKFLOW_BUNDLE)) options.workflowBundle = { codePath: WORKFLOW_BUNDLE };
          else options.workflowsPath = require.resolve('../workflows');
        }
        workers.push(await Worker.create(options));
      }
      const named =
        kind === 'retrieval' ? `${retrievalQueue(prefix, '')}{${config.worker.retrievalGroups}}` : queues[0];
      log(`worker polling ${named} on ${config.temporal.address} (pid ${process.pid})`);
    }
    if (workers.length === 0) throw new Error(`none of the queues ${config.worker.queues.join(',')} has work yet`);
  } catch (err) {
    await connection.close();
    throw err;
  }
  const done = Promise.all(workers.map((worker) => worker.run())).finally(() => connection.close());
  return {
    done: done.then(() => undefined),
    shutdown: async () => {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

/** The Temporal log's level: TTTNN_LOG_LEVEL (`debug` or `error`), else errors only when embedded, else warnings. */
function workerLogLevel(quiet: boolean): 'DEBUG' | 'WARN' | 'ERROR' {
  const level = process.env.TTTNN_LOG_LEVEL;
  return level === 'debug' ? 'DEBUG' : level === 'error' || quiet ? 'ERROR' : 'WARN';
}

/** Runs workers until a signal stops them. */
export async function runWorkers(config: Config, log: (line: string) => void = console.log): Promise<void> {
  // Encoders and language models run on the gpu queue: build native TensorFlow first if `npm ci` wiped it.
  if (config.worker.queues.includes('gpu')) await ensureEngine(config, log);
  await (
    await startWorkers(config, log)
  ).done;
  log('worker stopped');
}
