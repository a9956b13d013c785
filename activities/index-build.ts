import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { readDocumentShard } from '../core/corpus/document-shards';
import { embedTexts } from '../core/embed';
import { buildIndexInThread } from '../core/index/build-thread';
import { exactSearch, recallAtK } from '../core/index/vector-index';
import { readVectorsFile, writeVectorsFile } from '../core/index/vectors-file';
import type { ArtifactStore, ObjectInfo } from '../core/store/artifact-store';
import { MANIFEST_FILE, downloadVerified, readManifest, writeManifest } from '../core/store/manifest';
import { splitStoreUrl } from '../core/store/open-store';
import type { Encoder } from '../core/models/modeling-utils';
import type { TextTokenizer } from '../core/tokenizers/tokenizer';
import type { Counters } from '../workflows/paged';
import {
  type EmbeddingRecord,
  type EmbeddingSegment,
  INDEX_FORMAT,
  INDEX_MANIFEST_KIND,
  type IndexBuildPlan,
  type IndexManifestBody,
  type ShardIds,
  type ShardIndexRecord,
} from '../core/index/build-layout';
import type { EmbedShardHeartbeat, IndexBuildInput, IndexBuildRef, IndexBuildSummary } from '../workflows/index-types';
import { INGEST_MANIFEST_KIND, type IngestManifestBody } from './ingest';
import { embeddingSegmentKey, promoteBuild } from '../core/index/build-layout';

export interface LoadedEncoder {
  encoder: Encoder;
  tokenizer: TextTokenizer;
  /** modelDigest() of the files it was loaded from. */
  digest: string;
}

export interface IndexBuildDeps {
  openStore(url: string): ArtifactStore;
  /** Locates the encoder on this machine and returns its digest, without loading it. */
  encoderDigest(spec: string): Promise<string>;
  /** The encoder, loaded once per process and kept. */
  loadEncoder(spec: string): Promise<LoadedEncoder>;
}

const shardName = (index: number) => String(index).padStart(5, '0');
const embeddingRecordKey = (index: number) => `embeddings/${shardName(index)}.json`;
const indexRecordKey = (index: number) => `index/${shardName(index)}.json`;

export function createIndexBuildActivities(deps: IndexBuildDeps) {
  const plans = new Map<string, Promise<IndexBuildPlan>>();
  /** The plan of a build, read once per process (it does not change once written). */
  const planOf = (buildUrl: string) => {
    let plan = plans.get(buildUrl);
    if (!plan) {
      plan = readJson<IndexBuildPlan>(deps.openStore(buildUrl), 'plan.json');
      plans.set(buildUrl, plan);
      plan.catch(() => plans.delete(buildUrl));
    }
    return plan;
  };

  return {
    /**
     * Reads the corpus manifest, resolves the encoder's digest, derives the build id from both and every setting,
     * and writes the plan (the shard list) into the build's folder. Returns a reference, never the list.
     */
    async planIndexBuild(input: IndexBuildInput): Promise<IndexBuildRef> {
      const { root, key } = splitStoreUrl(input.corpusManifestUrl);
      const corpusStore = deps.openStore(root);
      const corpus = await readManifest<IngestManifestBody>(corpusStore, key, INGEST_MANIFEST_KIND);
      if (!corpus) {
        throw ApplicationFailure.nonRetryable(
          `no corpus manifest at ${input.corpusManifestUrl}: ingest the corpus first ('tttnn ingest')`,
          'MissingInput',
        );
      }
      const storeUrl = joinUrl(root, key.split('/').slice(0, -1).join('/'));
      const rows = new Map<string, number>();
      for (const file of corpus.body.files) for (const shard of file.shards) rows.set(shard.key, shard.rows);
      const shards = corpus.objects
        .filter((o) => o.key.endsWith('.parquet'))
        .map((o) => ({ ...o, rows: rows.get(o.key) ?? 0 }));
      const digest = await deps.encoderDigest(input.encoder).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(`encoder ${input.encoder}: ${err.message}`, 'MissingInput');
      });
      const settings = { embed: input.embed, index: input.index, recall: input.recall };
      const buildId =
        input.buildId ??
        createHash('sha256')
          .update(JSON.stringify({ format: INDEX_FORMAT, corpus: corpus.body.version, digest, ...settings }))
          .digest('hex')
          .slice(0, 16);
      const buildUrl = joinUrl(input.outUrl, `builds/${buildId}`);
      const out = deps.openStore(buildUrl);
      const ref = {
        buildId,
        buildUrl,
        corpusVersion: corpus.body.version,
        shards: shards.length,
        documents: corpus.body.summary.documents,
      };
      if (await out.stat(MANIFEST_FILE)) return { ...ref, done: true };
      const plan: IndexBuildPlan = {
        buildId,
        format: INDEX_FORMAT,
        corpus: { manifestUrl: input.corpusManifestUrl, storeUrl, version: corpus.body.version },
        encoder: { spec: input.encoder, digest },
        ...settings,
        shards,
      };
      const existing = (await out.stat('plan.json')) ? await readJson<IndexBuildPlan>(out, 'plan.json') : undefined;
      if (existing && JSON.stringify(existing) !== JSON.stringify(plan)) {
        throw ApplicationFailure.nonRetryable(
          `build ${buildId} at ${buildUrl} was planned with other inputs: choose another build id`,
          'BuildIdTaken',
        );
      }
      if (!existing) await out.putBytes('plan.json', JSON.stringify(plan, null, 1));
      return { ...ref, done: false };
    },

    /**
     * Embeds one corpus shard, `segmentRows` documents at a time; each segment is uploaded as a Parquet file
     * (doc_id, shard_row, vector) before the heartbeat names it, so a retry after a crash starts after the last
     * uploaded segment: nothing committed is embedded or uploaded twice. Segment boundaries depend only on the
     * shard, so a resumed shard's files equal an undisturbed run's.
     */
    async embedShard(input: { buildUrl: string; index: number }): Promise<Counters> {
      const ctx = Context.current();
      const out = deps.openStore(input.buildUrl);
      const recordKey = embeddingRecordKey(input.index);
      if (await out.stat(recordKey)) return embedCounters(await readJson<EmbeddingRecord>(out, recordKey), 0);
      const plan = await planOf(input.buildUrl);
      const shard = plan.shards[input.index];
      if (!shard) throw ApplicationFailure.nonRetryable(`build ${plan.buildId} has no shard ${input.index}`);

      const started = Date.now();
      const loaded = await deps.loadEncoder(plan.encoder.spec);
      if (loaded.digest !== plan.encoder.digest) {
        throw ApplicationFailure.nonRetryable(
          `encoder ${plan.encoder.spec} on this worker has digest ${loaded.digest}, but build ${plan.buildId} ` +
            `was planned with ${plan.encoder.digest}: give every worker the same encoder files`,
          'EncoderMismatch',
        );
      }
      const resumed = ctx.info.heartbeatDetails as EmbedShardHeartbeat | undefined;
      const segments: EmbeddingSegment[] = resumed?.segments ?? [];
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-embed-'));
      try {
        const local = path.join(scratch, 'shard.parquet');
        await downloadVerified(deps.openStore(plan.corpus.storeUrl), shard, local);
        const rows = await readDocumentShard(local);
        const { segmentRows } = plan.embed;
        for (let first = segments.length * segmentRows; first < rows.length; first += segmentRows) {
          const slice = rows.slice(first, first + segmentRows);
          const kept: { docId: string; shardRow: number; domain: string; text: string }[] = [];
          const skipped: Record<string, number> = {};
          slice.forEach((row, i) => {
            // A text with no token of its own would be embedded from the special tokens alone: not a neighbor.
            if (loaded.tokenizer.encode(row.text, { addSpecialTokens: false }).length === 0) {
              skipped.empty_tokens = (skipped.empty_tokens ?? 0) + 1;
            } else {
              kept.push({ docId: row.doc_id, shardRow: first + i, domain: row.domain, text: row.text });
            }
          });
          const vectors: Float32Array[] = [];
          for (let b = 0; b < kept.length; b += plan.embed.batchSize) {
            if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
            const batch = kept.slice(b, b + plan.embed.batchSize).map((d) => d.text);
            vectors.push(
              ...embedTexts(loaded.encoder, loaded.tokenizer, batch, {
                maxLength: plan.embed.maxLength,
                normalize: plan.embed.normalize,
                batchSize: plan.embed.batchSize,
              }),
            );
            ctx.heartbeat({
              segments: [...segments],
              documentsDone: first + b + batch.length,
            } satisfies EmbedShardHeartbeat);
            await new Promise((resolve) => setImmediate(resolve)); // let the heartbeat and cancellation through
          }
          const dimensions = loaded.encoder.hiddenSize; // also for a segment whose every document was skipped
          const flat = new Float32Array(vectors.length * dimensions);
          vectors.forEach((v, i) => flat.set(v, i * dimensions));
          const file = path.join(scratch, 'segment.parquet');
          await writeVectorsFile(file, kept, flat, dimensions, plan.embed.vectorPrecision ?? 'float32');
          const key = embeddingSegmentKey(input.index, segments.length);
          const info = await out.putFile(key, file);
          segments.push({ ...info, firstRow: first, rows: slice.length, vectors: kept.length, skipped });
          ctx.heartbeat({ segments: [...segments], documentsDone: first + slice.length } satisfies EmbedShardHeartbeat);
        }
        const record: EmbeddingRecord = {
          shard: shard.key,
          dimensions: loaded.encoder.hiddenSize,
          documents: rows.length,
          vectors: segments.reduce((n, s) => n + s.vectors, 0),
          skipped: sumCounts(segments.map((s) => s.skipped)),
          segments,
          seconds: (Date.now() - started) / 1000,
        };
        await out.putBytes(recordKey, JSON.stringify(record));
        return embedCounters(record, 1);
      } finally {
        await fs.rm(scratch, { recursive: true, force: true });
      }
    },

    /**
     * Builds one shard's vector index from its embedding segments (verified), measures its recall@k against exact
     * search on a seeded sample of its own vectors, and uploads the index file and its row → document map. The
     * build runs in a worker thread: the index libraries block the thread that calls them, and this one heartbeats.
     */
    async buildShardIndex(input: { buildUrl: string; index: number }): Promise<Counters> {
      const ctx = Context.current();
      const out = deps.openStore(input.buildUrl);
      const recordKey = indexRecordKey(input.index);
      if (await out.stat(recordKey)) return indexCounters(await readJson<ShardIndexRecord>(out, recordKey));
      const plan = await planOf(input.buildUrl);
      const embedded = await readJson<EmbeddingRecord>(out, embeddingRecordKey(input.index));
      const started = Date.now();
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-index-'));
      const beat = setInterval(() => ctx.heartbeat({ phase: 'building' }), 1000);
      try {
        const docIds: string[] = [];
        const shardRows: number[] = [];
        const domains: string[] = [];
        const parts: Float32Array[] = [];
        let dimensions = 0;
        for (const segment of embedded.segments) {
          const local = path.join(scratch, 'segment.parquet');
          await downloadVerified(out, segment, local);
          const read = await readVectorsFile(local);
          docIds.push(...read.docIds);
          shardRows.push(...Array.from(read.shardRows, Number));
          domains.push(...read.domains);
          if (read.docIds.length > 0) {
            parts.push(read.vectors);
            dimensions = read.dimensions;
          }
        }
        const record: ShardIndexRecord = { shard: embedded.shard, vectors: docIds.length, seconds: 0 };
        if (docIds.length > 0) {
          const vectors = concat(parts);
          const file = path.join(scratch, `index.${plan.index.kind}`);
          const queries = sampleRows(docIds.length, plan.recall.queries, input.index);
          const queryVectors = new Float32Array(queries.length * dimensions);
          queries.forEach((row, i) =>
            queryVectors.set(vectors.subarray(row * dimensions, (row + 1) * dimensions), i * dimensions),
          );
          const k = Math.min(plan.recall.k, docIds.length);
          const approx = await buildIndexInThread(plan.index, vectors, dimensions, file, queryVectors, k);
          const exact = exactSearch(vectors, dimensions, queryVectors, k, plan.index.metric);
          record.recall = recallAtK(approx, exact, k);
          record.index = await out.putFile(`index/${shardName(input.index)}.${plan.index.kind}`, file);
          record.ids = await out.putBytes(
            `index/${shardName(input.index)}.ids.json`,
            JSON.stringify({ docIds, shardRows, domains } satisfies ShardIds),
          );
        }
        record.seconds = (Date.now() - started) / 1000;
        await out.putBytes(recordKey, JSON.stringify(record));
        return indexCounters(record);
      } finally {
        clearInterval(beat);
        await fs.rm(scratch, { recursive: true, force: true });
      }
    },

    /**
     * Re-reads one shard's objects (embedding segments, index file, id map) and checks their SHA-256 against its
     * records. A damaged object is deleted with the records that depend on it, so that the build's next run
     * redoes that shard and nothing else.
     */
    async verifyShard(input: { buildUrl: string; index: number }): Promise<Counters> {
      const ctx = Context.current();
      const out = deps.openStore(input.buildUrl);
      const embeddingKey = embeddingRecordKey(input.index);
      const indexKey = indexRecordKey(input.index);
      const intact = async (object: ObjectInfo | undefined) => {
        if (!object) return true;
        ctx.heartbeat(object.key);
        const hash = createHash('sha256');
        let size = 0;
        try {
          for await (const chunk of await out.openRead(object.key)) {
            hash.update(chunk as Buffer);
            size += (chunk as Buffer).length;
          }
        } catch {
          return false; // missing
        }
        return size === object.size && hash.digest('hex') === object.sha256;
      };
      let damaged: string[] = [];
      if (await out.stat(embeddingKey)) {
        const embedded = await readJson<EmbeddingRecord>(out, embeddingKey);
        for (const segment of embedded.segments) if (!(await intact(segment))) damaged.push(segment.key);
        if (damaged.length > 0) damaged.push(embeddingKey, indexKey); // the index was built from those vectors
      }
      if (damaged.length === 0 && (await out.stat(indexKey))) {
        const indexed = await readJson<ShardIndexRecord>(out, indexKey);
        for (const object of [indexed.index, indexed.ids]) if (!(await intact(object))) damaged.push(object!.key);
        if (damaged.length > 0) damaged.push(indexKey);
      }
      damaged = [...new Set(damaged)];
      for (const key of damaged) await out.delete(key);
      if (damaged.length > 0) ctx.log.warn('damaged shard objects deleted; the build redoes them', { damaged });
      return { shards: 1, ...(damaged.length > 0 ? { damaged_shards: 1 } : {}) };
    },

    /** Withdraws a build's manifest (after a verification found damage), so that the build runs again. */
    async withdrawIndexManifest(input: { buildUrl: string }): Promise<void> {
      await deps.openStore(input.buildUrl).delete(MANIFEST_FILE);
    },

    /** Checks every shard's records and objects, then writes the manifest last. Idempotent. */
    async writeIndexManifest(input: { buildUrl: string }): Promise<Omit<IndexBuildSummary, 'promoted'>> {
      const out = deps.openStore(input.buildUrl);
      const manifestUrl = joinUrl(input.buildUrl, MANIFEST_FILE);
      const existing = await readManifest<IndexManifestBody>(out, MANIFEST_FILE, INDEX_MANIFEST_KIND);
      if (existing) return { ...existing.body.summary, manifestUrl };
      const plan = await planOf(input.buildUrl);
      const objects: ObjectInfo[] = [];
      const shards: IndexManifestBody['shards'] = [];
      const skipped: Record<string, number>[] = [];
      const recalls: number[] = [];
      let dimensions = 0;
      let embedSeconds = 0;
      let indexSeconds = 0;
      for (let i = 0; i < plan.shards.length; i++) {
        Context.current().heartbeat(i);
        const embedded = await readJson<EmbeddingRecord>(out, embeddingRecordKey(i));
        const indexed = await readJson<ShardIndexRecord>(out, indexRecordKey(i));
        for (const object of [...embedded.segments, indexed.index, indexed.ids]) {
          if (!object) continue;
          if ((await out.stat(object.key))?.size !== object.size) {
            throw new Error(`${joinUrl(input.buildUrl, object.key)} is missing or has the wrong size`);
          }
          objects.push({ key: object.key, size: object.size, sha256: object.sha256 });
        }
        if (indexed.recall !== undefined) recalls.push(indexed.recall);
        dimensions = embedded.dimensions;
        skipped.push(embedded.skipped);
        embedSeconds += embedded.seconds;
        indexSeconds += indexed.seconds;
        shards.push({
          shard: embedded.shard,
          documents: embedded.documents,
          vectors: indexed.vectors,
          ...(indexed.index ? { index: indexed.index.key } : {}),
          ...(indexed.ids ? { ids: indexed.ids.key } : {}),
          ...(indexed.recall !== undefined ? { recall: indexed.recall } : {}),
          seconds: { embed: embedded.seconds, index: indexed.seconds },
        });
      }
      const summary: IndexManifestBody['summary'] = {
        buildId: plan.buildId,
        shards: plan.shards.length,
        documents: shards.reduce((n, s) => n + s.documents, 0),
        vectors: shards.reduce((n, s) => n + s.vectors, 0),
        skipped: sumCounts(skipped),
        recall: {
          k: plan.recall.k,
          min: recalls.length ? Math.min(...recalls) : 1,
          mean: recalls.length ? recalls.reduce((a, b) => a + b, 0) / recalls.length : 1,
        },
        seconds: { embed: embedSeconds, index: indexSeconds },
      };
      const body: IndexManifestBody = {
        buildId: plan.buildId,
        format: INDEX_FORMAT,
        corpus: plan.corpus,
        encoder: plan.encoder,
        embed: plan.embed,
        index: plan.index,
        dimensions,
        summary,
        shards,
      };
      await writeManifest(out, MANIFEST_FILE, INDEX_MANIFEST_KIND, objects, body);
      return { ...summary, manifestUrl };
    },

    /** Points `<outUrl>/current.json` at a finished build: one object written whole, so readers see old or new. */
    async promoteIndexBuild(input: { outUrl: string; buildId: string }): Promise<void> {
      await promoteBuild(deps.openStore(input.outUrl), input.buildId);
    },
  };
}

export type IndexBuildActivities = ReturnType<typeof createIndexBuildActivities>;

function embedCounters(record: EmbeddingRecord, embeddedNow: number): Counters {
  const counters: Counters = {
    shards: 1,
    documents: record.documents,
    vectors: record.vectors,
    embedded_now: embeddedNow,
  };
  for (const [reason, n] of Object.entries(record.skipped)) counters[`skipped_${reason}`] = n;
  return counters;
}

function indexCounters(record: ShardIndexRecord): Counters {
  return { shards: 1, vectors: record.vectors, ...(record.vectors === 0 ? { empty_shards: 1 } : {}) };
}

function sumCounts(counts: Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of counts) for (const [k, n] of Object.entries(c)) sum[k] = (sum[k] ?? 0) + n;
  return sum;
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** `count` distinct rows of [0, n), the same for the same shard every time (a seeded shuffle's prefix). */
function sampleRows(n: number, count: number, seed: number): number[] {
  const rows = Array.from({ length: n }, (_, i) => i);
  let state = (seed * 2654435761 + 1) >>> 0;
  const take = Math.min(count, n);
  for (let i = 0; i < take; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = i + (state % (n - i));
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  return rows.slice(0, take).sort((a, b) => a - b);
}

export async function readJson<T>(store: ArtifactStore, key: string): Promise<T> {
  return JSON.parse((await store.getBytes(key)).toString('utf8')) as T;
}

export const joinUrl = (base: string, key: string) =>
  key === '' ? base.replace(/\/+$/, '') : `${base.replace(/\/+$/, '')}/${key.replace(/^\/+/, '')}`;
