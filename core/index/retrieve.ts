import { promiseCache } from '../promise-cache';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { readDocumentRows } from '../corpus/document-shards';
import type { ArtifactStore, ObjectInfo } from '../store/artifact-store';
import { MANIFEST_FILE, type Manifest, downloadVerified, readManifest } from '../store/manifest';
import { CURRENT_POINTER, INDEX_MANIFEST_KIND, type IndexManifestBody, type ShardIds } from './build-layout';
import { IndexCache, type ShardSearchJob } from './search-thread';
import type { SearchResult } from './vector-index';

export interface Neighbor {
  rank: number;
  /** In the build's metric (squared L2 by default, as faiss's IndexFlatL2 and the reference's 4.0 threshold). */
  distance: number;
  docId: string;
  /** The corpus shard (its key in the corpus version) and the document's row in it. */
  corpusShard: string;
  shardRow: number;
  /** The neighbor's domain (`meta.pile_set_name`); empty from a build that did not record it. */
  domain: string;
}

export interface NeighborText extends Neighbor {
  text: string;
}

/** Which build `name` means under an index root: a build id, or `current` (the promoted one). */
export async function resolveBuildId(root: ArtifactStore, name: string): Promise<string> {
  if (name !== 'current') return name;
  if (!(await root.stat(CURRENT_POINTER))) {
    throw new Error(`no build is current under ${root.url}: promote one ('tttnn index promote <build id>')`);
  }
  return (JSON.parse((await root.getBytes(CURRENT_POINTER)).toString('utf8')) as { buildId: string }).buildId;
}

export async function readBuildManifest(root: ArtifactStore, buildId: string): Promise<Manifest<IndexManifestBody>> {
  const manifest = await readManifest<IndexManifestBody>(
    root,
    `builds/${buildId}/${MANIFEST_FILE}`,
    INDEX_MANIFEST_KIND,
  );
  if (!manifest) {
    throw new Error(`no finished index build ${buildId} under ${root.url} ('tttnn index list' shows the builds)`);
  }
  return manifest;
}

/** One shard's index as a searcher holds it: the local file and its row → document map. */
export interface LocalShard {
  corpusShard: string;
  indexFile: string;
  ids: ShardIds;
}

/**
 * The local copies of some shards of a build (all by default): each index file and id map is downloaded once into
 * `<cacheDir>/index-cache/<build id>/` and verified against the manifest. Shards without vectors are left out.
 */
export async function localShards(
  root: ArtifactStore,
  manifest: Manifest<IndexManifestBody>,
  cacheDir: string,
  which: (shard: number) => boolean = () => true,
): Promise<LocalShard[]> {
  const { buildId } = manifest.body;
  const objects = new Map(manifest.objects.map((o) => [o.key, o]));
  const entry = (key: string): ObjectInfo => {
    const object = objects.get(key);
    if (!object) throw new Error(`the manifest of build ${buildId} under ${root.url} does not list ${key}`);
    return { ...object, key: `builds/${buildId}/${key}` };
  };
  const dir = path.join(cacheDir, 'index-cache');
  const shards: LocalShard[] = [];
  for (const [i, shard] of manifest.body.shards.entries()) {
    if (!which(i) || !shard.index || !shard.ids) continue;
    const indexFile = await cachedObject(root, entry(shard.index), dir);
    const ids = JSON.parse(await fs.readFile(await cachedObject(root, entry(shard.ids), dir), 'utf8')) as ShardIds;
    shards.push({ corpusShard: shard.shard, indexFile, ids });
  }
  return shards;
}

/** The search job over local shards for n × dimensions query floats. */
export function searchJob(
  manifest: Manifest<IndexManifestBody>,
  shards: readonly LocalShard[],
  queries: Float32Array,
  k: number,
): ShardSearchJob {
  const { dimensions, index } = manifest.body;
  if (queries.length % dimensions !== 0) {
    throw new Error(`queries have ${queries.length} floats, not a multiple of the build's ${dimensions} dimensions`);
  }
  return { params: index, dimensions, files: shards.map((s) => s.indexFile), queries, k };
}

/**
 * Per query, the `k` nearest over the shards' answers (`results[i]` from `shards[i]`), nearest first, ties broken
 * by document id so that the order is the same on every machine; farther than `maxDistance` dropped.
 */
export function mergeTopK(
  shards: readonly LocalShard[],
  results: readonly SearchResult[],
  queries: number,
  k: number,
  maxDistance = Infinity,
): Neighbor[][] {
  const candidates: Neighbor[][] = Array.from({ length: queries }, () => []);
  results.forEach((result, s) => {
    const shard = shards[s]!;
    const perQuery = result.rows.length / queries;
    for (let q = 0; q < queries; q++) {
      for (let j = 0; j < perQuery; j++) {
        const row = result.rows[q * perQuery + j]!;
        const distance = result.distances[q * perQuery + j]!;
        if (row < 0 || distance > maxDistance) continue;
        candidates[q]!.push({
          rank: 0,
          distance,
          docId: shard.ids.docIds[row]!,
          corpusShard: shard.corpusShard,
          shardRow: shard.ids.shardRows[row]!,
          domain: shard.ids.domains?.[row] ?? '',
        });
      }
    }
  });
  return candidates.map((list) => rankNeighbors(list, k));
}

/** Nearest first (distance, then document id), the first k, ranked from 1. */
export function rankNeighbors(list: Neighbor[], k: number): Neighbor[] {
  return list
    .sort((a, b) => a.distance - b.distance || (a.docId < b.docId ? -1 : a.docId > b.docId ? 1 : 0))
    .slice(0, k)
    .map((neighbor, i) => ({ ...neighbor, rank: i + 1 }));
}

/**
 * A finished index build opened for search in this process (the CLI's `tttnn search`): every shard's index is
 * cached locally and opened once. Evaluations retrieve through workers instead (activities/retrieval.ts).
 */
export class IndexBuildReader {
  private readonly indexes = new IndexCache();

  private constructor(
    readonly manifest: Manifest<IndexManifestBody>,
    private readonly shards: LocalShard[],
    private readonly corpus: ArtifactStore,
    private readonly cacheDir: string,
  ) {}

  get buildId(): string {
    return this.manifest.body.buildId;
  }

  static async open(
    root: ArtifactStore,
    build: string,
    cacheDir: string,
    openCorpus: (url: string) => ArtifactStore,
  ): Promise<IndexBuildReader> {
    const manifest = await readBuildManifest(root, await resolveBuildId(root, build));
    const shards = await localShards(root, manifest, cacheDir);
    return new IndexBuildReader(manifest, shards, openCorpus(manifest.body.corpus.storeUrl), cacheDir);
  }

  /** Top-k neighbors of each query (n × dimensions floats), nearest first; farther than `maxDistance` dropped. */
  async search(queries: Float32Array, k: number, maxDistance = Infinity): Promise<Neighbor[][]> {
    const job = searchJob(this.manifest, this.shards, queries, k);
    const results = await this.indexes.search(job);
    return mergeTopK(this.shards, results, queries.length / this.manifest.body.dimensions, k, maxDistance);
  }

  /** The neighbors' texts and domains, read by (corpus shard, row): only the row groups that hold them. */
  texts(neighbors: readonly Neighbor[]): Promise<NeighborText[]> {
    return neighborTexts(this.corpus, neighbors, this.cacheDir);
  }

  dispose(): void {
    this.indexes.dispose();
  }
}

/** Texts and domains of neighbors from the corpus version's shards, cached locally, reading only needed row groups. */
export async function neighborTexts(
  corpus: ArtifactStore,
  neighbors: readonly Neighbor[],
  cacheDir: string,
): Promise<NeighborText[]> {
  const corpusManifest = await corpusManifestOf(corpus);
  const objects = new Map(corpusManifest.objects.map((o) => [o.key, o]));
  const byShard = new Map<string, number[]>();
  for (const n of neighbors) byShard.set(n.corpusShard, [...(byShard.get(n.corpusShard) ?? []), n.shardRow]);
  const rows = new Map<string, Map<number, { domain: string; text: string }>>();
  for (const [shard, positions] of byShard) {
    const object = objects.get(shard);
    if (!object) throw new Error(`corpus ${corpus.url} does not list shard ${shard}`);
    const local = await cachedObject(corpus, object, corpusCacheDir(cacheDir, corpus.url));
    rows.set(shard, await readDocumentRows(local, positions));
  }
  return neighbors.map((n) => {
    const row = rows.get(n.corpusShard)?.get(n.shardRow);
    if (!row) throw new Error(`corpus shard ${n.corpusShard} has no row ${n.shardRow}`);
    return { ...n, domain: row.domain, text: row.text };
  });
}

/** Where a corpus version's shards are cached on this machine: one folder per store URL. */
export function corpusCacheDir(cacheDir: string, storeUrl: string): string {
  return path.join(cacheDir, 'corpus-cache', storeUrl.replace(/[^\w.-]+/g, '_'));
}

/** Corpus versions never change once their manifest is written: each is read once per process. */
const corpusManifests = promiseCache<Manifest<unknown>>();
function corpusManifestOf(corpus: ArtifactStore): Promise<Manifest<unknown>> {
  return corpusManifests(corpus.url, async () => {
    const found = await readManifest<unknown>(corpus, MANIFEST_FILE, 'tttnn.ingest');
    if (!found) throw new Error(`the corpus ${corpus.url} has no manifest`);
    return found;
  });
}

/** A store object in a local cache folder, downloaded and verified once (a marker file records the check). */
export async function cachedObject(store: ArtifactStore, object: ObjectInfo, dir: string): Promise<string> {
  const local = path.join(dir, object.key);
  const marker = `${local}.${object.sha256.slice(0, 16)}.verified`;
  if (existsSync(marker)) return local;
  await downloadVerified(store, object, local);
  await fs.writeFile(marker, '');
  return local;
}
