import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context, ApplicationFailure } from '@temporalio/activity';
import { DEFAULT_COMPRESSION, DocumentShardWriter, type ParquetCompression } from '../core/corpus/document-shards';
import { isCompressedPileFile, isPileFile, readPileLines } from '../core/corpus/pile-reader';
import type { ArtifactStore } from '../core/store/artifact-store';
import { MANIFEST_FILE, readManifest, writeManifest } from '../core/store/manifest';
import type {
  FileIngestResult,
  IngestFileHeartbeat,
  IngestInput,
  IngestLimits,
  IngestPlan,
  IngestSummary,
} from '../workflows/shared';

export const INGEST_MANIFEST_KIND = 'tttnn.ingest';
/** Bumped when the shard layout changes, so that old and new outputs never share a version. */
const INGEST_FORMAT = 1;
const SHARD_COMPRESSION: ParquetCompression = DEFAULT_COMPRESSION;
const FINGERPRINT_BYTES = 1024 * 1024;

export interface IngestManifestBody {
  version: string;
  format: number;
  input: { storeUrl: string; files: { key: string; size: number; fingerprint: string }[] };
  limits: IngestLimits;
  compression: ParquetCompression;
  summary: Omit<IngestSummary, 'manifestUrl'>;
  files: FileIngestResult[];
}

export interface IngestDeps {
  openStore(url: string): ArtifactStore;
}

export function createIngestActivities(deps: IngestDeps) {
  return {
    /** Lists the input files and derives the version from their content fingerprints and the limits. */
    async planIngest(input: Pick<IngestInput, 'inputUrl' | 'outUrl' | 'limits'>): Promise<IngestPlan> {
      const { storeUrl, keys } = await resolveInputs(deps, input.inputUrl);
      const store = deps.openStore(storeUrl);
      const files = [];
      for (const key of keys) {
        const stat = await store.stat(key);
        if (!stat)
          throw ApplicationFailure.nonRetryable(`input file ${joinUrl(storeUrl, key)} does not exist`, 'MissingInput');
        files.push({ key, size: stat.size, fingerprint: await fingerprint(store, key, stat.size) });
      }
      const version = createHash('sha256')
        .update(JSON.stringify({ format: INGEST_FORMAT, compression: SHARD_COMPRESSION, limits: input.limits, files }))
        .digest('hex')
        .slice(0, 16);
      const outStoreUrl = `${input.outUrl.replace(/\/+$/, '')}/${version}`;
      return { version, inputStoreUrl: storeUrl, outStoreUrl, files };
    },

    /**
     * Ingests one Pile file into Parquet shards. Idempotent: a finished file returns its recorded result;
     * a retried one resumes after the last shard it committed (from its heartbeat), and because shard
     * boundaries depend only on the input, the shards it writes are byte-identical to an undisturbed run's.
     */
    async ingestFile(input: { plan: IngestPlan; fileIndex: number; limits: IngestLimits }): Promise<FileIngestResult> {
      const ctx = Context.current();
      const { plan, fileIndex, limits } = input;
      const file = plan.files[fileIndex]!;
      const out = deps.openStore(plan.outStoreUrl);
      const partKey = `parts/${partName(fileIndex)}.json`;
      if (await out.stat(partKey))
        return JSON.parse((await out.getBytes(partKey)).toString('utf8')) as FileIngestResult;

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
          const key = `shards/${partName(fileIndex)}-${String(state.shards.length).padStart(5, '0')}.parquet`;
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
      return result;
    },

    /** Writes the manifest last, after checking that every shard it lists is in place. */
    async writeIngestManifest(input: {
      plan: IngestPlan;
      limits: IngestLimits;
      results: FileIngestResult[];
    }): Promise<IngestSummary> {
      const { plan, results } = input;
      const out = deps.openStore(plan.outStoreUrl);
      const manifestUrl = `${out.url}${MANIFEST_FILE}`;
      const existing = await readManifest<IngestManifestBody>(out, MANIFEST_FILE, INGEST_MANIFEST_KIND);
      if (existing) return { ...existing.body.summary, manifestUrl };

      const summary: Omit<IngestSummary, 'manifestUrl'> = {
        version: plan.version,
        files: results.length,
        documents: 0,
        bytes: 0,
        shards: 0,
        skipped: {},
        domains: {},
        fileErrors: [],
      };
      const objects = [];
      for (const result of results) {
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
        if (result.error) summary.fileErrors.push({ file: result.file, error: result.error });
        for (const shard of result.shards) {
          const stat = await out.stat(shard.key);
          if (stat?.size !== shard.size)
            throw new Error(`shard ${out.url}${shard.key} is missing or has the wrong size`);
          objects.push({ key: shard.key, size: shard.size, sha256: shard.sha256 });
        }
      }
      summary.domains = Object.fromEntries(Object.entries(summary.domains).sort(([a], [b]) => (a < b ? -1 : 1)));
      const body: IngestManifestBody = {
        version: plan.version,
        format: INGEST_FORMAT,
        input: { storeUrl: plan.inputStoreUrl, files: plan.files },
        limits: input.limits,
        compression: SHARD_COMPRESSION,
        summary,
        files: results,
      };
      await writeManifest(out, MANIFEST_FILE, INGEST_MANIFEST_KIND, objects, body);
      return { ...summary, manifestUrl };
    },
  };
}

export type IngestActivities = ReturnType<typeof createIngestActivities>;

/** Stable across runs and machines: the source file's key and the line. */
export function documentId(sourceKey: string, line: number): string {
  return createHash('sha256').update(`${sourceKey}\n${line}`).digest('hex').slice(0, 24);
}

const joinUrl = (base: string, key: string) => (base.endsWith('/') ? base + key : `${base}/${key}`);

const partName = (fileIndex: number) => String(fileIndex).padStart(5, '0');

/** A URL ending in `.jsonl`/`.jsonl.zst` is one file; anything else is a folder or prefix of them. */
async function resolveInputs(deps: IngestDeps, inputUrl: string): Promise<{ storeUrl: string; keys: string[] }> {
  const trimmed = inputUrl.replace(/\/+$/, '');
  if (isPileFile(trimmed)) {
    const slash = trimmed.lastIndexOf('/');
    return { storeUrl: slash === -1 ? '.' : trimmed.slice(0, slash), keys: [trimmed.slice(slash + 1)] };
  }
  const store = deps.openStore(trimmed);
  const keys: string[] = [];
  for await (const object of store.list('')) if (isPileFile(object.key)) keys.push(object.key);
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
