import { followWorkflow } from './follow';
import { createHash } from 'node:crypto';
import { SingleBar } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../core/config';
import { startOrAttach } from './temporal-client';
import { SKIP_REASONS } from '../core/corpus/pile-reader';
import { ingestWorkflow } from '../workflows/ingest';
import { pagedStageId } from '../workflows/paged';
import {
  INGEST_FILES_STAGE,
  type IngestFileHeartbeat,
  type IngestInput,
  type IngestSummary,
  ingestProgressFromCounters,
  ingestProgressQuery,
  taskQueueName,
} from '../workflows/shared';
import { pagedWorkStatus } from './paged-progress';

export interface IngestCommandOptions {
  input: string;
  out: string;
  id?: string;
  progress: boolean;
}

export function ingestInput(config: Config, options: Pick<IngestCommandOptions, 'input' | 'out'>): IngestInput {
  return {
    inputUrl: options.input,
    outUrl: options.out,
    limits: {
      rowsPerShard: config.ingest.rowsPerShard,
      maxShardBytes: config.ingest.maxShardBytes,
      maxDocumentBytes: config.ingest.maxDocumentBytes,
    },
    concurrency: config.ingest.concurrency,
    heartbeatTimeoutSeconds: config.ingest.heartbeatTimeoutSeconds,
    taskQueuePrefix: config.temporal.taskQueuePrefix,
  };
}

/** The default ingest id names the whole request: the same request attaches to (or re-runs) the same workflow. */
export function defaultIngestId(input: IngestInput): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 12);
}

/** Starts the ingest workflow, or attaches to the running one with the same id. */
export async function startIngest(
  client: Client,
  config: Config,
  input: IngestInput,
  id = defaultIngestId(input),
): Promise<WorkflowHandle<typeof ingestWorkflow>> {
  return startOrAttach(client, ingestWorkflow, {
    workflowId: `ingest/${id}`,
    taskQueue: taskQueueName(config.temporal.taskQueuePrefix, 'cpu'),
    args: [input],
  });
}

/**
 * Waits for the result, drawing a progress bar from the workflow's query; while files are being ingested, from the
 * paged stage's counters (finished pages and running ones) plus the heartbeats of the files in flight.
 */
export async function followIngest(
  handle: WorkflowHandle<typeof ingestWorkflow>,
  showProgress: boolean,
  taskQueue: string,
): Promise<IngestSummary> {
  const bar = new SingleBar({
    format: 'ingest {phase} |{bar}| {percentage}% {done}/{size} MB · {files} files · {documents} docs',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  let started = false;
  const since = Date.now();
  let hinted = false;
  const update = async () => {
    try {
      let progress = await handle.query(ingestProgressQuery);
      let inflight = 0;
      if (progress.phase === 'ingesting') {
        const stageId = pagedStageId(handle.workflowId, INGEST_FILES_STAGE);
        const stage = await pagedWorkStatus(handle.client, stageId, true).catch(() => undefined);
        if (stage) {
          progress = { ...progress, ...ingestProgressFromCounters(stage.counters) };
          for (const beat of stage.heartbeats) inflight += (beat as IngestFileHeartbeat).rawBytesRead ?? 0;
        }
      }
      const total = Math.max(1, progress.bytesTotal);
      const done = Math.min(total, progress.bytesDone + inflight);
      const payload = {
        phase: progress.phase,
        done: (done / 1e6).toFixed(1),
        size: (total / 1e6).toFixed(1),
        files: `${progress.filesDone}/${progress.filesTotal}`,
        documents: progress.documents,
      };
      if (!started) bar.start(total, done, payload);
      else bar.update(done, payload);
      if (started) bar.setTotal(total);
      started = true;
    } catch {
      // The query fails until a worker has picked the workflow up; the next tick tries again.
      if (!hinted && Date.now() - since > 15_000) {
        hinted = true;
        console.error(`still waiting for a worker on task queue ${taskQueue}: is 'tttnn worker' running?`);
      }
    }
  };
  const finish = () => {
    if (started) bar.stop();
  };
  return followWorkflow(handle, showProgress ? { draw: update, finish, intervalMs: 500 } : undefined);
}

export function formatIngestSummary(summary: IngestSummary): string {
  const lines = [
    `ingest version ${summary.version}: ${summary.documents} documents, ${(summary.bytes / 1e6).toFixed(2)} MB of text, ` +
      `${summary.shards} shards from ${summary.files} files`,
    `manifest: ${summary.manifestUrl}`,
    'documents per domain:',
    ...Object.entries(summary.domains).map(
      ([domain, c]) =>
        `  ${domain.padEnd(24)} ${String(c.documents).padStart(9)} docs ${(c.bytes / 1e6).toFixed(2).padStart(10)} MB`,
    ),
  ];
  const skipped = SKIP_REASONS.filter((reason) => (summary.skipped[reason] ?? 0) > 0);
  lines.push(
    skipped.length === 0
      ? 'skipped lines: none'
      : `skipped lines: ${skipped.map((reason) => `${reason} ${summary.skipped[reason]}`).join(', ')}`,
  );
  for (const { file, error } of summary.fileErrors) lines.push(`damaged file ${file}: ${error}`);
  if (summary.fileErrorsOmitted) {
    lines.push(`… and ${summary.fileErrorsOmitted} more damaged files (all listed in the manifest)`);
  }
  return lines.join('\n');
}
