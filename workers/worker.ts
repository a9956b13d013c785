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
import { createIngestActivities } from '../activities/ingest';
import type { Config } from '../core/config';
import { openStore } from '../core/store/open-store';
import { type QueueKind, taskQueueName } from '../workflows/shared';

/** Prebuilt by `npm run build` (scripts/build-workflow-bundle.ts); bundling at start-up costs seconds. */
export const WORKFLOW_BUNDLE = path.resolve(__dirname, '..', 'workflow-bundle.js');

/** The activities each queue kind serves; workflows run on the cpu queue. */
function activitiesFor(kind: QueueKind, config: Config): object | undefined {
  // Clients and caches are built once per process and shared by every activity of that process.
  const deps = { openStore: (url: string) => openStore(url, config) };
  switch (kind) {
    case 'cpu':
      return failFastOnPermanentErrors(createIngestActivities(deps));
    case 'gpu':
    case 'index':
      return undefined;
  }
}

let runtimeInstalled = false;

export interface RunningWorkers {
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  /** Graceful stop: activities in flight get `shutdownGraceSeconds`, then are cancelled and handed back. */
  shutdown(): Promise<void>;
}

/** Starts one Temporal worker per queue kind in this process; SIGINT/SIGTERM shut them down gracefully. */
export async function startWorkers(
  config: Config,
  log: (line: string) => void = console.log,
  /** Embedded in the CLI, a worker's warnings (an activity failed and is retried) would garble its output. */
  quiet = false,
): Promise<RunningWorkers> {
  if (!runtimeInstalled) {
    Runtime.install({
      logger: new DefaultLogger(process.env.TTTNN_LOG_LEVEL === 'debug' ? 'DEBUG' : quiet ? 'ERROR' : 'WARN'),
      shutdownSignals: ['SIGINT', 'SIGTERM'],
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
    });
    runtimeInstalled = true;
  }
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const workers: Worker[] = [];
  try {
    for (const kind of config.worker.queues) {
      const activities = activitiesFor(kind, config);
      const taskQueue = taskQueueName(config.temporal.taskQueuePrefix, kind);
      if (!activities && kind !== 'cpu') {
        log(`queue ${taskQueue}: no activities run on it yet; not polling it`);
        continue;
      }
      const options: WorkerOptions = {
        connection,
        namespace: config.temporal.namespace,
        taskQueue,
        activities,
        maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
        shutdownGraceTime: `${config.worker.shutdownGraceSeconds} seconds`,
      };
      if (kind === 'cpu') {
        if (existsSync(WORKFLOW_BUNDLE)) options.workflowBundle = { codePath: WORKFLOW_BUNDLE };
        else options.workflowsPath = require.resolve('../workflows');
      }
      workers.push(await Worker.create(options));
      log(`worker polling ${taskQueue} on ${config.temporal.address} (pid ${process.pid})`);
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

/** Runs workers until a signal stops them. */
export async function runWorkers(config: Config, log: (line: string) => void = console.log): Promise<void> {
  await (
    await startWorkers(config, log)
  ).done;
  log('worker stopped');
}
