import { createHash } from 'node:crypto';
import { SingleBar } from 'cli-progress';
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Config } from '../core/config';
import { SKIP_REASONS } from '../core/corpus/pile-reader';
import { ingestWorkflow } from '../workflows/ingest';
import {
  type IngestFileHeartbeat,
  type IngestInput,
  type IngestSummary,
  ingestProgressQuery,
  taskQueueName,
} from '../workflows/shared';

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

/** The default ingest id names the request (input, output, limits): the same request attaches to the same run. */
export function defaultIngestId(input: IngestInput): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([input.inputUrl, input.outUrl, input.limits]))
    .digest('hex');
  return digest.slice(0, 12);
}

/** Starts the ingest workflow, or attaches to the running one with the same id. */
export async function startIngest(
  client: Client,
  config: Config,
  input: IngestInput,
  id = defaultIngestId(input),
): Promise<WorkflowHandle<typeof ingestWorkflow>> {
  const workflowId = `ingest/${id}`;
  try {
    return await client.workflow.start(ingestWorkflow, {
      workflowId,
      taskQueue: taskQueueName(config.temporal.taskQueuePrefix, 'cpu'),
      args: [input],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId);
    throw err;
  }
}

/** Waits for the result, drawing a progress bar from the workflow's query plus in-flight activity heartbeats. */
export async function followIngest(
  handle: WorkflowHandle<typeof ingestWorkflow>,
  showProgress: boolean,
): Promise<IngestSummary> {
  const bar = new SingleBar({
    format: 'ingest {phase} |{bar}| {percentage}% {done}/{total} MB · {files} files · {documents} docs',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  let started = false;
  const update = async () => {
    try {
      const progress = await handle.query(ingestProgressQuery);
      let inflight = 0;
      for (const activity of (await handle.describe()).raw.pendingActivities ?? []) {
        const payload = activity.heartbeatDetails?.payloads?.[0];
        if (payload) inflight += defaultPayloadConverter.fromPayload<IngestFileHeartbeat>(payload).rawBytesRead ?? 0;
      }
      const total = Math.max(1, Math.round(progress.bytesTotal / 1e6));
      const done = Math.min(total, Math.round((progress.bytesDone + inflight) / 1e6));
      const payload = {
        phase: progress.phase,
        done,
        total,
        files: `${progress.filesDone}/${progress.filesTotal}`,
        documents: progress.documents,
      };
      if (!started) bar.start(total, done, payload);
      else bar.update(done, payload);
      if (started) bar.setTotal(total);
      started = true;
    } catch {
      // The query fails until a worker has started the workflow; the next tick tries again.
    }
  };
  const timer = showProgress ? setInterval(() => void update(), 500) : undefined;
  try {
    const summary = await handle.result();
    if (started) {
      await update();
      bar.stop();
    }
    return summary;
  } finally {
    if (timer) clearInterval(timer);
  }
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
  return lines.join('\n');
}
