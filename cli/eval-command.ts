import { followWorkflow, stageEta } from './follow';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { EvaluationManifestBody } from '../activities/evaluation';
import type { Config } from '../core/config';
import { reportMeta, writeReport } from '../core/eval/report';
import { type EvalResultRow, readResultsFile } from '../core/eval/results';
import { EVAL_RUN_KIND, type EvalSettings, RUN_FILE } from '../core/eval/run-layout';
import { MANIFEST_FILE, downloadVerified, readManifest } from '../core/store/manifest';
import { openStore } from '../core/store/open-store';
import { evaluateWorkflow } from '../workflows/evaluate';
import {
  type DocumentHeartbeat,
  type EvaluationInput,
  type EvaluationProgress,
  type EvaluationSummary,
  evaluationProgressQuery,
} from '../workflows/evaluate-types';
import { pagedStageId } from '../workflows/paged';
import { taskQueueName } from '../workflows/shared';
import { pagedWorkStatus } from './paged-progress';
import { SEARCH_ATTRIBUTES, ensureSearchAttributes, startOrAttach } from './temporal-client';

export interface EvalStartOptions {
  /** The test corpus version: its manifest URL or folder, as `tttnn ingest` prints it. */
  test: string;
  runId?: string;
  /** Explicit test document ids instead of a per-domain draw. */
  ids?: string[];
  /** An index build id or `current`. */
  index?: string;
  neighbors?: 'nn' | 'random';
}

/** The workflow input of `tttnn eval start`: the test corpus and the config's `eval`, `index` and `model` settings. */
export function evaluationInput(config: Config, options: EvalStartOptions): EvaluationInput {
  const e = config.eval;
  const maxLength = e.maxLength > 0 ? e.maxLength : config.backend === 'tensorflow-gpu' ? 1024 : 512;
  const settings: Omit<EvalSettings, 'runId'> = {
    testManifestUrl: options.test.endsWith('.json')
      ? options.test
      : `${options.test.replace(/\/+$/, '')}/${MANIFEST_FILE}`,
    selection: options.ids ? { ids: options.ids } : { perDomain: e.perDomain, seed: e.seed },
    maxDocumentBytes: e.maxDocumentBytes,
    indexRoot: config.index.root,
    build: options.index ?? 'current',
    model: config.model,
    encoder: config.index.encoder,
    encoderMaxLength: config.index.maxLength,
    k: e.k,
    lr: e.lr,
    maxLength,
    maxDistance: config.index.maxDistance,
    maxNeighborTokens: e.maxNeighborTokens,
    neighbors: options.neighbors ?? 'nn',
    baselines: [...e.baselines],
    ...(e.baselines.includes('sift') && { sift: { pool: e.siftPool, lambda: e.siftLambda, alpha: e.siftAlpha } }),
    excludeExactCopies: e.excludeExactCopies,
    dynamicIterations: e.dynamicIterations,
    seed: e.seed,
  };
  // The default run id names the settings: the same request typed twice is the same run.
  const runId =
    options.runId ?? `run-${createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 12)}`;
  return {
    settings: { runId, ...settings },
    runUrl: runUrl(config, runId),
    concurrency: e.concurrency,
    shardsPerGroup: config.index.shardsPerGroup,
    heartbeatTimeoutSeconds: e.heartbeatTimeoutSeconds,
    taskQueuePrefix: config.temporal.taskQueuePrefix,
  };
}

export function runUrl(config: Config, runId: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(runId)) throw new Error(`run id '${runId}': use letters, digits, _ . - only`);
  return `${config.eval.root.replace(/\/+$/, '')}/runs/${runId}`;
}

export const evaluationWorkflowId = (runId: string) => `eval/${runId}`;

/**
 * One workflow per run id: starting it again attaches to the running one (or returns the finished one's result).
 * The run is searchable in the Temporal UI by run id, model and index build.
 */
export async function startEvaluation(
  client: Client,
  config: Config,
  input: EvaluationInput,
  log: (line: string) => void = () => undefined,
): Promise<WorkflowHandle<typeof evaluateWorkflow>> {
  const searchable = await ensureSearchAttributes(client, log);
  return startOrAttach(client, evaluateWorkflow, {
    workflowId: evaluationWorkflowId(input.settings.runId),
    taskQueue: taskQueueName(config.temporal.taskQueuePrefix, 'cpu'),
    args: [input],
    ...(searchable && {
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.runId, value: input.settings.runId },
        { key: SEARCH_ATTRIBUTES.model, value: input.settings.model },
        { key: SEARCH_ATTRIBUTES.indexBuild, value: input.settings.build },
      ],
    }),
  });
}

/** `tttnn eval resume <run>`: the run's own settings, read back from the store, started again. */
export async function resumeInput(config: Config, runId: string): Promise<EvaluationInput> {
  const url = runUrl(config, runId);
  const store = openStore(url, config);
  if (!(await store.stat(RUN_FILE))) {
    throw new Error(`no run ${runId} under ${config.eval.root} ('tttnn eval list' shows the runs)`);
  }
  const settings = JSON.parse((await store.getBytes(RUN_FILE)).toString('utf8')) as EvalSettings;
  return {
    settings,
    runUrl: url,
    concurrency: config.eval.concurrency,
    shardsPerGroup: config.index.shardsPerGroup,
    heartbeatTimeoutSeconds: config.eval.heartbeatTimeoutSeconds,
    taskQueuePrefix: config.temporal.taskQueuePrefix,
  };
}

export interface EvaluationStatus extends EvaluationProgress {
  /** Documents with a committed result (undefined while the evaluation stage does not answer its query: a busy
   * worker answers late), and where the documents in flight are. */
  done: number | undefined;
  inFlight: DocumentHeartbeat[];
}

export async function evaluationStatus(
  client: Client,
  handle: WorkflowHandle<typeof evaluateWorkflow>,
): Promise<EvaluationStatus> {
  const progress = await handle.query(evaluationProgressQuery);
  if (progress.phase !== 'evaluating') {
    const done = progress.phase === 'compacting' || progress.phase === 'done' ? progress.documents : 0;
    return { ...progress, done, inFlight: [] };
  }
  const stage = await pagedWorkStatus(client.workflow, pagedStageId(handle.workflowId, 'evaluate'), true).catch(
    () => undefined,
  );
  return {
    ...progress,
    done: stage?.itemsDone,
    inFlight: (stage?.heartbeats ?? []).filter((h): h is DocumentHeartbeat => typeof h === 'object' && h !== null),
  };
}

/** Waits for the run's result, with a bar over documents (and its ETA) while they are evaluated. */
export async function followEvaluation(
  client: Client,
  handle: WorkflowHandle<typeof evaluateWorkflow>,
  showProgress: boolean,
  log: (line: string) => void,
): Promise<EvaluationSummary> {
  const bar = new SingleBar({
    format: 'eval |{bar}| {value}/{total} documents · {detail} · ETA {remaining}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 10000,
  });
  let phase = '';
  let started = false;
  const eta = stageEta();
  const draw = async () => {
    const status = await evaluationStatus(client, handle);
    if (status.phase !== phase) {
      if (started) bar.update(bar.getTotal(), { remaining: '0s' });
      if (status.phase !== 'evaluating') log(`eval ${status.runId}: ${status.phase}`);
      phase = status.phase;
    }
    if (status.phase === 'evaluating' && status.done !== undefined) {
      const detail = status.inFlight.map((h) => `#${h.index} ${h.stage} ${h.neighbor}/${h.of}`).join(', ');
      const payload = { detail: detail || '-', remaining: eta(status.done, status.documents) };
      if (!started) bar.start(Math.max(1, status.documents), status.done, payload);
      else bar.update(status.done, payload);
      started = true;
    }
  };
  const finish = () => {
    if (!started) return;
    bar.update(bar.getTotal(), { detail: 'done', remaining: '0s' });
    bar.stop();
  };
  return followWorkflow(handle, showProgress ? { draw, finish } : undefined);
}

export function formatEvaluationSummary(summary: EvaluationSummary): string {
  const skipped = Object.entries(summary.skipped);
  return [
    `eval ${summary.runId}: ${summary.evaluated} of ${summary.documents} documents evaluated, ${summary.steps} TTT steps, index build ${summary.buildId}`,
    ...(skipped.length > 0 ? [`skipped: ${skipped.map(([reason, n]) => `${n} ${reason}`).join(', ')}`] : []),
    ...(summary.notDrawnOverSizeLimit > 0
      ? [`not drawn: ${summary.notDrawnOverSizeLimit} test documents over eval.maxDocumentBytes`]
      : []),
    `results: ${summary.manifestUrl} (${summary.parts} Parquet parts; 'tttnn eval report ${summary.runId}' writes the report)`,
  ].join('\n');
}

/** Runs under the eval root: finished (with a manifest) or not. */
export async function listEvaluations(config: Config, log: (line: string) => void): Promise<void> {
  const root = openStore(config.eval.root, config);
  const runs = new Set<string>();
  for await (const object of root.list('runs/')) {
    const [, runId, file] = object.key.split('/');
    if (runId && file === RUN_FILE) runs.add(runId);
  }
  if (runs.size === 0) log(`no runs under ${config.eval.root}`);
  for (const runId of [...runs].sort()) {
    const manifest = await readManifest<EvaluationManifestBody>(root, `runs/${runId}/${MANIFEST_FILE}`, EVAL_RUN_KIND);
    const state = manifest
      ? `finished: ${manifest.body.summary.evaluated}/${manifest.body.summary.documents} documents`
      : 'not finished';
    log(`${runId}  ${state}`);
  }
}

/** The finished run's results, every part verified against its manifest. */
export async function readRunResults(
  config: Config,
  runId: string,
): Promise<{ rows: EvalResultRow[]; manifest: EvaluationManifestBody }> {
  const store = openStore(runUrl(config, runId), config);
  const manifest = await readManifest<EvaluationManifestBody>(store, MANIFEST_FILE, EVAL_RUN_KIND);
  if (!manifest) throw new Error(`run ${runId} has no results yet (it is not finished: 'tttnn eval status ${runId}')`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-report-'));
  try {
    const rows: EvalResultRow[] = [];
    for (const object of manifest.objects.filter((o) => o.key.endsWith('.parquet'))) {
      const local = path.join(dir, path.basename(object.key));
      await downloadVerified(store, object, local);
      rows.push(...(await readResultsFile(local)));
    }
    return { rows, manifest: manifest.body };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** `tttnn eval report <run>`: the report of a finished run, from its Parquet results only. */
export async function reportCommand(
  config: Config,
  runId: string,
  outDir: string,
  log: (line: string) => void,
): Promise<void> {
  const { rows, manifest } = await readRunResults(config, runId);
  const backends = [...new Set(rows.filter((r) => r.skip_reason === '').map((r) => r.backend))];
  const notes: string[] = [];
  if (manifest.settings.maxNeighborTokens > 0) {
    notes.push(
      `Neighbors were cut to their first ${manifest.settings.maxNeighborTokens} tokens (the reference trains on whole neighbors).`,
    );
  }
  if (manifest.settings.baselines.includes('dynamic')) {
    notes.push(
      "Dynamic evaluation and 'TTT-NN (same split)' score each document's second half on its own, as the reference " +
        'does; TTT-NN retrieved its neighbors with the whole document (the reference retrieves with the first half).',
    );
  }
  const meta = reportMeta(manifest.settings, {
    buildId: manifest.summary.buildId,
    backend: backends.join(', ') || 'none',
    notes,
  });
  const { summary, files } = await writeReport(rows, meta, outDir);
  log(summaryTable(await fs.readFile(files.markdown, 'utf8')));
  log(
    `report of ${runId}: ${files.markdown}, ${files.html} and ${files.plots.length} plots ` +
      `(pooled bits/byte ${summary.pooled.ttt[0]!.bitsPerByte.toFixed(4)} → ` +
      `${summary.pooled.ttt.at(-1)!.bitsPerByte.toFixed(4)} at k=${summary.k})`,
  );
}

/** The report's summary table (per domain), as it is in report.md: what a terminal should show. */
function summaryTable(markdown: string): string {
  const lines = markdown.split('\n');
  const heading = lines.findIndex((line) => line.startsWith('## Summary'));
  const start = lines.findIndex((line, i) => i > heading && line.startsWith('|'));
  if (heading < 0 || start < 0) return '';
  const end = lines.findIndex((line, i) => i > start && !line.startsWith('|'));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}
