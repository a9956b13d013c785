import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { type LoadedEncoder, createIndexBuildActivities } from '../../../activities/index-build';
import { INGEST_MANIFEST_KIND } from '../../../activities/ingest';
import { indexBuildInput } from '../../../cli/index-command';
import { modelDigest } from '../../../core/checkpoints/from-store';
import { loadConfig } from '../../../core/config';
import { type DocumentRow, writeDocumentShard } from '../../../core/corpus/document-shards';
import { type EmbeddingRecord, INDEX_MANIFEST_KIND, type IndexManifestBody } from '../../../core/index/build-layout';
import { fromFloat16Bits, toFloat16Bits } from '../../../core/index/float16';
import { readVectorsFile } from '../../../core/index/vectors-file';
import { loadEncoder } from '../../../core/models/registry';
import type { ArtifactStore } from '../../../core/store/artifact-store';
import { readManifest, writeManifest } from '../../../core/store/manifest';
import { openStore } from '../../../core/store/open-store';
import type { EmbedShardHeartbeat, IndexBuildInput, IndexBuildRef } from '../../../workflows/index-types';

const TINY_BERT = path.resolve(__dirname, '..', '..', 'fixtures', 'models', 'tiny-bert');

/**
 * The embedding activity's resume, step by step: a retry given the heartbeat of an attempt that committed some
 * segments embeds and uploads only the rest, and the files equal an undisturbed run's.
 */
describe('embedShard', () => {
  let root: string;
  let encoder: LoadedEncoder;
  const rows: DocumentRow[] = Array.from({ length: 50 }, (_, i) => ({
    doc_id: `doc-${String(i).padStart(3, '0')}`,
    domain: i % 2 ? 'Github' : 'Pile-CC',
    source_file: 'a.jsonl',
    line: i + 1,
    byte_length: 0,
    // Row 7 has no token of its own for the encoder: counted, not embedded.
    text: i === 7 ? ' ' : `document ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 5))}`,
  }));

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-embed-test-'));
    const { model, tokenizer } = await loadEncoder(TINY_BERT, { log: () => undefined });
    encoder = { encoder: model, tokenizer, digest: (await modelDigest(TINY_BERT)).version };
    const local = path.join(root, 'shard.parquet');
    await writeDocumentShard(local, rows);
    const corpus = openStore(`file://${root}/corpus/v1`, {} as never);
    const shard = await corpus.putFile('shards/00000-00000.parquet', local);
    // A second shard none of whose documents has a token of its own: it must end as an empty shard, not fail.
    await writeDocumentShard(local, [
      { ...rows[7]!, doc_id: 'blank-1' },
      { ...rows[7]!, doc_id: 'blank-2' },
    ]);
    const blank = await corpus.putFile('shards/00000-00001.parquet', local);
    await writeManifest(corpus, 'manifest.json', INGEST_MANIFEST_KIND, [shard, blank], {
      version: 'v1',
      summary: { documents: rows.length + 2 },
      files: [
        {
          shards: [
            { ...shard, rows: rows.length },
            { ...blank, rows: 2 },
          ],
        },
      ],
    });
  });
  afterAll(async () => fs.rm(root, { recursive: true, force: true }));

  /** Activities over a file:// store that records every upload, with an encoder that counts what it embeds. */
  function activities() {
    const uploads: string[] = [];
    let embedded = 0;
    const counting: LoadedEncoder = {
      ...encoder,
      // The real encoder (its getters included), with a forward that counts the texts it embeds.
      encoder: Object.assign(Object.create(encoder.encoder) as LoadedEncoder['encoder'], {
        forward: (
          ids: Parameters<LoadedEncoder['encoder']['forward']>[0],
          mask: Parameters<LoadedEncoder['encoder']['forward']>[1],
        ) => {
          embedded += ids.shape[0];
          return encoder.encoder.forward(ids, mask);
        },
      }),
    };
    const acts = createIndexBuildActivities({
      openStore: (url) => {
        const store = openStore(url, {} as never);
        const putFile: ArtifactStore['putFile'] = (key, file) => {
          uploads.push(key);
          return store.putFile(key, file);
        };
        return Object.assign(Object.create(store) as ArtifactStore, { putFile });
      },
      encoderDigest: () => Promise.resolve(encoder.digest),
      loadEncoder: () => Promise.resolve(counting),
    });
    return { acts, uploads, embedded: () => embedded };
  }

  const input = (out: string): IndexBuildInput => ({
    corpusManifestUrl: `file://${root}/corpus/v1/manifest.json`,
    encoder: TINY_BERT,
    embed: { maxLength: 32, normalize: true, batchSize: 8, segmentRows: 16 },
    index: { kind: 'flat', metric: 'l2sq' },
    recall: { queries: 10, k: 5 },
    outUrl: `file://${root}/${out}`,
    promote: false,
    concurrency: { embed: 1, index: 1 },
    heartbeatTimeoutSeconds: 60,
    taskQueuePrefix: 'unused',
  });

  it('resumes after the committed segments: nothing committed is embedded or uploaded again', async () => {
    // An undisturbed run, its heartbeats recorded.
    const first = activities();
    const plan: IndexBuildRef = await new MockActivityEnvironment().run(first.acts.planIndexBuild, input('whole'));
    const beats: EmbedShardHeartbeat[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: EmbedShardHeartbeat) => beats.push(structuredClone(d)));
    const whole = await env.run(first.acts.embedShard, { buildUrl: plan.buildUrl, index: 0 });
    expect(whole).toMatchObject({ documents: 50, vectors: 49, skipped_empty_tokens: 1 });
    expect(first.embedded()).toBe(49);
    expect(first.uploads).toEqual([0, 1, 2, 3].map((s) => `embeddings/00000/0000${s}.parquet`));

    // A second build of the same plan in another folder, retried with the heartbeat of an attempt that had
    // committed two segments (32 rows) when its worker died.
    const second = activities();
    const plan2: IndexBuildRef = await new MockActivityEnvironment().run(second.acts.planIndexBuild, input('resumed'));
    const checkpoint = beats.find((b) => b.segments.length === 2)!;
    const wholeStore = openStore(plan.buildUrl, {} as never);
    const resumedStore = openStore(plan2.buildUrl, {} as never);
    for (const segment of checkpoint.segments) {
      await resumedStore.putBytes(segment.key, await wholeStore.getBytes(segment.key));
    }
    const retry = new MockActivityEnvironment({ heartbeatDetails: checkpoint, attempt: 2 });
    await retry.run(second.acts.embedShard, { buildUrl: plan2.buildUrl, index: 0 });
    expect(second.uploads).toEqual(['embeddings/00000/00002.parquet', 'embeddings/00000/00003.parquet']);
    expect(second.embedded()).toBe(50 - 32); // rows 32..49, none empty

    // Same segments, byte for byte, and the same record apart from the time it took.
    const record = async (store: ArtifactStore) => {
      const { seconds: _s, ...rest } = JSON.parse(
        (await store.getBytes('embeddings/00000.json')).toString(),
      ) as EmbeddingRecord;
      return rest;
    };
    expect(await record(resumedStore)).toEqual(await record(wholeStore));
    for (const segment of (await record(wholeStore)).segments) {
      expect((await resumedStore.getBytes(segment.key)).equals(await wholeStore.getBytes(segment.key))).toBe(true);
    }

    // A finished shard is not embedded again.
    const again = activities();
    await new MockActivityEnvironment().run(again.acts.embedShard, { buildUrl: plan.buildUrl, index: 0 });
    expect(again.embedded()).toBe(0);
    expect(again.uploads).toEqual([]);
  });

  it('ends a shard whose every document was skipped as an empty shard in the manifest, counted', async () => {
    const { acts } = activities();
    const plan: IndexBuildRef = await new MockActivityEnvironment().run(acts.planIndexBuild, input('blank'));
    expect(plan.shards).toBe(2);
    const env = new MockActivityEnvironment();
    expect(await env.run(acts.embedShard, { buildUrl: plan.buildUrl, index: 1 })).toMatchObject({
      documents: 2,
      vectors: 0,
      skipped_empty_tokens: 2,
    });
    expect(await env.run(acts.buildShardIndex, { buildUrl: plan.buildUrl, index: 1 })).toEqual({
      shards: 1,
      vectors: 0,
      empty_shards: 1,
    });
    await env.run(acts.embedShard, { buildUrl: plan.buildUrl, index: 0 });
    await env.run(acts.buildShardIndex, { buildUrl: plan.buildUrl, index: 0 });
    const summary = await env.run(acts.writeIndexManifest, { buildUrl: plan.buildUrl });
    expect(summary).toMatchObject({ shards: 2, documents: 52, vectors: 49, skipped: { empty_tokens: 3 } });
  });

  it('derives the build id from the corpus, the encoder and every setting', async () => {
    const { acts } = activities();
    const plan = (over: Partial<IndexBuildInput>): Promise<IndexBuildRef> =>
      new MockActivityEnvironment().run(acts.planIndexBuild, { ...input('ids'), ...over });
    const base = await plan({});
    expect((await plan({})).buildId).toBe(base.buildId);
    expect((await plan({ index: { kind: 'usearch', metric: 'l2sq' } })).buildId).not.toBe(base.buildId);
    expect((await plan({ embed: { ...input('ids').embed, maxLength: 64 } })).buildId).not.toBe(base.buildId);
    const half = { ...input('ids').embed, vectorPrecision: 'float16' as const };
    expect((await plan({ embed: half })).buildId).not.toBe(base.buildId);
    // The CLI names the precision only when it is not the default: a float32 build keeps the id it had before.
    const embedOf = (overrides: string[]) =>
      indexBuildInput(loadConfig({ env: {}, overrides }), { corpus: 'c', promote: false }).embed;
    expect(embedOf([])).not.toHaveProperty('vectorPrecision');
    expect(embedOf(['index.vectorPrecision=float32'])).not.toHaveProperty('vectorPrecision');
    expect(embedOf(['index.vectorPrecision=float16'])).toHaveProperty('vectorPrecision', 'float16');
    expect((await plan({ buildId: 'mine' })).buildId).toBe('mine');
  });

  it('at float16, stores the nearest halves of the float32 vectors and builds the index from them', async () => {
    const { acts } = activities();
    const env = new MockActivityEnvironment();
    const full: IndexBuildRef = await env.run(acts.planIndexBuild, input('float32'));
    const half: IndexBuildRef = await env.run(acts.planIndexBuild, {
      ...input('float16'),
      embed: { ...input('float16').embed, vectorPrecision: 'float16' as const },
    });
    const firstSegment = async (buildUrl: string) => {
      await env.run(acts.embedShard, { buildUrl, index: 0 });
      const local = path.join(root, `segment-${path.basename(buildUrl)}.parquet`);
      await fs.writeFile(local, await openStore(buildUrl, {} as never).getBytes('embeddings/00000/00000.parquet'));
      return readVectorsFile(local);
    };
    const [f32, f16] = [await firstSegment(full.buildUrl), await firstSegment(half.buildUrl)];
    expect([f32.precision, f16.precision]).toEqual(['float32', 'float16']);
    expect(f16.docIds).toEqual(f32.docIds);
    expect(f16.vectors).toEqual(f32.vectors.map((x) => fromFloat16Bits(toFloat16Bits(x))));

    await env.run(acts.embedShard, { buildUrl: half.buildUrl, index: 1 });
    for (const index of [0, 1]) await env.run(acts.buildShardIndex, { buildUrl: half.buildUrl, index });
    const summary = await env.run(acts.writeIndexManifest, { buildUrl: half.buildUrl });
    expect(summary).toMatchObject({ vectors: 49, recall: { min: 1 } });
    const manifest = await readManifest<IndexManifestBody>(
      openStore(half.buildUrl, {} as never),
      'manifest.json',
      INDEX_MANIFEST_KIND,
    );
    expect(manifest?.body.embed.vectorPrecision).toBe('float16');
  });

  it('refuses an encoder whose files differ from the build plan, naming both digests', async () => {
    const { acts } = activities();
    const plan: IndexBuildRef = await new MockActivityEnvironment().run(acts.planIndexBuild, input('mismatch'));
    const other = createIndexBuildActivities({
      openStore: (url) => openStore(url, {} as never),
      encoderDigest: () => Promise.resolve('0000000000000000'),
      loadEncoder: () => Promise.resolve({ ...encoder, digest: 'ffffffffffffffff' }),
    });
    await expect(
      // The failure is expected: keep the mock's log of it out of the test output.
      new MockActivityEnvironment({}, { logger: new DefaultLogger('ERROR') }).run(other.embedShard, {
        buildUrl: plan.buildUrl,
        index: 0,
      }),
    ).rejects.toThrow(/has digest ffffffffffffffff, but build .* was planned with [0-9a-f]{16}/);
  });
});
