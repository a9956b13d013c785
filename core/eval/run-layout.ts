import { ParquetReader, ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';
import { seededRandom } from '../seeded-random';

/**
 * Where an evaluation run keeps its state, under `<eval root>/runs/<run id>/`:
 *
 *   run.json                 the settings, written once: a second start with other settings is refused
 *   selection.parquet        the test documents (doc_index, doc_id, domain, corpus_shard, shard_row, bytes)
 *   queries.parquet          their embeddings (a vectors file), the retrieval's input
 *   retrieval/               the retrieval workflow's output: neighbors.parquet + manifest.json
 *   random/neighbors.parquet the random-neighbor control's draws, in the same format
 *   sift/neighbors.parquet   the SIFT baseline's picks (rank = pick order; a repeat is a row of its own), from the
 *                            pool the retrieval kept (`retrieval/pool.parquet`), and sift/selection.jsonl (per
 *                            document: where adaptive SIFT stops, the variance left, the seconds it took)
 *   documents/<index>.json   one committed result per document, written once (conditional create)
 *   results/part-<n>.parquet the committed results compacted, PART_SIZE documents per part, + a record each
 *   manifest.json            written last: the parts, counts and settings
 *
 * Everything a document's figures depend on is in the store before its training starts, so a resumed run never
 * re-selects or re-retrieves, and every figure traces to its neighbors.
 */
export const EVAL_RUN_KIND = 'tttnn.evaluation';
export const RUN_FILE = 'run.json';
export const SELECTION_FILE = 'selection.parquet';
export const QUERIES_FILE = 'queries.parquet';
export const RETRIEVAL_DIR = 'retrieval';
export const RANDOM_NEIGHBORS_FILE = 'random/neighbors.parquet';
/** The retrieval's wider list per document that SIFT picks from (only when the run has the SIFT baseline). */
export const SIFT_POOL_FILE = `${RETRIEVAL_DIR}/pool.parquet`;
export const SIFT_NEIGHBORS_FILE = 'sift/neighbors.parquet';
export const SIFT_SELECTION_FILE = 'sift/selection.jsonl';
export const PART_SIZE = 1000;

export const BASELINES = ['random', 'dynamic', 'in-context', 'sift'] as const;
export type Baseline = (typeof BASELINES)[number];

/** What a run computes: fixed when it starts, recorded in run.json, the same for every document. */
export interface EvalSettings {
  runId: string;
  /** The test corpus version: its ingest manifest. */
  testManifestUrl: string;
  /** Which documents: `perDomain` drawn with `seed` from each domain, or explicit ids (in that order). */
  selection: { perDomain: number; seed: number } | { ids: string[] };
  /** Larger test documents are not drawn (explicit ids over it are skipped as `over_size_limit`). */
  maxDocumentBytes: number;
  indexRoot: string;
  /** A build id or `current`, resolved once by the plan (`buildId` in the plan). */
  build: string;
  /** The language model and the encoder: named models, model version URLs or local folders. */
  model: string;
  encoder: string;
  encoderMaxLength: number;
  k: number;
  lr: number;
  maxLength: number;
  maxDistance: number;
  /** Neighbors are cut to their first tokens (0: whole, as the reference trains); small machines need a cut. */
  maxNeighborTokens: number;
  /** `nn`: the nearest first; `random`: uniform draws from the index instead (as a run of its own). */
  neighbors: 'nn' | 'random';
  baselines: Baseline[];
  /**
   * The SIFT baseline's selection (`eval.siftPool`, `siftLambda`, `siftAlpha`): present exactly when `baselines` has
   * `sift`, so that the settings, and the default run id hashed from them, of a run without it are as before.
   */
  sift?: SiftSettings;
  /** Neighbors whose text equals the test document's are left out (they are counted either way). */
  excludeExactCopies: boolean;
  /** Dynamic evaluation: passes over the first half. */
  dynamicIterations: number;
  /** The token the first evaluation window is conditioned on; default the harness's (BOS, else EOS). */
  prefixToken?: number;
  seed: number;
}

export interface SiftSettings {
  /** Nearest neighbors per document SIFT picks from; it picks k of them (repeats allowed). */
  pool: number;
  lambda: number;
  /** Adaptive SIFT's α; 0: no adaptive stop is recorded. */
  alpha: number;
}

export interface EvalPlan {
  runUrl: string;
  buildId: string;
  documents: number;
  parts: number;
  /** What a resumed run need not redo. */
  queriesEmbedded: boolean;
  retrieved: boolean;
  /** The SIFT baseline's picks are in the store (false when the run has no SIFT baseline). */
  siftSelected: boolean;
  finished: boolean;
}

/** `documents/000000042.json`: the committed result of the document at selection index 42. */
export function documentKey(index: number): string {
  return `documents/${String(index).padStart(9, '0')}.json`;
}

/** `checkpoints/000000042.ckpt`: where the document at selection index 42 is in its training (when enabled). */
export function checkpointKey(index: number): string {
  return `checkpoints/${String(index).padStart(9, '0')}.ckpt`;
}

export function partKey(part: number): string {
  return `results/part-${String(part).padStart(5, '0')}.parquet`;
}

export function partRecordKey(part: number): string {
  return `results/part-${String(part).padStart(5, '0')}.json`;
}

/** One test document as the selection records it. */
export interface SelectedDocument {
  docId: string;
  domain: string;
  corpusShard: string;
  shardRow: number;
  bytes: number;
}

/**
 * Per domain (in name order), `perDomain` documents of at most `maxBytes` drawn without replacement with a seeded
 * shuffle (the whole domain when it has fewer). Depends only on the candidates (in corpus order) and the seed.
 */
export function selectPerDomain(
  candidates: readonly SelectedDocument[],
  perDomain: number,
  seed: number,
  maxBytes: number,
): { selected: SelectedDocument[]; overSizeLimit: number } {
  const byDomain = new Map<string, SelectedDocument[]>();
  let overSizeLimit = 0;
  for (const doc of candidates) {
    if (doc.bytes > maxBytes) {
      overSizeLimit += 1;
      continue;
    }
    byDomain.set(doc.domain, [...(byDomain.get(doc.domain) ?? []), doc]);
  }
  const selected: SelectedDocument[] = [];
  for (const domain of [...byDomain.keys()].sort()) {
    const docs = [...byDomain.get(domain)!];
    // Partial Fisher-Yates with one generator per domain: adding a domain does not change another's draw.
    const random = seededRandom(seed ^ hash32(domain));
    const n = Math.min(perDomain, docs.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(random() * (docs.length - i));
      [docs[i], docs[j]] = [docs[j]!, docs[i]!];
    }
    selected.push(...docs.slice(0, n));
  }
  return { selected, overSizeLimit };
}

/** FNV-1a of a string: a stable 32-bit seed component. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** `count` positions drawn uniformly (with replacement) from [0, total), from a generator seeded per document. */
export function randomPositions(total: number, count: number, seed: number, docIndex: number): number[] {
  const random = seededRandom(seed ^ Math.imul(docIndex + 1, 0x9e3779b1));
  return Array.from({ length: total > 0 ? count : 0 }, () => Math.floor(random() * total));
}

const selectionSchema = new ParquetSchema({
  doc_index: { type: 'INT32' },
  doc_id: { type: 'UTF8' },
  domain: { type: 'UTF8' },
  corpus_shard: { type: 'UTF8' },
  shard_row: { type: 'INT32' },
  bytes: { type: 'INT64' },
});

export async function writeSelectionFile(localPath: string, docs: readonly SelectedDocument[]): Promise<void> {
  const writer = await ParquetWriter.openFile(selectionSchema, localPath, { useDataPageV2: false });
  for (const [index, d] of docs.entries()) {
    await writer.appendRow({
      doc_index: index,
      doc_id: d.docId,
      domain: d.domain,
      corpus_shard: d.corpusShard,
      shard_row: d.shardRow,
      bytes: d.bytes,
    });
  }
  await writer.close();
}

export async function readSelectionFile(localPath: string): Promise<SelectedDocument[]> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const docs: SelectedDocument[] = [];
    const cursor = reader.getCursor();
    for (let r = (await cursor.next()) as Record<string, unknown> | null; r; r = (await cursor.next()) as typeof r) {
      docs[Number(r.doc_index)] = {
        docId: String(r.doc_id),
        domain: String(r.domain),
        corpusShard: String(r.corpus_shard),
        shardRow: Number(r.shard_row),
        bytes: Number(r.bytes),
      };
    }
    return docs;
  } finally {
    await reader.close();
  }
}
