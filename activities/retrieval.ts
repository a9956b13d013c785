import { promiseCache } from '../core/promise-cache';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { IndexManifestBody } from '../core/index/build-layout';
import { writeNeighborsFile } from '../core/index/neighbors-file';
import {
  type LocalShard,
  type Neighbor,
  localShards,
  mergeTopK,
  rankNeighbors,
  readBuildManifest,
  resolveBuildId,
  searchJob,
} from '../core/index/retrieve';
import type { SearchThread } from '../core/index/search-thread';
import { readVectorsFile } from '../core/index/vectors-file';
import type { ArtifactStore } from '../core/store/artifact-store';
import { type Manifest, writeManifest } from '../core/store/manifest';
import { splitStoreUrl } from '../core/store/open-store';
import type { Counters } from '../workflows/paged';
import type { RetrievalInput, RetrievalPlan, RetrievalSummary } from '../workflows/retrieve';
import { readJson } from './index-build';

export const NEIGHBORS_MANIFEST_KIND = 'tttnn.neighbors';

export interface RetrievalDeps {
  openStore(url: string): ArtifactStore;
  /** Where index files and corpus shards are cached on this machine. */
  cacheDir: string;
  /** The process's search thread: searches never run on the thread that heartbeats. */
  searchThread: SearchThread;
}

/** What one group's search leaves in `<outUrl>/groups/<g>.json`: per query, that group's top max(k, poolK). */
type GroupCandidates = Neighbor[][];

export function createRetrievalActivities(deps: RetrievalDeps) {
  const manifests = promiseCache<Manifest<IndexManifestBody>>();
  const shardsOf = promiseCache<LocalShard[]>();
  const queryFiles = promiseCache<{ ids: string[]; vectors: Float32Array }>();
  const manifestOf = (root: string, buildId: string) =>
    manifests(`${root}|${buildId}`, () => readBuildManifest(deps.openStore(root), buildId));

  return {
    /** Pins the build (`current` is resolved once, so a promotion during the run does not mix two builds). */
    async planRetrieval(input: RetrievalInput): Promise<RetrievalPlan> {
      const root = deps.openStore(input.indexRoot);
      const buildId = await resolveBuildId(root, input.build).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(err.message, 'MissingBuild');
      });
      const manifest = await readBuildManifest(root, buildId).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(err.message, 'MissingBuild');
      });
      return { buildId, groups: Math.ceil(manifest.body.shards.length / input.shardsPerGroup) };
    },

    /**
     * Answers every query against one shard group: its indexes are downloaded once per worker (verified) and kept
     * open on the search thread; the group's top k per query go to the store. Idempotent.
     */
    async searchShards(input: RetrievalInput & { buildId: string; index: number }): Promise<Counters> {
      const ctx = Context.current();
      const out = deps.openStore(input.outUrl);
      const key = `groups/${String(input.index).padStart(5, '0')}.json`;
      if (await out.stat(key)) return { groups: 1 };
      const beat = setInterval(() => ctx.heartbeat(), 1000);
      try {
        const manifest = await manifestOf(input.indexRoot, input.buildId);
        const first = input.index * input.shardsPerGroup;
        const shards = await shardsOf(`${input.indexRoot}|${input.buildId}|${input.index}`, () =>
          localShards(
            deps.openStore(input.indexRoot),
            manifest,
            deps.cacheDir,
            (s) => s >= first && s < first + input.shardsPerGroup,
          ),
        );
        const queries = await queryFiles(input.queriesUrl, () => readQueries(deps, input.queriesUrl));
        const k = searchK(input);
        const results = await deps.searchThread.search(searchJob(manifest, shards, queries.vectors, k));
        const candidates: GroupCandidates = mergeTopK(shards, results, queries.ids.length, k, input.maxDistance);
        await out.putBytes(key, JSON.stringify(candidates));
        return { groups: 1, shards: shards.length };
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Merges the groups' candidates into each query's global top k, writes the neighbor lists (and, when asked for,
     * the top poolK as the pool) and their manifest.
     */
    async mergeNeighbors(input: RetrievalInput & RetrievalPlan): Promise<RetrievalSummary> {
      const out = deps.openStore(input.outUrl);
      const queries = await queryFiles(input.queriesUrl, () => readQueries(deps, input.queriesUrl));
      const merged: Neighbor[][] = queries.ids.map(() => []);
      for (let g = 0; g < input.groups; g++) {
        Context.current().heartbeat(g);
        const group = await readJson<GroupCandidates>(out, `groups/${String(g).padStart(5, '0')}.json`);
        group.forEach((list, q) => merged[q]!.push(...list));
      }
      const lists = merged.map((list) => rankNeighbors(list, input.k));
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-neighbors-'));
      const outUrl = input.outUrl.replace(/\/+$/, '');
      try {
        const write = async (file: string, written: Neighbor[][]) => {
          await writeNeighborsFile(path.join(scratch, file), queries.ids, written);
          return out.putFile(file, path.join(scratch, file));
        };
        const objects = [await write('neighbors.parquet', lists)];
        if (input.poolK !== undefined) {
          objects.push(
            await write(
              'pool.parquet',
              merged.map((list) => rankNeighbors(list, input.poolK!)),
            ),
          );
        }
        const summary: RetrievalSummary = {
          buildId: input.buildId,
          neighborsUrl: `${outUrl}/neighbors.parquet`,
          ...(input.poolK !== undefined && { poolUrl: `${outUrl}/pool.parquet` }),
          queries: queries.ids.length,
          neighbors: lists.reduce((n, l) => n + l.length, 0),
        };
        await writeManifest(out, 'manifest.json', NEIGHBORS_MANIFEST_KIND, objects, {
          ...summary,
          k: input.k,
          ...(input.poolK !== undefined && { poolK: input.poolK }),
        });
        return summary;
      } finally {
        await fs.rm(scratch, { recursive: true, force: true });
      }
    },
  };
}

export type RetrievalActivities = ReturnType<typeof createRetrievalActivities>;

/** Candidates each group keeps per query: enough for the neighbor lists and for the pool. */
function searchK(input: RetrievalInput): number {
  return Math.max(input.k, input.poolK ?? 0);
}

async function readQueries(deps: RetrievalDeps, url: string): Promise<{ ids: string[]; vectors: Float32Array }> {
  const { root, key } = splitStoreUrl(url);
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-queries-'));
  try {
    const local = path.join(scratch, 'queries.parquet');
    await fs.writeFile(local, await deps.openStore(root).getBytes(key));
    const file = await readVectorsFile(local);
    return { ids: file.docIds, vectors: file.vectors };
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}
