import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context, ApplicationFailure } from '@temporalio/activity';
import {
  DEFAULT_COMPRESSION,
  DocumentShardWriter,
  type ParquetCompression,
  ROW_GROUP_LIMITS,
} from '../core/corpus/document-shards';
import { isCompressedPileFile, isPileFile, readPileLines } from '../core/corpus/pile-reader';
import { mapOrdered } from '../core/map-ordered';
import type { ArtifactStore, ObjectInfo } from '../core/store/artifact-store';
import { StreamedArray } from '../core/store/json-stream';
import { MANIFEST_FILE, readManifest, writeManifestStreamed } from '../core/store/manifest';
import type { Counters } from '../workflows/paged';
import {
  type FileIngestResult,
  type IngestFileHeartbeat,
  type IngestFileInput,
  type IngestFileRef,
  type IngestInput,
  type IngestLimits,
  type IngestPlanHeader,
  type IngestPlanRef,
  type IngestSummary,
  MAX_SUMMARY_FILE_ERRORS,
} from '../workflows/shared';

export const INGEST_MANIFEST_KIND = 'tttnn.ingest';
/**
 * Bumped when the shard layout changes, so that old and new outputs never share a version. (The row-group limits
 * enter the version by value.)
 */
const INGEST_FORMAT = 1;
const SHARD_COMPRESSION: ParquetCompression = DEFAULT_COMPRESSION;
const FINGERPRINT_BYTES = 1024 * 1024;
/** The plan's header; the file list is in chunks of PLAN_CHUNK entries beside it (see IngestPlanHeader). */
export const PLAN_FILE = 'plan.json';
const PLAN_CHUNK = 1000;
/** The summary the manifest step returned, written just before the manifest, so that a re-run need not parse it. */
const SUMMARY_FILE = 'summary.json';
/** Store reads (stats, fingerprints, per-file records) in flight at once in the planning and manifest steps. */
const READ_CONCURRENCY = 16;

export type IngestManifestSummary = Omit<IngestSummary, 'manifestUrl' | 'fileErrorsOmitted'>;

export interface IngestManifestBody {
  version: string;
  format: number;
  input: { storeUrl: string; files: IngestFileRef[] };
  limits: IngestLimits;
  compression: ParquetCompression;
  /** Where the shards' row groups end (rows, text bytes): part of the version, as the limits are. Absent before. */
  rowGroups?: typeof ROW_GROUP_LIMITS;
  /** Every damaged file is listed here (the summary returned to the workflow keeps the first 100). */
  summary: IngestManifestSummary;
  files: FileIngestResult[];
}

export interface IngestDeps {
  openStore(url: string): ArtifactStore;
}

export function createIngestActivities(deps: IngestDeps) {
  const plans = planReader(deps);
  return {
    /**
     * Lists the input files, derives the version from their content fingerprints and the limits, and stores the
     * file list under `<out>/<version>/` (plan chunks, then `plan.json`). Returns references and counts only.
     */
    async planIngest(input: Pick<IngestInput, 'inputUrl' | 'outUrl' | 'limits'>): Promise<IngestPlanRef> {
      return keepAlive(async (beat) => {
        const { storeUrl, keys } = await resolveInputs(deps, input.inputUrl, beat);
        const store = deps.openStore(storeUrl);
        const files: IngestFileRef[] = [];
        const refs = mapOrdered(keys, READ_CONCURRENCY, async (key) => {
          const stat = await store.stat(key);
          if (!stat) {
            throw ApplicationFailure.nonRetryable(
              `input file ${joinUrl(storeUrl, key)} does not exist`,
              'MissingInput',
            );
          }
          return { key, size: stat.size, fingerprint: await fingerprint(store, key, stat.size) };
        });
        for await (const ref of refs) {
          files.push(ref);
          beat();
        }
        const version = createHash('sha256')
          .update(
            JSON.stringify({
              format: INGEST_FORMAT,
              compression: SHARD_COMPRESSION,
              rowGroups: ROW_GROUP_LIMITS,
              limits: input.limits,
              files,
            }),
          )
          .digest('hex')
          .slice(0, 16);
        const outStoreUrl = `${input.outUrl.replace(/\/+$/, '')}/${version}`;
        const header: IngestPlanHeader = {
          version,
          inputStoreUrl: storeUrl,
          outStoreUrl,
          files: files.length,
          bytesTotal: files.reduce((sum, f) => sum + f.size, 0),
          chunkSize: PLAN_CHUNK,
        };
        // The version is content-derived, so an existing plan of it is this plan: written once, header last.
        const out = deps.openStore(outStoreUrl);
        if (!(await out.stat(PLAN_FILE))) {
          for (let chunk = 0; chunk * PLAN_CHUNK < files.length; chunk++) {
            await out.putBytes(
              planChunkKey(chunk),
              JSON.stringify(files.slice(chunk * PLAN_CHUNK, (chunk + 1) * PLAN_CHUNK)),
            );
            beat();
          }
          await out.putBytes(PLAN_FILE, `${JSON.stringify(header, null, 2)}\n`);
        }
        return { version, outStoreUrl, files: header.files, bytesTotal: header.bytesTotal };
      });
    },

    /**
     * Ingests file `index` of the stored plan into Parquet shards and returns its counters. Idempotent: a finished
     * file returns the counters of its per-file record; a retried one resumes after the last shard it committed
     * (from its heartbeat), and because shard boundaries depend only on the input, the shards it writes are
     * byte-identical to an undisturbed run's.
     */
    async ingestFile(input: IngestFileInput): Promise<Counters> {
      const ctx = Context.current();
      const { outStoreUrl, index, limits } = input;
      const plan = await plans.header(outStoreUrl);
      if (!Number.isInteger(index) || index < 0 || index >= plan.files) {
        throw ApplicationFailure.nonRetryable(`file ${index} is not in the plan's ${plan.files} files`, 'InvalidInput');
      }
      const file = await plans.file(plan, index);
      const out = deps.openStore(outStoreUrl);
      const partKey = partKeyOf(index);
      if (await out.stat(partKey)) {
        return fileCounters(file, JSON.parse((await out.getBytes(partKey)).toString('utf8')) as FileIngestResult);
      }

      const resumed = (ctx.info.heartbeatDetails as IngestFileHeartbeat | undefined)?.checkpoint;
      const state: FileIngestResult & { throughLine: number } = resumed ?? {
        file: file.key,
        lines: 0,
        documents: 0,
        bytes: 0,
        skipped: {},
        domains: {},
        shards: [],
        throughLine: 0,
      };
      if (resumed) ctx.log.info('resuming ingest', { file: file.key, throughLine: resumed.throughLine });

      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-ingest-'));
      const local = path.join(scratch, 'shard.parquet');
      let shard: DocumentShardWriter | undefined;
      let rows = 0;
      let rowBytes = 0;
      let rawBytesRead = 0;
      // What a retry resumes from: the state as of the last committed shard, never the live counts.
      let checkpoint = structuredClone(state);
      let lastBeat = 0;
      const beat = (force = false) => {
        if (!force && Date.now() - lastBeat < 1000) return;
        lastBeat = Date.now();
        ctx.heartbeat({ checkpoint, rawBytesRead } satisfies IngestFileHeartbeat);
      };
      const flush = async (throughLine: number) => {
        if (shard) {
          await shard.close();
          shard = undefined;
          const key = `shards/${partName(index)}-${String(state.shards.length).padStart(5, '0')}.parquet`;
          const info = await out.putFile(key, local);
          state.shards.push({ ...info, rows });
          rows = 0;
          rowBytes = 0;
        }
        state.throughLine = throughLine;
        checkpoint = structuredClone(state);
        beat(true);
      };

      try {
        const source = await deps.openStore(plan.inputStoreUrl).openRead(file.key);
        const lines = readPileLines(source, {
          compressed: isCompressedPileFile(file.key),
          maxDocumentBytes: limits.maxDocumentBytes,
          skipThroughLine: state.throughLine,
          onRawBytes: (n) => {
            rawBytesRead = n;
            beat();
          },
        });
        let lastLine = state.throughLine;
        for await (const entry of lines) {
          if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
          lastLine = entry.line;
          if ('skip' in entry) {
            state.skipped[entry.skip] = (state.skipped[entry.skip] ?? 0) + 1;
            if (entry.skip === 'corrupt_file') {
              state.error = `${file.key}: ${entry.detail ?? 'corrupt'} at line ${entry.line}`;
            } else {
              state.lines = entry.line;
            }
            continue;
          }
          const doc = entry.document;
          state.lines = entry.line;
          state.documents += 1;
          state.bytes += doc.byteLength;
          const domain = (state.domains[doc.domain] ??= { documents: 0, bytes: 0 });
          domain.documents += 1;
          domain.bytes += doc.byteLength;
          shard ??= await DocumentShardWriter.open(local, SHARD_COMPRESSION);
          await shard.append({
            doc_id: documentId(file.key, doc.line),
            domain: doc.domain,
            source_file: file.key,
            line: doc.line,
            byte_length: doc.byteLength,
            text: doc.text,
          });
          rows += 1;
          rowBytes += doc.byteLength;
          if (rows >= limits.rowsPerShard || rowBytes >= limits.maxShardBytes) await flush(entry.line);
        }
        await flush(lastLine);
      } finally {
        await fs.rm(scratch, { recursive: true, force: true });
      }
      const { throughLine: _done, ...result } = state;
      await out.putBytes(partKey, JSON.stringify(result));
      return fileCounters(file, result);
    },

    /**
     * Writes the manifest last, from the stored plan and per-file records, after checking that every shard it lists
     * is in place. The records are read a window at a time and the manifest is streamed to a local file, so memory
     * does not grow with the number of files (only the list of damaged files is held). Returns the summary, its
     * list of damaged files cut to the first 100.
     */
    async writeIngestManifest(input: { outStoreUrl: string; limits: IngestLimits }): Promise<IngestSummary> {
      return keepAlive(async (beat) => {
        const out = deps.openStore(input.outStoreUrl);
        const manifestUrl = `${out.url}${MANIFEST_FILE}`;
        if (await out.stat(MANIFEST_FILE)) {
          if (await out.stat(SUMMARY_FILE)) {
            const summary = JSON.parse((await out.getBytes(SUMMARY_FILE)).toString('utf8')) as IngestSummary;
            return { ...summary, manifestUrl };
          }
          const existing = await readManifest<IngestManifestBody>(out, MANIFEST_FILE, INGEST_MANIFEST_KIND);
          if (existing) return { ...capFileErrors(existing.body.summary), manifestUrl };
        }

        const plan = await plans.header(input.outStoreUrl);
        const readPart = async (index: number) =>
          JSON.parse((await out.getBytes(partKeyOf(index))).toString('utf8')) as FileIngestResult;
        const summary: IngestManifestSummary = {
          version: plan.version,
          files: plan.files,
          documents: 0,
          bytes: 0,
          shards: 0,
          skipped: {},
          domains: {},
          fileErrors: [],
        };
        const errors: { index: number; file: string; error: string }[] = [];

        // First pass, in the objects' key order: check the shards, list them and sum up the summary.
        async function* objects(): AsyncIterable<ObjectInfo> {
          const checked = mapOrdered(indicesInKeyOrder(plan.files), READ_CONCURRENCY, async (index) => {
            const result = await readPart(index);
            for (const shard of result.shards) {
              const stat = await out.stat(shard.key);
              if (stat?.size !== shard.size)
                throw new Error(`shard ${out.url}${shard.key} is missing or has the wrong size`);
            }
            return { index, result };
          });
          for await (const { index, result } of checked) {
            addToSummary(summary, result);
            if (result.error) errors.push({ index, file: result.file, error: result.error });
            const shards = [...result.shards].sort((a, b) => (a.key < b.key ? -1 : 1));
            for (const shard of shards) yield { key: shard.key, size: shard.size, sha256: shard.sha256 };
            beat();
          }
          summary.domains = Object.fromEntries(Object.entries(summary.domains).sort(([a], [b]) => (a < b ? -1 : 1)));
          summary.fileErrors = errors.sort((a, b) => a.index - b.index).map(({ file, error }) => ({ file, error }));
        }
        // Second pass, in plan order: the per-file records themselves.
        async function* records(): AsyncIterable<FileIngestResult> {
          for await (const result of mapOrdered(range(plan.files), READ_CONCURRENCY, readPart)) {
            yield result;
            beat();
          }
        }
        const body = {
          version: plan.version,
          format: INGEST_FORMAT,
          input: { storeUrl: plan.inputStoreUrl, files: new StreamedArray(() => plans.files(plan)) },
          limits: input.limits,
          compression: SHARD_COMPRESSION,
          rowGroups: ROW_GROUP_LIMITS,
          // Complete by the time it is written: the objects, which fill it in, come first in the manifest.
          summary,
          files: new StreamedArray(records),
        } satisfies Record<keyof IngestManifestBody, unknown>;
        await writeManifestStreamed(out, MANIFEST_FILE, INGEST_MANIFEST_KIND, objects, body, {
          beforeUpload: async () => {
            await out.putBytes(SUMMARY_FILE, JSON.stringify(capFileErrors(summary)));
          },
        });
        return { ...capFileErrors(summary), manifestUrl };
      });
    },
  };
}

export type IngestActivities = ReturnType<typeof createIngestActivities>;

/** Stable across runs and machines: the source file's key and the line. */
export function documentId(sourceKey: string, line: number): string {
  return createHash('sha256').update(`${sourceKey}\n${line}`).digest('hex').slice(0, 24);
}

const joinUrl = (base: string, key: string) => (base.endsWith('/') ? base + key : `${base}/${key}`);

const partName = (index: number) => String(index).padStart(5, '0');
const partKeyOf = (index: number) => `parts/${partName(index)}.json`;
const planChunkKey = (chunk: number) => `plan/${String(chunk).padStart(5, '0')}.json`;
const range = (n: number): Iterable<number> => ({
  *[Symbol.iterator]() {
    for (let i = 0; i < n; i++) yield i;
  },
});

/**
 * File indices in the order of their shard keys (`shards/<partName>-<n>.parquet`): index order up to 99,999 files,
 * then `100000` sorts before `10001`. Walking files in this order lists the manifest's objects sorted by key.
 */
function indicesInKeyOrder(files: number): number[] {
  const prefixes = Array.from(range(files), (index) => `${partName(index)}-`);
  return Array.from(range(files)).sort((a, b) => (prefixes[a]! < prefixes[b]! ? -1 : 1));
}

/** What one file adds to the stage's counters: counts only, never lists. */
export function fileCounters(file: IngestFileRef, result: FileIngestResult): Counters {
  const counters: Counters = {
    files: 1,
    bytes_in: file.size,
    documents: result.documents,
    text_bytes: result.bytes,
    lines: result.lines,
    shards: result.shards.length,
    damaged_files: result.error ? 1 : 0,
  };
  for (const [reason, n] of Object.entries(result.skipped)) counters[`skipped_${reason}`] = n;
  return counters;
}

function addToSummary(summary: IngestManifestSummary, result: FileIngestResult): void {
  summary.documents += result.documents;
  summary.bytes += result.bytes;
  summary.shards += result.shards.length;
  for (const [reason, n] of Object.entries(result.skipped)) {
    const key = reason as keyof typeof summary.skipped;
    summary.skipped[key] = (summary.skipped[key] ?? 0) + n;
  }
  for (const [name, count] of Object.entries(result.domains)) {
    const domain = (summary.domains[name] ??= { documents: 0, bytes: 0 });
    domain.documents += count.documents;
    domain.bytes += count.bytes;
  }
}

/** The summary as returned through the workflow: at most MAX_SUMMARY_FILE_ERRORS damaged files, plus a count. */
function capFileErrors(summary: IngestManifestSummary): Omit<IngestSummary, 'manifestUrl'> {
  const omitted = summary.fileErrors.length - MAX_SUMMARY_FILE_ERRORS;
  if (omitted <= 0) return summary;
  return { ...summary, fileErrors: summary.fileErrors.slice(0, MAX_SUMMARY_FILE_ERRORS), fileErrorsOmitted: omitted };
}

/**
 * Runs a control step (planning, manifest) while heartbeating every second, so that a killed worker is noticed
 * after the heartbeat timeout even while one long store call is in flight; `beat` is for loops to call as well.
 */
async function keepAlive<T>(step: (beat: () => void) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const beat = () => ctx.heartbeat();
  const timer = setInterval(beat, 1000);
  try {
    return await step(beat);
  } finally {
    clearInterval(timer);
  }
}

/** Reads stored plans: headers and file-list chunks, cached per process (a version's plan never changes). */
function planReader(deps: IngestDeps) {
  const cache = new Map<string, Promise<unknown>>();
  const cached = <T>(key: string, load: () => Promise<T>): Promise<T> => {
    let entry = cache.get(key) as Promise<T> | undefined;
    if (!entry) {
      entry = load();
      cache.set(key, entry);
      entry.catch(() => cache.delete(key));
      for (const oldest of cache.keys()) {
        if (cache.size <= 16) break;
        cache.delete(oldest);
      }
    }
    return entry;
  };
  const readJson = async <T>(store: ArtifactStore, key: string) =>
    JSON.parse((await store.getBytes(key)).toString('utf8')) as T;
  const chunk = (plan: IngestPlanHeader, n: number) =>
    cached(`${plan.outStoreUrl}\n${planChunkKey(n)}`, () =>
      readJson<IngestFileRef[]>(deps.openStore(plan.outStoreUrl), planChunkKey(n)),
    );
  return {
    header: (outStoreUrl: string): Promise<IngestPlanHeader> =>
      cached(`${outStoreUrl}\n${PLAN_FILE}`, async () => {
        const out = deps.openStore(outStoreUrl);
        if (!(await out.stat(PLAN_FILE))) {
          throw ApplicationFailure.nonRetryable(
            `no ingest plan ${out.url}${PLAN_FILE}: plan the ingest first`,
            'MissingInput',
          );
        }
        return readJson<IngestPlanHeader>(out, PLAN_FILE);
      }),
    async file(plan: IngestPlanHeader, index: number): Promise<IngestFileRef> {
      const entry = (await chunk(plan, Math.floor(index / plan.chunkSize)))[index % plan.chunkSize];
      if (!entry) throw new Error(`the plan ${plan.outStoreUrl}/${PLAN_FILE} has no file ${index}`);
      return entry;
    },
    /** Every file of the plan in order, one chunk in memory at a time (not cached: a single pass). */
    async *files(plan: IngestPlanHeader): AsyncIterable<IngestFileRef> {
      const out = deps.openStore(plan.outStoreUrl);
      for (let n = 0; n * plan.chunkSize < plan.files; n++)
        yield* await readJson<IngestFileRef[]>(out, planChunkKey(n));
    },
  };
}

/** A URL ending in `.jsonl`/`.jsonl.zst` is one file; anything else is a folder or prefix of them. */
async function resolveInputs(
  deps: IngestDeps,
  inputUrl: string,
  beat: () => void,
): Promise<{ storeUrl: string; keys: string[] }> {
  const trimmed = inputUrl.replace(/\/+$/, '');
  if (isPileFile(trimmed)) {
    const slash = trimmed.lastIndexOf('/');
    return { storeUrl: slash === -1 ? '.' : trimmed.slice(0, slash), keys: [trimmed.slice(slash + 1)] };
  }
  const store = deps.openStore(trimmed);
  const keys: string[] = [];
  for await (const object of store.list('')) {
    if (isPileFile(object.key)) keys.push(object.key);
    beat();
  }
  if (keys.length === 0) {
    throw ApplicationFailure.nonRetryable(`no *.jsonl or *.jsonl.zst files under ${inputUrl}`, 'MissingInput');
  }
  return { storeUrl: trimmed, keys };
}

/** Size plus the SHA-256 of the first and last MiB: content-based, yet cheap on 14 GB files. */
async function fingerprint(store: ArtifactStore, key: string, size: number): Promise<string> {
  const hash = createHash('sha256').update(String(size));
  const ranges =
    size <= 2 * FINGERPRINT_BYTES
      ? [{ start: 0 }]
      : [{ start: 0, end: FINGERPRINT_BYTES - 1 }, { start: size - FINGERPRINT_BYTES }];
  for (const range of ranges) {
    if (size === 0) break;
    for await (const chunk of await store.openRead(key, range)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
