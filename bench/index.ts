import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  buildIndex,
  DEFAULT_HNSW,
  type IndexParams,
  openIndex,
  recallAtK,
  type SearchResult,
  type VectorIndex,
} from '../core/index/vector-index';
import { machineLine, runPythonJson } from './harness';
import { cachedMiniLmVectors } from './minilm-vectors';
import { readSampleTexts } from './sample-texts';
import { clusteredVectors } from './vectors';
import { benchVectorsFile } from './vectors-file';

/**
 * `npm run bench:index`: every index kind on the same vectors, queries and exact ground truth, beside faiss
 * (IndexFlatL2, IndexHNSWFlat) when BENCH_PYTHON has it. Two datasets: seeded clustered 384-d vectors
 * (BENCH_INDEX_N) and MiniLM embeddings of the bundled sample corpus's passages. Per index: build vectors/s,
 * RAM per million vectors (RSS growth over the build, in a child process that holds only the base vectors: the
 * index's memory, the input excluded), file size, open time (load, and memory-mapped view where the library has
 * one), single-query latency p50/p99, batched queries/s, recall@20 against exact search, and how the returned
 * distances agree with exact ones for the same rows (units check). Metric: squared L2 (faiss IndexFlatL2's).
 * Settings: BENCH_INDEX_N (1,000,000), BENCH_INDEX_QUERIES (200: the ground truth's queries, also the single-query
 * count for HNSW kinds; exact kinds time 20), BENCH_INDEX_BATCH (256), BENCH_INDEX_M, BENCH_INDEX_EF_ADD,
 * BENCH_INDEX_EF_SEARCH (a comma list, default 256,128,512: the default efSearch, half and twice it; each value is
 * searched, the index built with the first),
 * BENCH_INDEX_THREADS (all cores; usearch and faiss build and batch-search with them, hnswlib has one),
 * BENCH_INDEX_KINDS (flat,hnswlib,usearch,usearch-f16,faiss: which to run; exact search always runs as the ground truth),
 * BENCH_INDEX_DATASETS (synthetic,minilm), BENCH_INDEX_PARQUET_N (20,000 vectors for the vectors-file line),
 * BENCH_PYTHON (python3, needs faiss-cpu and numpy).
 */
const K = 20;
const N = Number(process.env.BENCH_INDEX_N ?? 1_000_000);
const QUERIES = Number(process.env.BENCH_INDEX_QUERIES ?? 200);
const BATCH = Number(process.env.BENCH_INDEX_BATCH ?? 256);
const M = Number(process.env.BENCH_INDEX_M ?? DEFAULT_HNSW.connectivity);
const EF_ADD = Number(process.env.BENCH_INDEX_EF_ADD ?? DEFAULT_HNSW.expansionAdd);
// The default efSearch first (the index is built with it), then its half and double, for the trade-off.
const EF_SEARCH = (
  process.env.BENCH_INDEX_EF_SEARCH ?? [1, 0.5, 2].map((f) => f * DEFAULT_HNSW.expansionSearch).join(',')
)
  .split(',')
  .map(Number);
const THREADS = Number(process.env.BENCH_INDEX_THREADS ?? os.cpus().length);
const DATASETS = (process.env.BENCH_INDEX_DATASETS ?? 'synthetic,minilm').split(',');
const KINDS = (process.env.BENCH_INDEX_KINDS ?? 'flat,hnswlib,usearch,usearch-f16,faiss').split(',');
const PARQUET_N = Number(process.env.BENCH_INDEX_PARQUET_N ?? 20_000);
const EXACT_SINGLE = 20;
const SYNTHETIC = { dimensions: 384, clusters: 1000, sigma: 0.05, seed: 1, normalize: true };
const PASSAGE_CHARS = 1000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

interface Row {
  name: string;
  build?: { seconds: number; ramBytes: number; fileBytes: number; loadS: number; viewS?: number };
  p50Ms: number;
  p99Ms: number;
  singleCount: number;
  batchQps: number;
  recall: number;
  /** Largest |returned distance − exact distance of that row|. */
  units: number;
}

interface FaissResult {
  faiss: string;
  threads: number;
  results: {
    name: string;
    ef_search: number | null;
    build_s: number;
    ram_bytes: number;
    file_bytes: number;
    load_s: number;
    view_s: number | null;
    first_distances: number[];
    single_p50_ms: number;
    single_p99_ms: number;
    single_count: number;
    batch_qps: number;
    recall: number;
  }[];
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;
const bytes = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** The base vectors as raw float32 in the dataset's temporary folder: read by the build child and by faiss. */
const BASE_FILE = 'base.f32';

function rss(): number {
  gc();
  return process.memoryUsage.rss();
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))] as number;
}

/** Direct squared L2 of query q to `row`, in float64. */
function l2(base: Float32Array, queries: Float32Array, d: number, q: number, row: number): number {
  let s = 0;
  for (let c = 0; c < d; c++) {
    const diff = (queries[q * d + c] as number) - (base[row * d + c] as number);
    s += diff * diff;
  }
  return s;
}

/** Single-query latencies, batched throughput, recall and the units check of one opened or built index. */
function measure(
  index: VectorIndex,
  base: Float32Array,
  queries: Float32Array,
  d: number,
  exact: SearchResult,
  single: number,
  batch?: { result: SearchResult; qps: number },
): Omit<Row, 'name' | 'build'> {
  const gtQueries = exact.rows.length / K;
  const latencies: number[] = [];
  for (let q = 0; q < single; q++) {
    const t0 = performance.now();
    index.search(queries.subarray(q * d, (q + 1) * d), K);
    latencies.push(performance.now() - t0);
  }
  let found: SearchResult;
  let batchQps: number;
  if (batch) {
    ({ result: found, qps: batchQps } = batch);
  } else {
    const t0 = performance.now();
    found = index.search(queries, K);
    batchQps = queries.length / d / seconds(t0);
  }
  const head: SearchResult = {
    rows: found.rows.subarray(0, gtQueries * K),
    distances: found.distances.subarray(0, gtQueries * K),
  };
  let units = 0;
  for (let i = 0; i < head.rows.length; i++) {
    const row = head.rows[i] as number;
    if (row >= 0) {
      const direct = l2(base, queries, d, Math.floor(i / K), row);
      units = Math.max(units, Math.abs((head.distances[i] as number) - direct));
    }
  }
  return {
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    singleCount: single,
    batchQps,
    recall: recallAtK(head, exact, K),
    units,
  };
}

/**
 * Builds one index in a child process (`--build`) from the raw base vectors and saves it: its RSS growth is the
 * index's alone, and the native memory goes back when it exits.
 */
async function buildInChild(
  params: IndexParams,
  baseFile: string,
  d: number,
  file: string,
): Promise<{ seconds: number; ramBytes: number }> {
  const args = [__filename, '--build', JSON.stringify(params), baseFile, String(d), String(THREADS), file];
  const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { seconds: number; ramBytes: number };
}

async function buildChild(paramsJson: string, baseFile: string, dims: string, threads: string, file: string) {
  const buf = await fs.readFile(baseFile);
  const base = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const before = rss();
  const t0 = performance.now();
  const index = buildIndex(JSON.parse(paramsJson) as IndexParams, base, Number(dims), { threads: Number(threads) });
  const result = { seconds: seconds(t0), ramBytes: rss() - before };
  await index.save(file);
  console.log(JSON.stringify(result));
}

async function benchKind(
  label: string,
  params: IndexParams,
  base: Float32Array,
  queries: Float32Array,
  d: number,
  exact: { result: SearchResult; qps: number },
  dir: string,
): Promise<Row[]> {
  const efs = params.kind === 'flat' ? [undefined] : EF_SEARCH;
  const nq = queries.length / d;
  const file = path.join(dir, `${label.replace(/\W+/g, '-')}.index`);
  const built = await buildInChild({ ...params, expansionSearch: efs[0] }, path.join(dir, BASE_FILE), d, file);
  const fileBytes = (await fs.stat(file)).size;
  const rows: Row[] = [];
  for (const [i, ef] of efs.entries()) {
    const p = { ...params, expansionSearch: ef };
    let t1 = performance.now();
    const loaded = await openIndex(p, file, d, { threads: THREADS });
    const loadS = seconds(t1);
    let viewS: number | undefined;
    let index = loaded;
    if (params.kind === 'usearch') {
      loaded.dispose();
      t1 = performance.now();
      index = await openIndex(p, file, d, { view: true, threads: THREADS });
      viewS = seconds(t1);
    }
    // The exact kind's batch is the ground-truth run itself (at N = 1M another one would take minutes).
    const measured =
      params.kind === 'flat'
        ? measure(index, base, queries, d, exact.result, Math.min(EXACT_SINGLE, QUERIES, nq), exact)
        : measure(index, base, queries, d, exact.result, Math.min(QUERIES, nq));
    index.dispose();
    const name = ef === undefined ? label : `${label}, efSearch ${ef}`;
    rows.push({
      name,
      ...(i === 0 ? { build: { ...built, fileBytes, loadS, viewS } } : {}),
      ...measured,
    });
    console.error(`  ${name}: recall@${K} ${measured.recall.toFixed(4)}, ${measured.batchQps.toFixed(0)} q/s batched`);
  }
  await fs.rm(file, { force: true });
  return rows;
}

async function faissRows(
  base: Float32Array,
  queries: Float32Array,
  d: number,
  exact: SearchResult,
  dir: string,
): Promise<{ rows: Row[]; note?: string }> {
  const files = [BASE_FILE, 'queries.f32', 'gt.i32'].map((f) => path.join(dir, f));
  await fs.writeFile(files[1] as string, bytes(queries));
  await fs.writeFile(files[2] as string, bytes(exact.rows));
  const results: FaissResult[] = [];
  for (const kind of ['flat', 'hnsw']) {
    const args = [String(d), String(K), String(M), String(EF_ADD), EF_SEARCH.join(','), String(THREADS)];
    const result = await runPythonJson<FaissResult>('index_faiss.py', [...files, ...args, String(QUERIES), dir, kind], {
      name: 'faiss',
      needs: 'faiss-cpu and numpy',
    });
    if (typeof result === 'string') return { rows: [], note: result };
    results.push(result);
  }
  const result = { ...(results[0] as FaissResult), results: results.flatMap((r) => r.results) };
  if (typeof result === 'string') return { rows: [], note: result };
  const n = base.length / d;
  const rows = result.results.map((r, i, all): Row => {
    const firstOfKind = all.findIndex((o) => o.name === r.name) === i;
    // faiss's own distances of the first query, against exact ones of the same rank (ties aside, equal).
    const units = Math.max(...r.first_distances.map((x, j) => Math.abs(x - (exact.distances[j] as number))));
    return {
      name: `faiss ${r.name}${r.ef_search === null ? '' : `, efSearch ${r.ef_search}`}`,
      ...(firstOfKind
        ? {
            build: {
              seconds: r.build_s,
              ramBytes: r.ram_bytes,
              fileBytes: r.file_bytes,
              loadS: r.load_s,
              viewS: r.view_s ?? undefined,
            },
          }
        : {}),
      p50Ms: r.single_p50_ms,
      p99Ms: r.single_p99_ms,
      singleCount: r.single_count,
      batchQps: r.batch_qps,
      recall: r.recall,
      units,
    };
  });
  return { rows, note: `faiss ${result.faiss}, ${result.threads} threads, on ${n} vectors` };
}

// ─── Output ───────────────────────────────────────────────────────────────────────────────────────────────────

const fmt = {
  rate: (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2)),
  bytes: (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(b >= 1e8 ? 0 : 1)} MB`),
  s: (s: number) => (s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(s >= 0.01 ? 0 : 1)} ms`),
  ms: (ms: number) =>
    ms >= 10 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(0)} µs`,
};

/** RSS growth below this is allocator noise, not the index: the column says '–'. */
const RAM_FLOOR = 64e6;

function table(rows: Row[], n: number, batch: number, exactQps: number): string {
  const header = [
    'index',
    'build',
    'RAM / 1M vectors',
    'file',
    'open: load / view',
    '1 query p50 / p99',
    `batch of ${batch}`,
    `recall@${K}`,
    '× exact',
    'Δ distance',
  ];
  const cells = rows.map((r) => [
    r.name,
    r.build ? `${fmt.rate(n / r.build.seconds)} vec/s` : '',
    r.build ? (r.build.ramBytes < RAM_FLOOR ? '–' : fmt.bytes((r.build.ramBytes / n) * 1e6)) : '',
    r.build ? fmt.bytes(r.build.fileBytes) : '',
    r.build ? `${fmt.s(r.build.loadS)} / ${r.build.viewS === undefined ? '–' : fmt.s(r.build.viewS)}` : '',
    `${fmt.ms(r.p50Ms)} / ${fmt.ms(r.p99Ms)}`,
    `${fmt.rate(r.batchQps)} q/s`,
    r.recall.toFixed(4),
    `${fmt.rate(r.batchQps / exactQps)}×`,
    r.units.toExponential(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

// ─── Datasets ─────────────────────────────────────────────────────────────────────────────────────────────────

async function benchDataset(title: string, base: Float32Array, queries: Float32Array, d: number): Promise<void> {
  const n = base.length / d;
  const gtQueries = Math.min(QUERIES, queries.length / d);
  console.log(`\n${title}`);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-bench-index-'));
  try {
    await fs.writeFile(path.join(dir, BASE_FILE), bytes(base));
    // Exact search: the ground truth, and the 'flat' kind's batched speed on the same queries.
    const flat = buildIndex({ kind: 'flat', metric: 'l2sq' }, base, d);
    const t0 = performance.now();
    const exact = flat.search(queries.subarray(0, gtQueries * d), K);
    const exactQps = gtQueries / seconds(t0);
    flat.dispose();
    console.error(`  exact ground truth: ${gtQueries} queries at ${exactQps.toFixed(1)} q/s`);

    const hnsw = { connectivity: M, expansionAdd: EF_ADD };
    const kinds: [string, string, IndexParams][] = [
      ['flat', 'exact (flat, tttnn JS)', { kind: 'flat', metric: 'l2sq' }],
      ['hnswlib', 'hnswlib-node f32', { kind: 'hnswlib', metric: 'l2sq', ...hnsw }],
      ['usearch', 'usearch f32', { kind: 'usearch', metric: 'l2sq', ...hnsw }],
      ['usearch-f16', 'usearch f16', { kind: 'usearch', metric: 'l2sq', dtype: 'f16', ...hnsw }],
    ];
    const rows: Row[] = [];
    for (const [name, label, params] of kinds) {
      if (!KINDS.includes(name)) continue;
      rows.push(...(await benchKind(label, params, base, queries, d, { result: exact, qps: exactQps }, dir)));
    }
    const faiss = KINDS.includes('faiss') ? await faissRows(base, queries, d, exact, dir) : { rows: [] };
    rows.push(...faiss.rows);
    console.log(table(rows, n, queries.length / d, exactQps));
    console.log(
      `HNSW: M (connectivity) ${M}, efConstruction (expansionAdd) ${EF_ADD}, efSearch ${EF_SEARCH.join(', ')}; ` +
        `${THREADS} threads for usearch and faiss (build, batches), hnswlib-node builds and searches on one; ` +
        `${gtQueries} held-out queries for recall and single-query latency (exact kinds: ${EXACT_SINGLE}), ` +
        `batches of ${queries.length / d}; × exact: batched q/s over tttnn's exact search's ` +
        `(${fmt.rate(exactQps)} q/s); Δ distance: largest |returned − exact| squared L2 for the same row ` +
        `(faiss: the first query, by rank); RAM: RSS growth over the build in a child process (– under ` +
        `${fmt.bytes(RAM_FLOOR)}: allocator noise).`,
    );
    if (faiss.note) console.log(faiss.note);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Splits a text into passages of at most `max` characters, at whitespace where it can. */
function passages(text: string, max: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length;) {
    let j = Math.min(text.length, i + max);
    if (j < text.length) {
      const cut = Math.max(text.lastIndexOf('\n', j), text.lastIndexOf(' ', j));
      if (cut > i + max / 2) j = cut;
    }
    const p = text.slice(i, j).trim();
    if (p.length > 0) out.push(p);
    i = j;
  }
  return out;
}

async function main(): Promise<void> {
  console.log(machineLine());
  if (DATASETS.includes('synthetic')) {
    const d = SYNTHETIC.dimensions;
    const t0 = performance.now();
    const all = clusteredVectors({ ...SYNTHETIC, n: N + BATCH });
    console.error(`  generated ${N + BATCH} vectors in ${seconds(t0).toFixed(1)} s`);
    const base = all.subarray(0, N * d);
    // Held out: the queries are drawn from the same clusters but are not in the index.
    const queries = all.subarray(N * d);
    await benchDataset(
      `Synthetic: N = ${N.toLocaleString('en-US')} vectors of ${d} dimensions, ${SYNTHETIC.clusters} Gaussian ` +
        `clusters (centers uniform on the unit sphere, σ = ${SYNTHETIC.sigma} per component: noise of norm ` +
        `≈ ${(SYNTHETIC.sigma * Math.sqrt(d)).toFixed(2)}), L2-normalised like MiniLM outputs; seed ${SYNTHETIC.seed}; ` +
        `${BATCH} held-out queries`,
      base,
      queries,
      d,
    );
    await benchVectorsFile(base.subarray(0, Math.min(N, PARQUET_N) * d), d);
  }
  if (DATASETS.includes('minilm')) {
    const texts = (await readSampleTexts()).flatMap((t) => passages(t, PASSAGE_CHARS));
    const { vectors, dimensions: d, cached } = await cachedMiniLmVectors('sample-passages', texts);
    const count = texts.length;
    // Every 10th passage is a query; the others are indexed.
    const isQuery = (i: number) => i % 10 === 9;
    const pick = (keep: (i: number) => boolean) => {
      const ids = Array.from({ length: count }, (_, i) => i).filter(keep);
      const out = new Float32Array(ids.length * d);
      ids.forEach((id, j) => out.set(vectors.subarray(id * d, (id + 1) * d), j * d));
      return out;
    };
    const base = pick((i) => !isQuery(i));
    const queries = pick(isQuery);
    await benchDataset(
      `MiniLM: all-MiniLM-L6-v2 embeddings (max length 256, mean pooling, L2 norm) of the bundled sample ` +
        `corpus split into passages of ≤ ${PASSAGE_CHARS} characters: ${base.length / d} indexed, ` +
        `${queries.length / d} held-out queries (every 10th passage)${cached ? '; vectors from the cache' : ''}`,
      base,
      queries,
      d,
    );
  }
}

const [mode, ...childArgs] = process.argv.slice(2);
(mode === '--build' ? buildChild(...(childArgs as [string, string, string, string, string])) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
