import { engineSettings } from '../core/backend';
import { followWorkflow, stageEta } from './follow';
import { createHash } from 'node:crypto';
import { SingleBar } from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { Config } from '../core/config';
import { SEARCH_ATTRIBUTES, ensureSearchAttributes, startOrAttach } from './temporal-client';
import { embedTexts } from '../core/embed';
import { INDEX_MANIFEST_KIND, type IndexManifestBody, promoteBuild } from '../core/index/build-layout';
import { IndexBuildReader, type NeighborText, resolveBuildId } from '../core/index/retrieve';
import { modelDigest } from '../core/checkpoints/from-store';
import { loadEncoder } from '../core/models/registry';
import { MANIFEST_FILE, readManifest } from '../core/store/manifest';
import { openStore } from '../core/store/open-store';
import { ensureEngine } from '../infra/engine';
import { locateModel } from '../infra/models';
import { buildIndexWorkflow } from '../workflows/index-build';
import {
  type EmbedShardHeartbeat,
  type IndexBuildInput,
  type IndexBuildProgress,
  type IndexBuildSummary,
  indexBuildProgressQuery,
} from '../workflows/index-types';
import { pagedStageId } from '../workflows/paged';
import { pagedWorkStatus } from './paged-progress';
import { taskQueueName } from '../workflows/shared';

export interface IndexBuildOptions {
  corpus: string;
  id?: string;
  promote: boolean;
  verify?: boolean;
}

/** The workflow input of `tttnn index build`: the corpus, the build id if given, and the config's `index` section. */
export function indexBuildInput(config: Config, options: IndexBuildOptions): IndexBuildInput {
  const c = config.index;
  return {
    corpusManifestUrl: options.corpus.endsWith('.json')
      ? options.corpus
      : `${options.corpus.replace(/\/+$/, '')}/${MANIFEST_FILE}`,
    encoder: c.encoder,
    embed: {
      maxLength: c.maxLength,
      normalize: true,
      batchSize: c.batchSize,
      segmentRows: c.segmentRows,
      // Only when not the default, so that a float32 build keeps the id it had before the option existed.
      ...(c.vectorPrecision !== 'float32' ? { vectorPrecision: c.vectorPrecision } : {}),
    },
    index: {
      kind: c.kind,
      metric: c.metric,
      connectivity: c.connectivity,
      expansionAdd: c.expansionAdd,
      expansionSearch: c.expansionSearch,
    },
    recall: { queries: c.recallQueries, k: c.recallK },
    outUrl: c.root,
    ...(options.id !== undefined ? { buildId: options.id } : {}),
    promote: options.promote,
    ...(options.verify === true ? { verify: true } : {}),
    concurrency: { embed: c.embedConcurrency, index: c.buildConcurrency },
    heartbeatTimeoutSeconds: c.heartbeatTimeoutSeconds,
    taskQueuePrefix: config.temporal.taskQueuePrefix,
  };
}

/**
 * One workflow per request: the same request attaches to the running build (or returns the finished one). The build
 * is searchable in the Temporal UI by encoder from its start, and by build id and corpus version once planned (the
 * workflow sets those: the build id needs the encoder's digest, which only a worker with its files can compute).
 */
export async function startIndexBuild(
  client: Client,
  config: Config,
  input: IndexBuildInput,
  log: (line: string) => void = () => undefined,
): Promise<WorkflowHandle<typeof buildIndexWorkflow>> {
  const { promote: _promote, ...what } = input;
  const id = input.buildId ?? createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 12);
  const searchable = await ensureSearchAttributes(client, log);
  return startOrAttach(client, buildIndexWorkflow, {
    workflowId: `index-build/${id}`,
    taskQueue: taskQueueName(config.temporal.taskQueuePrefix, 'cpu'),
    args: [input],
    ...(searchable && {
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.encoder, value: input.encoder },
        ...(input.buildId !== undefined ? [{ key: SEARCH_ATTRIBUTES.indexBuild, value: input.buildId }] : []),
      ],
    }),
  });
}

/**
 * The build's progress: its phase and counts, plus the running stage's live figures from its paged child. Embedding
 * counts documents (finished shards' plus the in-flight shards' heartbeats), so that one big shard moves the bar
 * too; indexing counts shards.
 */
export async function indexBuildProgress(
  client: Client,
  handle: WorkflowHandle<typeof buildIndexWorkflow>,
): Promise<IndexBuildProgress & { unit: 'documents' | 'shards'; done: number; total: number }> {
  const progress = await handle.query(indexBuildProgressQuery);
  if (progress.phase === 'embedding') {
    const stage = await pagedWorkStatus(client.workflow, pagedStageId(handle.workflowId, 'embed'), true).catch(
      () => undefined,
    );
    const inFlight = (stage?.heartbeats ?? []).reduce<number>(
      (sum, beat) => sum + ((beat as Partial<EmbedShardHeartbeat> | undefined)?.documentsDone ?? 0),
      0,
    );
    const done = (stage?.counters.documents ?? 0) + inFlight;
    return { ...progress, unit: 'documents', done, total: progress.documentsTotal };
  }
  let done = progress.phase === 'indexing' ? progress.shardsIndexed : progress.shardsTotal;
  if (progress.phase === 'indexing') {
    const stage = await pagedWorkStatus(client.workflow, pagedStageId(handle.workflowId, 'index')).catch(
      () => undefined,
    );
    done = stage?.itemsDone ?? done;
  }
  if (progress.phase === 'planning') done = 0;
  return { ...progress, unit: 'shards', done, total: progress.shardsTotal };
}

/** Waits for the build's result, drawing a bar per stage with an ETA. */
export async function followIndexBuild(
  client: Client,
  handle: WorkflowHandle<typeof buildIndexWorkflow>,
  showProgress: boolean,
): Promise<IndexBuildSummary> {
  const bar = new SingleBar({
    format: 'index {phase} |{bar}| {value}/{total} {unit} · ETA {remaining}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
  });
  let phase = '';
  let eta = stageEta();
  const draw = async () => {
    const progress = await indexBuildProgress(client, handle);
    if (progress.phase === 'planning') return;
    if (progress.phase !== phase) eta = stageEta();
    const payload = {
      phase: progress.phase.padEnd(9),
      unit: progress.unit,
      remaining: eta(progress.done, progress.total),
    };
    if (progress.phase !== phase) {
      if (phase !== '') {
        bar.update(bar.getTotal(), { remaining: '0s' }); // the previous stage is over
        bar.stop();
      }
      bar.start(Math.max(1, progress.total), progress.done, payload); // a new stage, a new bar: its ETA is its own
      phase = progress.phase;
    } else {
      bar.update(progress.done, payload);
    }
  };
  const finish = () => {
    if (phase === '') return;
    bar.update(bar.getTotal(), { remaining: '0s' });
    bar.stop();
  };
  return followWorkflow(handle, showProgress ? { draw, finish } : undefined);
}

export function formatIndexSummary(summary: IndexBuildSummary): string {
  const skipped = Object.entries(summary.skipped);
  return [
    `index build ${summary.buildId}: ${summary.vectors} vectors of ${summary.documents} documents in ${summary.shards} shards`,
    `recall@${summary.recall.k} against exact search: min ${summary.recall.min.toFixed(4)}, mean ${summary.recall.mean.toFixed(4)}`,
    `time: embedding ${summary.seconds.embed.toFixed(1)} s, indexing ${summary.seconds.index.toFixed(1)} s (summed over shards)`,
    `skipped documents: ${skipped.length === 0 ? 'none' : skipped.map(([why, n]) => `${why} ${n}`).join(', ')}`,
    `manifest: ${summary.manifestUrl}`,
    summary.promoted
      ? 'promoted: it is now the current build'
      : `promote it with: tttnn index promote ${summary.buildId}`,
  ].join('\n');
}

/** `tttnn index list`: the finished builds under the index root, the current one marked. */
export async function listIndexBuilds(config: Config, log: (line: string) => void): Promise<void> {
  const root = openStore(config.index.root, config);
  const current = await resolveBuildId(root, 'current').catch(() => undefined); // none promoted yet
  let count = 0;
  for await (const object of root.list('builds/')) {
    if (!object.key.endsWith(`/${MANIFEST_FILE}`)) continue;
    const manifest = await readManifest<IndexManifestBody>(root, object.key, INDEX_MANIFEST_KIND);
    if (!manifest) continue;
    const b = manifest.body;
    log(
      `${b.buildId === current ? '*' : ' '} ${b.buildId}  ${b.index.kind.padEnd(7)} ${String(b.summary.vectors).padStart(9)} vectors` +
        `  ${b.summary.shards} shards  recall@${b.summary.recall.k} ${b.summary.recall.min.toFixed(3)}  corpus ${b.corpus.version}`,
    );
    count += 1;
  }
  if (count === 0) log(`no finished builds under ${root.url}`);
}

export async function promoteIndexBuild(config: Config, buildId: string, log: (line: string) => void): Promise<void> {
  await promoteBuild(openStore(config.index.root, config), buildId);
  log(`build ${buildId} is now current under ${config.index.root}`);
}

/** `tttnn search`: embeds the query with the build's encoder (checked by digest) and prints the global top-k. */
export async function searchCommand(
  config: Config,
  options: { index: string; k: number; text: string; label: string; previewChars: number },
  log: (line: string) => void,
): Promise<NeighborText[]> {
  const store = (url: string) => openStore(url, config);
  const reader = await IndexBuildReader.open(store(config.index.root), options.index, config.toolsDir, store);
  try {
    const { spec, digest } = reader.manifest.body.encoder;
    await ensureEngine(config, log);
    const dir = await locateModel(spec, { toolsDir: config.toolsDir, openStore: store, log });
    const local = (await modelDigest(dir)).version;
    if (local !== digest) {
      throw new Error(
        `encoder ${spec} here has digest ${local}, but build ${reader.buildId} was embedded with ${digest}: ` +
          'queries would be compared with vectors of another model',
      );
    }
    const { model, tokenizer } = await loadEncoder(dir, { ...engineSettings(config), log: () => undefined });
    const embed = reader.manifest.body.embed;
    const [query] = embedTexts(model, tokenizer, [options.text], {
      maxLength: embed.maxLength,
      normalize: embed.normalize,
    });
    const neighbors = await reader.texts((await reader.search(query!, options.k, config.index.maxDistance))[0]!);
    log(
      `${options.label}: ${neighbors.length} nearest of build ${reader.buildId} (${reader.manifest.body.index.kind}, ${reader.manifest.body.index.metric})`,
    );
    log(`${'rank'.padStart(4)}  ${'distance'.padStart(8)}  ${'domain'.padEnd(18)} ${'document'.padEnd(24)} text`);
    for (const n of neighbors) {
      const preview = n.text.replace(/\s+/g, ' ').slice(0, options.previewChars);
      log(
        `${String(n.rank).padStart(4)}  ${n.distance.toFixed(4).padStart(8)}  ${n.domain.padEnd(18)} ${n.docId.padEnd(24)} ${preview}`,
      );
    }
    return neighbors;
  } finally {
    reader.dispose();
  }
}
