import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { readDocumentListing } from '../core/corpus/document-shards';
import { embedTexts } from '../core/embed';
import { type DocumentCheckpoint, readCheckpointFile, writeCheckpointFile } from '../core/eval/checkpoint';
import { type Checkpointing, type LoadedLanguageModel, evaluateDocument } from '../core/eval/document';
import { type EvalResultRow, decodeRow, encodeRow, writeResultsFile } from '../core/eval/results';
import {
  EVAL_RUN_KIND,
  type EvalPlan,
  type EvalSettings,
  PART_SIZE,
  QUERIES_FILE,
  RANDOM_NEIGHBORS_FILE,
  RETRIEVAL_DIR,
  RUN_FILE,
  SIFT_NEIGHBORS_FILE,
  SIFT_POOL_FILE,
  SIFT_SELECTION_FILE,
  checkpointKey,
  SELECTION_FILE,
  type SelectedDocument,
  documentKey,
  partKey,
  partRecordKey,
  randomPositions,
  readSelectionFile,
  selectPerDomain,
  writeSelectionFile,
} from '../core/eval/run-layout';
import type { ShardIds } from '../core/index/build-layout';
import { readNeighborsFile, writeNeighborsFile } from '../core/index/neighbors-file';
import {
  type Neighbor,
  type NeighborText,
  cachedObject,
  corpusCacheDir,
  neighborTexts,
  readBuildManifest,
  resolveBuildId,
} from '../core/index/retrieve';
import { VectorsFileWriter, readVectorsFile } from '../core/index/vectors-file';
import {
  type SiftSelectionFacts,
  readSiftSelectionFile,
  siftPicks,
  vectorsByCorpusRow,
  writeSiftSelectionFile,
} from '../core/selection/sift-neighbors';
import type { ArtifactStore, ObjectInfo } from '../core/store/artifact-store';
import { MANIFEST_FILE, readManifest, readVerified, writeManifest } from '../core/store/manifest';
import { splitStoreUrl } from '../core/store/open-store';
import { promiseCache } from '../core/promise-cache';
import type { EvaluationInput, EvaluationSummary } from '../workflows/evaluate-types';
import type { Counters } from '../workflows/paged';
import { type LoadedEncoder, joinUrl, readJson } from './index-build';
import { INGEST_MANIFEST_KIND, type IngestManifestBody } from './ingest';

export interface EvaluationDeps {
  openStore(url: string): ArtifactStore;
  /** Where corpus shards and index files are cached on this machine. */
  cacheDir: string;
  loadEncoder(spec: string): Promise<LoadedEncoder>;
  /**
   * Runs `work` on the language model `spec` with a trainer at learning rate `lr`, loaded once per process and kept
   * with its reset copy between documents; one document at a time per model (its weights are shared state).
   */
  withLanguageModel<T>(
    spec: string,
    options: { lr: number; prefixToken?: number },
    work: (lm: LoadedLanguageModel) => Promise<T>,
  ): Promise<T>;
  /**
   * Save a document's training state to the run every this many neighbors, so that a retry continues from there
   * instead of replaying the steps (`eval.checkpointEvery`; 0, the default, replays: see core/eval/checkpoint.ts).
   */
  checkpointEvery?: number;
  log?: (line: string) => void;
}

/** plan.json: what the plan fixed once (the build `current` meant, the selection's size), read by every activity. */
interface StoredPlan {
  buildId: string;
  documents: number;
  parts: number;
  /** Test documents left out of a per-domain draw for being over `maxDocumentBytes`. */
  overSizeLimit: number;
  /** The test corpus version's folder and the indexed corpus version's, where texts are read by (shard, row). */
  testStoreUrl: string;
  indexedStoreUrl: string;
}

interface PartRecord {
  object: ObjectInfo;
  rows: number;
  counters: Counters;
}

const PLAN_FILE = 'plan.json';

export function createEvaluationActivities(deps: EvaluationDeps) {
  /** Read once per process: run settings, plans, selections and neighbor lists never change once written. */
  const cache = promiseCache<unknown>();
  const once = <T>(key: string, load: () => Promise<T>) => cache(key, load) as Promise<T>;
  const settingsOf = (runUrl: string) => once(`${runUrl}|run`, () => readJson<EvalSettings>(store(runUrl), RUN_FILE));
  const planOf = (runUrl: string) => once(`${runUrl}|plan`, () => readJson<StoredPlan>(store(runUrl), PLAN_FILE));
  const selectionOf = (runUrl: string) =>
    once(`${runUrl}|selection`, () => withLocalCopy(store(runUrl), SELECTION_FILE, readSelectionFile));
  const neighborsOf = (runUrl: string, key: string) =>
    once(`${runUrl}|${key}`, async () => (await withLocalCopy(store(runUrl), key, readNeighborsFile)).lists);
  const siftFactsOf = (runUrl: string) =>
    once(`${runUrl}|sift-facts`, () => withLocalCopy(store(runUrl), SIFT_SELECTION_FILE, readSiftSelectionFile));
  const store = (url: string) => deps.openStore(url);

  return {
    /**
     * Records the run's settings (once: a run id started again with other settings is refused), pins the index build,
     * draws the test documents and the random control's neighbors, and says what a resumed run need not redo.
     */
    async planEvaluation(input: EvaluationInput): Promise<EvalPlan> {
      const out = store(input.runUrl);
      await claimRun(out, input.settings);
      const plan = (await out.stat(PLAN_FILE))
        ? await readJson<StoredPlan>(out, PLAN_FILE)
        : await makePlan(deps, out, input.settings);
      return {
        runUrl: input.runUrl,
        buildId: plan.buildId,
        documents: plan.documents,
        parts: plan.parts,
        queriesEmbedded: (await out.stat(QUERIES_FILE)) !== undefined,
        retrieved: (await out.stat(`${RETRIEVAL_DIR}/${MANIFEST_FILE}`)) !== undefined,
        siftSelected: input.settings.sift !== undefined && (await out.stat(SIFT_SELECTION_FILE)) !== undefined,
        finished: (await out.stat(MANIFEST_FILE)) !== undefined,
      };
    },

    /** The selected documents' embeddings (the retrieval's queries), with the index's encoder and settings. */
    async embedQueries(input: { runUrl: string }): Promise<Counters> {
      const ctx = Context.current();
      const out = store(input.runUrl);
      if (await out.stat(QUERIES_FILE)) return {};
      const [settings, plan, selection] = await Promise.all([
        settingsOf(input.runUrl),
        planOf(input.runUrl),
        selectionOf(input.runUrl),
      ]);
      const { encoder, tokenizer } = await deps.loadEncoder(settings.encoder);
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-queries-'));
      try {
        const local = path.join(scratch, QUERIES_FILE);
        const writer = await VectorsFileWriter.open(local, encoder.hiddenSize);
        const BATCH = 256;
        for (let start = 0; start < selection.length; start += BATCH) {
          const batch = selection.slice(start, start + BATCH);
          const texts = await documentTexts(deps, plan.testStoreUrl, batch);
          const vectors = embedTexts(
            encoder,
            tokenizer,
            texts.map((t) => t.text),
            { maxLength: settings.encoderMaxLength, normalize: true },
          );
          const flat = new Float32Array(vectors.length * encoder.hiddenSize);
          vectors.forEach((v, i) => flat.set(v, i * encoder.hiddenSize));
          await writer.append(
            batch.map((d, i) => ({ docId: d.docId, shardRow: start + i, domain: d.domain })),
            flat,
          );
          ctx.heartbeat({ embedded: start + batch.length, of: selection.length });
          await new Promise((resolve) => setImmediate(resolve));
        }
        await writer.close();
        await out.putFile(QUERIES_FILE, local);
        return { queries: selection.length };
      } finally {
        await fs.rm(scratch, { recursive: true, force: true });
      }
    },

    /**
     * The SIFT baseline's picks for every document, persisted before any training as the nearest neighbors are:
     * SIFT over each document's pool (`retrieval/pool.parquet`) with the vectors the index build embedded for it,
     * each segment that holds a pool member read once. Writes `sift/neighbors.parquet`, then `sift/selection.jsonl`
     * last, so a retry that finds the latter does nothing.
     */
    async selectSiftNeighbors(input: { runUrl: string }): Promise<Counters> {
      const ctx = Context.current();
      const out = store(input.runUrl);
      if (await out.stat(SIFT_SELECTION_FILE)) return {};
      const [settings, plan] = await Promise.all([settingsOf(input.runUrl), planOf(input.runUrl)]);
      const sift = settings.sift;
      if (!sift) throw ApplicationFailure.nonRetryable(`run ${settings.runId} has no SIFT baseline`, 'BadInput');
      let progress: Record<string, number | string> = { stage: 'reading' };
      const beat = setInterval(() => ctx.heartbeat(progress), 1000);
      try {
        const indexRoot = store(settings.indexRoot);
        const build = await readBuildManifest(indexRoot, plan.buildId);
        const objects = new Map(build.objects.map((o) => [o.key, o]));
        const [pool, queries] = await Promise.all([
          withLocalCopy(out, SIFT_POOL_FILE, readNeighborsFile),
          withLocalCopy(out, QUERIES_FILE, readVectorsFile),
        ]);
        const vectors = await vectorsByCorpusRow(
          build.body,
          pool.lists.flat(),
          async (key) => {
            const object = objects.get(key);
            if (!object) throw new Error(`the manifest of build ${plan.buildId} does not list ${key}`);
            const indexed = { ...object, key: `builds/${plan.buildId}/${key}` };
            return readVectorsFile(await cachedObject(indexRoot, indexed, path.join(deps.cacheDir, 'index-cache')));
          },
          (done, of) => (progress = { stage: 'segments', done, of }),
        );
        const d = queries.dimensions;
        const lists: Neighbor[][] = [];
        const facts: SiftSelectionFacts[] = [];
        for (const [q, queryId] of queries.docIds.entries()) {
          const t0 = performance.now();
          const candidates = pool.lists[q] ?? [];
          const query = queries.vectors.subarray(q * d, (q + 1) * d);
          const selected = siftPicks(query, candidates, (row) => vectors.get(row), {
            n: settings.k,
            lambda: sift.lambda,
            alpha: sift.alpha,
          });
          lists.push(selected.picks);
          facts.push({
            query: q,
            queryId,
            pool: candidates.length,
            picks: selected.picks.length,
            stop: selected.stop,
            priorVariance: selected.priorVariance,
            variance: selected.variance,
            varianceAtStop: Number.isNaN(selected.varianceAtStop) ? null : selected.varianceAtStop,
            variances: selected.variances,
            seconds: (performance.now() - t0) / 1000,
          });
          progress = { stage: 'selecting', done: q + 1, of: queries.docIds.length };
          await new Promise((resolve) => setImmediate(resolve)); // lets the heartbeat timer run
        }
        await withScratch(async (dir) => {
          await writeNeighborsFile(path.join(dir, 'neighbors.parquet'), queries.docIds, lists);
          await out.putFile(SIFT_NEIGHBORS_FILE, path.join(dir, 'neighbors.parquet'));
          await writeSiftSelectionFile(path.join(dir, 'selection.jsonl'), facts);
          await out.putFile(SIFT_SELECTION_FILE, path.join(dir, 'selection.jsonl'));
        });
        return { siftDocuments: lists.length, siftSegments: vectors.segments };
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * One test document: TTT-NN over its persisted neighbors and the run's baselines, on this worker's loaded model.
     * The result is committed once (a conditional create of `documents/<index>.json`): a retry or a second worker
     * finds it and returns its counters without redoing the work.
     */
    async evaluateDocument(input: { runUrl: string; index: number }): Promise<Counters> {
      const ctx = Context.current();
      const out = store(input.runUrl);
      const key = documentKey(input.index);
      if (await out.stat(key)) return rowCounters(decodeRow((await out.getBytes(key)).toString('utf8')));
      const t0 = performance.now();
      const [settings, plan, selection] = await Promise.all([
        settingsOf(input.runUrl),
        planOf(input.runUrl),
        selectionOf(input.runUrl),
      ]);
      const doc = selection[input.index];
      if (!doc) throw ApplicationFailure.nonRetryable(`document ${input.index} is not in the selection`, 'BadInput');
      const [test] = await documentTexts(deps, plan.testStoreUrl, [doc]);
      const wantsRandom = settings.neighbors === 'random' || settings.baselines.includes('random');
      const nearest = (await neighborsOf(input.runUrl, `${RETRIEVAL_DIR}/neighbors.parquet`))[input.index] ?? [];
      const drawn = wantsRandom ? ((await neighborsOf(input.runUrl, RANDOM_NEIGHBORS_FILE))[input.index] ?? []) : [];
      const picked = settings.sift ? ((await neighborsOf(input.runUrl, SIFT_NEIGHBORS_FILE))[input.index] ?? []) : [];
      const selectionFacts = settings.sift ? (await siftFactsOf(input.runUrl))[input.index] : undefined;
      const texts = (list: Neighbor[]) => neighborTexts(store(plan.indexedStoreUrl), list, deps.cacheDir);
      const [neighbors, random, siftPicked] = await Promise.all([texts(nearest), texts(drawn), texts(picked)]);
      const retrievalSeconds = (performance.now() - t0) / 1000;

      const checkpointing = await documentCheckpointing(out, input.index, deps.checkpointEvery ?? 0);
      if (checkpointing?.resume) {
        const { stage, k } = checkpointing.resume;
        deps.log?.(`document ${input.index}: resuming from its checkpoint after ${k} neighbors of ${stage}`);
      }

      // The model serves one document at a time: while another holds it, this one heartbeats that it is queued.
      const beat = (stage: string, neighbor = 0, of = 0) => ctx.heartbeat({ index: input.index, stage, neighbor, of });
      const queued = setInterval(() => beat('queued'), 5000);
      let row: EvalResultRow;
      try {
        row = await deps.withLanguageModel(
          settings.model,
          { lr: settings.lr, ...(settings.prefixToken !== undefined ? { prefixToken: settings.prefixToken } : {}) },
          (lm) => {
            clearInterval(queued);
            return evaluateDocument(
              lm,
              {
                index: input.index,
                docId: doc.docId,
                domain: doc.domain,
                text: test!.text,
                neighbors: settings.neighbors === 'random' ? random.slice(0, nearest.length) : neighbors,
                random,
                ...(settings.sift && { sift: { picks: siftPicked, stop: selectionFacts?.stop ?? -1 } }),
              },
              { ...settings, buildId: plan.buildId },
              beat,
              ctx.cancellationSignal,
              checkpointing,
            );
          },
        );
      } finally {
        clearInterval(queued);
      }
      row.seconds_retrieval = retrievalSeconds;
      row.seconds_total += retrievalSeconds;
      if (row.skip_reason === '') row.seconds_selection = selectionFacts?.seconds ?? 0;
      if (!(await out.putBytesIfUnchanged(key, encodeRow(row), undefined))) {
        // Another attempt committed this document first (a retry that outlived its heartbeat): its result stands.
        return rowCounters(decodeRow((await out.getBytes(key)).toString('utf8')));
      }
      if (checkpointing) await out.delete(checkpointKey(input.index)); // committed: nothing left to resume
      return rowCounters(row);
    },

    /** The committed results of one part (PART_SIZE documents), in selection order, as one Parquet file. */
    async compactResults(input: { runUrl: string; index: number }): Promise<Counters> {
      const out = store(input.runUrl);
      const recordKey = partRecordKey(input.index);
      if (await out.stat(recordKey)) return (await readJson<PartRecord>(out, recordKey)).counters;
      const plan = await planOf(input.runUrl);
      const first = input.index * PART_SIZE;
      const end = Math.min(plan.documents, first + PART_SIZE);
      const rows: EvalResultRow[] = [];
      const counters: Counters = {};
      for (let i = first; i < end; i++) {
        if (i % 100 === 0) Context.current().heartbeat(i);
        const key = documentKey(i);
        if (!(await out.stat(key))) {
          throw ApplicationFailure.nonRetryable(`document ${i} has no committed result: evaluate it first`, 'Missing');
        }
        const row = decodeRow((await out.getBytes(key)).toString('utf8'));
        rows.push(row);
        for (const [name, n] of Object.entries(rowCounters(row))) counters[name] = (counters[name] ?? 0) + n;
      }
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-results-'));
      try {
        const local = path.join(scratch, 'part.parquet');
        await writeResultsFile(local, rows);
        const object = await out.putFile(partKey(input.index), local);
        const record: PartRecord = { object, rows: rows.length, counters };
        await out.putBytes(recordKey, JSON.stringify(record));
        return counters;
      } finally {
        await fs.rm(scratch, { recursive: true, force: true });
      }
    },

    /** The manifest, last: the parts and the selection, the settings and the counts. */
    async writeEvaluationManifest(input: { runUrl: string }): Promise<EvaluationSummary> {
      const out = store(input.runUrl);
      const existing = await readManifest<EvaluationManifestBody>(out, MANIFEST_FILE, EVAL_RUN_KIND);
      if (existing) return existing.body.summary;
      const [settings, plan] = await Promise.all([settingsOf(input.runUrl), planOf(input.runUrl)]);
      const objects: ObjectInfo[] = [];
      const counters: Counters = {};
      for (let part = 0; part < plan.parts; part++) {
        const record = await readJson<PartRecord>(out, partRecordKey(part));
        objects.push(record.object);
        for (const [name, n] of Object.entries(record.counters)) counters[name] = (counters[name] ?? 0) + n;
      }
      const skipped = Object.fromEntries(
        Object.entries(counters)
          .filter(([name]) => name.startsWith('skipped_'))
          .map(([name, n]) => [name.slice('skipped_'.length), n]),
      );
      const summary: EvaluationSummary = {
        runId: settings.runId,
        runUrl: input.runUrl,
        manifestUrl: joinUrl(input.runUrl, MANIFEST_FILE),
        buildId: plan.buildId,
        documents: plan.documents,
        evaluated: counters.evaluated ?? 0,
        skipped,
        steps: counters.steps ?? 0,
        parts: plan.parts,
        notDrawnOverSizeLimit: plan.overSizeLimit,
      };
      await writeManifest<EvaluationManifestBody>(out, MANIFEST_FILE, EVAL_RUN_KIND, objects, {
        settings,
        summary,
      });
      return summary;
    },
  };
}

export type EvaluationActivities = ReturnType<typeof createEvaluationActivities>;

export interface EvaluationManifestBody {
  settings: EvalSettings;
  summary: EvaluationSummary;
}

/**
 * Checkpoints of one document in the run's store (`checkpoints/<index>.ckpt`, overwritten as training goes on), and
 * the one an earlier attempt left, if any. A checkpoint is complete when it exists (written to a local file, then
 * uploaded as one object) and describes itself, so it is valid whichever heartbeat last reached the server.
 */
async function documentCheckpointing(
  out: ArtifactStore,
  index: number,
  every: number,
): Promise<Checkpointing | undefined> {
  if (every <= 0) return undefined;
  const key = checkpointKey(index);
  const withFile = <T>(work: (file: string) => Promise<T>) =>
    withScratch((dir) => work(path.join(dir, 'document.ckpt')));
  let resume: DocumentCheckpoint | undefined;
  if (await out.stat(key)) {
    resume = await withFile(async (file) => {
      await pipeline(await out.openRead(key), createWriteStream(file));
      return readCheckpointFile(file);
    });
  }
  return {
    every,
    ...(resume && { resume }),
    save: (checkpoint) =>
      withFile(async (file) => {
        await writeCheckpointFile(file, checkpoint);
        await out.putFile(key, file);
      }),
  };
}

/** What a document adds to the run's counters. */
function rowCounters(row: EvalResultRow): Counters {
  if (row.skip_reason !== '') return { documents: 1, [`skipped_${row.skip_reason}`]: 1 };
  return { documents: 1, evaluated: 1, steps: row.steps + row.random_steps + row.sift_steps + row.dynamic_steps };
}

/** run.json is written once; a second start of the run id with other settings is refused, naming the run. */
async function claimRun(out: ArtifactStore, settings: EvalSettings): Promise<void> {
  const wanted = JSON.stringify(settings, null, 1);
  if (!(await out.stat(RUN_FILE)) && (await out.putBytesIfUnchanged(RUN_FILE, wanted, undefined))) return;
  const existing = (await out.getBytes(RUN_FILE)).toString('utf8');
  if (existing !== wanted) {
    throw ApplicationFailure.nonRetryable(
      `run ${settings.runId} at ${out.url} was started with other settings; resume it as it was ` +
        `('tttnn eval resume ${settings.runId}') or choose another run id`,
      'RunIdTaken',
    );
  }
}

/** Pins the build, selects the test documents and draws the random control; writes plan.json last. */
async function makePlan(deps: EvaluationDeps, out: ArtifactStore, settings: EvalSettings): Promise<StoredPlan> {
  const indexRoot = deps.openStore(settings.indexRoot);
  const missing = (err: Error) => {
    throw ApplicationFailure.nonRetryable(err.message, 'MissingInput');
  };
  const buildId = await resolveBuildId(indexRoot, settings.build).catch(missing);
  const build = await readBuildManifest(indexRoot, buildId).catch(missing);

  const { root, key } = splitStoreUrl(settings.testManifestUrl);
  const testStore = deps.openStore(root);
  const test = await readManifest<IngestManifestBody>(testStore, key, INGEST_MANIFEST_KIND);
  if (!test) {
    throw ApplicationFailure.nonRetryable(
      `no corpus manifest at ${settings.testManifestUrl}: ingest the test corpus first ('tttnn ingest')`,
      'MissingInput',
    );
  }
  const testStoreUrl = joinUrl(root, key.split('/').slice(0, -1).join('/'));
  const candidates: SelectedDocument[] = [];
  for (const object of test.objects.filter((o) => o.key.endsWith('.parquet'))) {
    Context.current().heartbeat(object.key);
    const local = await cachedObject(deps.openStore(testStoreUrl), object, corpusCacheDir(deps.cacheDir, testStoreUrl));
    for (const [row, doc] of (await readDocumentListing(local)).entries()) {
      candidates.push({
        docId: doc.doc_id,
        domain: doc.domain,
        corpusShard: object.key,
        shardRow: row,
        bytes: doc.byte_length,
      });
    }
  }
  let selected: SelectedDocument[];
  let overSizeLimit = 0;
  if ('ids' in settings.selection) {
    const byId = new Map(candidates.map((d) => [d.docId, d]));
    const unknown = settings.selection.ids.filter((id) => !byId.has(id));
    if (unknown.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `${unknown.length} document ids are not in ${settings.testManifestUrl} (first: ${unknown.slice(0, 3).join(', ')})`,
        'BadInput',
      );
    }
    selected = settings.selection.ids.map((id) => byId.get(id)!);
  } else {
    ({ selected, overSizeLimit } = selectPerDomain(
      candidates,
      settings.selection.perDomain,
      settings.selection.seed,
      settings.maxDocumentBytes,
    ));
  }
  await withScratch(async (dir) => {
    await writeSelectionFile(path.join(dir, 'selection.parquet'), selected);
    await out.putFile(SELECTION_FILE, path.join(dir, 'selection.parquet'));
    if (settings.neighbors === 'random' || settings.baselines.includes('random')) {
      const lists = await drawRandomNeighbors(indexRoot, build, selected.length, settings);
      await writeNeighborsFile(
        path.join(dir, 'random.parquet'),
        selected.map((d) => d.docId),
        lists,
      );
      await out.putFile(RANDOM_NEIGHBORS_FILE, path.join(dir, 'random.parquet'));
    }
  });
  const plan: StoredPlan = {
    buildId,
    documents: selected.length,
    parts: Math.ceil(selected.length / PART_SIZE),
    overSizeLimit,
    testStoreUrl,
    indexedStoreUrl: build.body.corpus.storeUrl,
  };
  await out.putBytes(PLAN_FILE, JSON.stringify(plan, null, 1));
  return plan;
}

/**
 * For each selected document, k documents drawn uniformly (seeded per document) from everything the build indexed:
 * positions over the shards' vectors in shard order, mapped to (corpus shard, row) through each shard's id map.
 */
async function drawRandomNeighbors(
  indexRoot: ArtifactStore,
  build: Awaited<ReturnType<typeof readBuildManifest>>,
  documents: number,
  settings: EvalSettings,
): Promise<Neighbor[][]> {
  const shards = build.body.shards;
  const starts: number[] = [];
  let total = 0;
  for (const shard of shards) {
    starts.push(total);
    total += shard.vectors;
  }
  const draws = Array.from({ length: documents }, (_, d) => randomPositions(total, settings.k, settings.seed, d));
  const objects = new Map(build.objects.map((o) => [o.key, o]));
  const ids = new Map<number, ShardIds>();
  const shardOf = (position: number) => {
    let lo = 0;
    let hi = shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= position) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const lists: Neighbor[][] = [];
  for (const positions of draws) {
    const list: Neighbor[] = [];
    for (const position of positions) {
      const s = shardOf(position);
      if (!ids.has(s)) {
        const object = objects.get(shards[s]!.ids!)!;
        const bytes = await readVerified(indexRoot, { ...object, key: `builds/${build.body.buildId}/${object.key}` });
        ids.set(s, JSON.parse(bytes.toString('utf8')) as ShardIds);
      }
      const map = ids.get(s)!;
      const row = position - starts[s]!;
      list.push({
        rank: list.length + 1,
        distance: NaN,
        docId: map.docIds[row]!,
        corpusShard: shards[s]!.shard,
        shardRow: map.shardRows[row]!,
        domain: map.domains?.[row] ?? '',
      });
    }
    lists.push(list);
  }
  return lists;
}

/** Texts of selected documents, read by (corpus shard, row) from the test corpus version. */
async function documentTexts(
  deps: EvaluationDeps,
  testStoreUrl: string,
  docs: readonly SelectedDocument[],
): Promise<NeighborText[]> {
  const asNeighbors = docs.map((d, i) => ({
    rank: i + 1,
    distance: 0,
    docId: d.docId,
    corpusShard: d.corpusShard,
    shardRow: d.shardRow,
    domain: d.domain,
  }));
  return neighborTexts(deps.openStore(testStoreUrl), asNeighbors, deps.cacheDir);
}

async function withScratch<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-eval-'));
  try {
    return await work(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Runs `read` on a local copy of a store object (small ones: read whole). */
export async function withLocalCopy<T>(
  out: ArtifactStore,
  key: string,
  read: (localPath: string) => Promise<T>,
): Promise<T> {
  return withScratch(async (dir) => {
    const local = path.join(dir, path.basename(key));
    await fs.writeFile(local, await out.getBytes(key));
    return read(local);
  });
}
