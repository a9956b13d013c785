import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { readDocumentRows } from '../corpus/document-shards';
import type { ArtifactStore, ObjectInfo } from '../store/artifact-store';
import { MANIFEST_FILE, type Manifest, downloadVerified, readManifest } from '../store/manifest';
import { CURRENT_POINTER, INDEX_MANIFEST_KIND, type IndexManifestBody, type ShardIds } from './build-layout';
import { type VectorIndex, openIndex } from './vector-index';

export interface Neighbor {
  rank: number;
  /** In the build's metric (squared L2 by default, as faiss's IndexFlatL2 and the reference's 4.0 threshold). */
  distance: number;
  docId: string;
  /** The corpus shard (its key in the corpus version) and the document's row in it. */
  corpusShard: string;
  shardRow: number;
}

export interface NeighborText extends Neighbor {
  domain: string;
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

/**
 * A finished index build, opened for search: every shard's index is downloaded once into a local cache (verified
 * against the manifest) and opened memory-mapped where the library can. Search is batched (many queries per call)
 * and merges the shards' top-k by distance, then document id, so that the order is the same on every machine.
 */
export class IndexBuildReader {
  private constructor(
    readonly manifest: Manifest<IndexManifestBody>,
    private readonly shards: { index?: VectorIndex; ids?: ShardIds; corpusShard: string }[],
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
    const buildId = await resolveBuildId(root, build);
    const manifestKey = `builds/${buildId}/${MANIFEST_FILE}`;
    const manifest = await readManifest<IndexManifestBody>(root, manifestKey, INDEX_MANIFEST_KIND);
    if (!manifest) {
      throw new Error(`no finished index build ${buildId} under ${root.url} ('tttnn index list' shows the builds)`);
    }
    const objects = new Map(manifest.objects.map((o) => [o.key, o]));
    const dir = path.join(cacheDir, 'index-cache', buildId);
    const entry = (key: string): ObjectInfo => {
      const object = objects.get(key);
      if (!object) throw new Error(`${root.url}${manifestKey} does not list ${key}`);
      return { ...object, key: `builds/${buildId}/${key}` };
    };
    const shards = [];
    for (const shard of manifest.body.shards) {
      if (!shard.index || !shard.ids) {
        shards.push({ corpusShard: shard.shard });
        continue;
      }
      const indexFile = await cached(root, entry(shard.index), dir);
      const idsFile = await cached(root, entry(shard.ids), dir);
      shards.push({
        corpusShard: shard.shard,
        index: await openIndex(manifest.body.index, indexFile, manifest.body.dimensions, { view: true }),
        ids: JSON.parse(await fs.readFile(idsFile, 'utf8')) as ShardIds,
      });
    }
    return new IndexBuildReader(manifest, shards, openCorpus(manifest.body.corpus.storeUrl), cacheDir);
  }

  /** Top-k neighbors of each query (n × dimensions floats), nearest first; farther than `maxDistance` dropped. */
  search(queries: Float32Array, k: number, maxDistance = Infinity): Neighbor[][] {
    const dims = this.manifest.body.dimensions;
    if (queries.length % dims !== 0) {
      throw new Error(`queries have ${queries.length} floats, not a multiple of the build's ${dims} dimensions`);
    }
    const n = queries.length / dims;
    const merged: Neighbor[][] = Array.from({ length: n }, () => []);
    for (const shard of this.shards) {
      if (!shard.index || !shard.ids) continue;
      const result = shard.index.search(queries, Math.min(k, shard.index.size));
      const kk = result.rows.length / n;
      for (let q = 0; q < n; q++) {
        for (let j = 0; j < kk; j++) {
          const row = result.rows[q * kk + j]!;
          const distance = result.distances[q * kk + j]!;
          if (row < 0 || distance > maxDistance) continue;
          merged[q]!.push({
            rank: 0,
            distance,
            docId: shard.ids.docIds[row]!,
            corpusShard: shard.corpusShard,
            shardRow: shard.ids.shardRows[row]!,
          });
        }
      }
    }
    return merged.map((list) =>
      list
        .sort((a, b) => a.distance - b.distance || (a.docId < b.docId ? -1 : a.docId > b.docId ? 1 : 0))
        .slice(0, k)
        .map((neighbor, i) => ({ ...neighbor, rank: i + 1 })),
    );
  }

  /** The neighbors' texts and domains, read by (corpus shard, row): only the row groups that hold them. */
  async texts(neighbors: readonly Neighbor[]): Promise<NeighborText[]> {
    const corpusManifest = await readManifest<unknown>(this.corpus, MANIFEST_FILE, 'tttnn.ingest');
    if (!corpusManifest) throw new Error(`the corpus ${this.corpus.url} of this build has no manifest any more`);
    const objects = new Map(corpusManifest.objects.map((o) => [o.key, o]));
    const byShard = new Map<string, Neighbor[]>();
    for (const n of neighbors) byShard.set(n.corpusShard, [...(byShard.get(n.corpusShard) ?? []), n]);
    const rows = new Map<string, Map<number, { domain: string; text: string }>>();
    for (const [shard, list] of byShard) {
      const object = objects.get(shard);
      if (!object) throw new Error(`corpus ${this.corpus.url} does not list shard ${shard}`);
      const local = await cached(
        this.corpus,
        object,
        path.join(this.cacheDir, 'corpus-cache', sanitize(this.corpus.url)),
      );
      rows.set(
        shard,
        await readDocumentRows(
          local,
          list.map((n) => n.shardRow),
        ),
      );
    }
    return neighbors.map((n) => {
      const row = rows.get(n.corpusShard)?.get(n.shardRow);
      if (!row) throw new Error(`corpus shard ${n.corpusShard} has no row ${n.shardRow}`);
      return { ...n, domain: row.domain, text: row.text };
    });
  }

  dispose(): void {
    for (const shard of this.shards) shard.index?.dispose();
  }
}

/** A store object in a local cache folder, downloaded and verified once (a marker file records the check). */
async function cached(store: ArtifactStore, object: ObjectInfo, dir: string): Promise<string> {
  const local = path.join(dir, object.key);
  const marker = `${local}.${object.sha256.slice(0, 16)}.verified`;
  if (existsSync(marker)) return local;
  await downloadVerified(store, object, local);
  await fs.writeFile(marker, '');
  return local;
}

const sanitize = (url: string) => url.replace(/[^\w.-]+/g, '_');
