import { DuckDBInstance } from '@duckdb/node-api';
import { type EvalResultRow, skippedRow } from '../../core/eval/results';
import { seededRandom } from '../../core/seeded-random';

/**
 * Result rows for report tests, and the report's figures recomputed from a results Parquet file with DuckDB SQL:
 * an implementation of the aggregation that shares no code with core/eval/aggregate.ts.
 */

export const SYNTHETIC_K = 10;
/** Four Pile domains spelled as the Pile spells them, and one that is not a Pile domain. */
export const SYNTHETIC_DOMAINS = ['ArXiv', 'Github', 'Gutenberg (PG-19)', 'Wikipedia (en)', 'Sample Notes'];
/** Their weights as ttt-nn.md lists them (typed here again, not imported). */
export const SYNTHETIC_WEIGHTS: Record<string, number> = {
  ArXiv: 8.96,
  Github: 7.59,
  'Gutenberg (PG-19)': 2.17,
  'Wikipedia (en)': 1.53,
};

/**
 * `perDomain` documents per domain: some skipped (two reasons), some with fewer than K neighbors, the random
 * control missing for some, SIFT for others (with and without an adaptive stop), the dynamic baseline for others, in-context for a third of them, a few exact copies.
 * Per-document bits/byte vary a lot with size, so a mean of per-document figures differs from the harness's.
 */
export function syntheticRows(perDomain = 12, seed = 7): EvalResultRow[] {
  const random = seededRandom(seed);
  const rows: EvalResultRow[] = [];
  for (const domain of SYNTHETIC_DOMAINS) {
    for (let j = 0; j < perDomain; j++) {
      const index = rows.length;
      const bytes = 200 + Math.floor(random() * 6000);
      const base = {
        doc_index: index,
        doc_id: `${domain.slice(0, 3)}-${j}`,
        domain,
        bytes,
        tokens: Math.ceil(bytes / 4),
        skip_reason: j === 3 ? 'empty_after_tokenizing' : j === 7 && domain === 'Github' ? 'over_size_limit' : '',
        backend: 'tensorflow',
        model_digest: 'sha256:00',
        index_build: 'build-1',
      };
      const row = skippedRow(base);
      rows.push(row);
      if (row.skip_reason !== '') continue;
      const neighbors = j % 5 === 1 ? 1 + Math.floor(random() * (SYNTHETIC_K - 1)) : SYNTHETIC_K;
      const before = 0.6 + random() * 0.9 + (bytes < 1000 ? 0.5 : 0);
      const gain = random() * 0.2;
      const bpb = Array.from(
        { length: neighbors + 1 },
        (_, k) => before - gain * (1 - Math.exp(-k / 3)) + random() * 0.004,
      );
      const nll = bpb.map((b) => b * bytes * Math.LN2);
      Object.assign(row, { nll, bits_per_byte: bpb, steps: neighbors * 2, exact_copies: j === 5 ? 2 : 0 });
      row.neighbor_ids = Array.from({ length: neighbors }, (_, n) => `n${n}`);
      if (j % 4 !== 2) {
        row.random_nll = nll.map((v, k) => v * (1 - 0.002 * k * random()));
        row.random_bits_per_byte = row.random_nll.map((v) => v / bytes / Math.LN2);
      }
      if (j % 4 !== 1) {
        // SIFT for most documents, adaptive stops for half of those (no extra draws: the other figures stay put).
        row.sift_nll = nll.map((v, k) => v * (1 - 0.003 * k * ((j % 3) / 2)));
        row.sift_bits_per_byte = row.sift_nll.map((v) => v / bytes / Math.LN2);
        row.sift_stop = j % 2 === 0 ? Math.min(neighbors, 1 + (j % 5)) : -1;
      }
      if (j % 3 !== 0) {
        row.split_bytes = Math.floor(bytes / 2);
        row.split_tokens = Math.ceil(row.tokens / 2);
        row.split_nll_before = before * row.split_bytes * Math.LN2;
        row.split_nll_dynamic = (before - random() * 0.05) * row.split_bytes * Math.LN2;
        row.split_nll_ttt = (before - random() * 0.1) * row.split_bytes * Math.LN2;
      }
      if (j % 3 === 1) row.in_context_nll = (before - random() * 0.08) * bytes * Math.LN2;
      row.seconds_training = random() * 10;
      row.seconds_total = row.seconds_training + 1;
    }
  }
  return rows;
}

/** `domain|metric|k` → value, for the report's cells (`data-domain`, `data-metric`, `data-k`). */
export type Figures = Map<string, number>;
export const figureKey = (domain: string, metric: string, k?: number) => `${domain}|${metric}|${k ?? ''}`;

/**
 * The report's per-domain, pooled and Pile-weighted figures from a results Parquet file, in SQL: curves read at
 * min(k, last) (a short curve keeps its last value), sums of NLL over sums of bytes / ln 2. A figure over no
 * documents is NaN, as the report shows it.
 */
export async function figuresFromParquet(file: string, ks: number[]): Promise<Figures> {
  const instance = await DuckDBInstance.create(':memory:');
  const db = await instance.connect();
  const figures: Figures = new Map();
  const put = (domain: string, metric: string, k: number | undefined, value: unknown) =>
    figures.set(figureKey(domain, metric, k), value === null ? NaN : Number(value));
  const query = async (sql: string) =>
    (await db.runAndReadAll(sql)).getRowObjectsJS() as Record<string, string | number | bigint | null>[];
  const weights = Object.entries(SYNTHETIC_WEIGHTS).map(([d, w]) => `('${d.replace(/'/g, "''")}', ${w})`);
  const K = Math.max(...ks);

  await db.run(`create view rows as select * from read_parquet('${file.replace(/'/g, "''")}')`);
  await db.run(`create view docs as select * from rows where skip_reason = ''`);
  await db.run(`create view ks as select unnest([${ks.join(', ')}]) as k`);
  await db.run(`create table weights(domain varchar, weight double)`);
  await db.run(`insert into weights values ${weights.join(', ')}`);

  /** `columns` per domain and over all rows ('(pooled)'), optionally per k too. */
  const grouped = (columns: string, from: string, byK = false) => `
    select coalesce(domain, '(pooled)') as domain, ${byK ? 'k,' : ''} ${columns}
    from ${from}
    group by grouping sets (${byK ? '(domain, k), (k)' : '(domain), ()'})`;
  /** A bits/byte figure (`bpb` per domain, pooled, and Pile-weighted over the weighted domains that have it). */
  const figure = async (metric: string, bpb: string, from: string, byK = false) => {
    for (const r of await query(grouped(`${bpb} as bpb, count(*) as n`, from, byK))) {
      put(String(r.domain), metric, byK ? Number(r.k) : undefined, r.bpb);
      if (!byK || Number(r.k) === 0) put(String(r.domain), `${metric}_documents`, undefined, r.n);
    }
    for (const r of await query(`
      with per as (select domain, ${byK ? 'k,' : ''} ${bpb} as bpb from ${from} group by domain ${byK ? ', k' : ''})
      select ${byK ? 'k,' : ''} sum(weight * bpb) / sum(weight) as bpb
      from per join weights using (domain) ${byK ? 'group by k' : ''}`)) {
      put('(pile-weighted)', metric, byK ? Number(r.k) : undefined, r.bpb);
    }
  };

  for (const r of await query(
    grouped(
      `count(*) filter (where skip_reason = '') as evaluated, count(*) filter (where skip_reason <> '') as skipped,
       count(*) as documents, coalesce(sum(bytes) filter (where skip_reason = ''), 0) as bytes,
       count(*) filter (where skip_reason = '' and len(nll) < ${K} + 1) as short_curves,
       coalesce(sum(exact_copies), 0) as exact_copies, count(*) filter (where exact_copies > 0) as documents_with_copies,
       coalesce(sum(excluded_copies), 0) as excluded_copies, coalesce(sum(steps), 0) as steps,
       avg(len(nll) - 1) filter (where skip_reason = '') as neighbors_mean,
       coalesce(sum(seconds_training), 0) as seconds_training, coalesce(sum(seconds_total), 0) as seconds_total`,
      'rows',
    ),
  )) {
    for (const metric of [
      'evaluated',
      'skipped',
      'documents',
      'bytes',
      'short_curves',
      'exact_copies',
      'documents_with_copies',
      'excluded_copies',
      'steps',
      'neighbors_mean',
      'seconds_training',
      'seconds_total',
    ]) {
      put(String(r.domain), metric, undefined, r[metric]);
    }
  }
  for (const r of await query(`
      select coalesce(domain, '(pooled)') as domain, skip_reason, count(*) as n from rows where skip_reason <> ''
      group by grouping sets ((domain, skip_reason), (skip_reason))`)) {
    put(String(r.domain), `skipped:${String(r.skip_reason)}`, undefined, r.n);
  }
  await figure('ttt', 'sum(nll[least(k, len(nll) - 1) + 1]) / sum(bytes) / ln(2)', 'docs, ks', true);
  await figure(
    'random',
    'sum(random_nll[least(k, len(random_nll) - 1) + 1]) / sum(bytes) / ln(2)',
    'docs, ks where len(random_nll) > 0',
    true,
  );
  await figure(
    'sift',
    'sum(sift_nll[least(k, len(sift_nll) - 1) + 1]) / sum(bytes) / ln(2)',
    'docs, ks where len(sift_nll) > 0',
    true,
  );
  const stopped = 'docs where len(sift_nll) > 0 and sift_stop >= 0';
  await figure('sift_at_stop', 'sum(sift_nll[least(sift_stop, len(sift_nll) - 1) + 1]) / sum(bytes) / ln(2)', stopped);
  await figure('ttt_at_sift_stop', 'sum(nll[least(sift_stop, len(nll) - 1) + 1]) / sum(bytes) / ln(2)', stopped);
  for (const r of await query(grouped('avg(sift_stop) as m', stopped))) {
    put(String(r.domain), 'sift_stop_mean', undefined, r.m);
  }
  const split = 'docs where split_bytes > 0 and isfinite(split_nll_before)';
  await figure('split_before', 'sum(split_nll_before) / sum(split_bytes) / ln(2)', split);
  await figure(
    'split_dynamic',
    'sum(split_nll_dynamic) / sum(split_bytes) / ln(2)',
    `${split} and isfinite(split_nll_dynamic)`,
  );
  await figure('split_ttt', 'sum(split_nll_ttt) / sum(split_bytes) / ln(2)', `${split} and isfinite(split_nll_ttt)`);
  await figure('in_context', 'sum(in_context_nll) / sum(bytes) / ln(2)', 'docs where isfinite(in_context_nll)');
  for (const r of await query(grouped('count(*) as n, sum(split_bytes) as b', split))) {
    put(String(r.domain), 'split_documents', undefined, r.n);
    put(String(r.domain), 'split_bytes', undefined, r.b);
  }
  for (const r of await query('select * from weights')) put(String(r.domain), 'pile_weight', undefined, r.weight);

  for (const domain of new Set([...figures.keys()].map((key) => key.split('|')[0]!))) {
    const before = figures.get(figureKey(domain, 'ttt', 0));
    const after = figures.get(figureKey(domain, 'ttt', K));
    if (before !== undefined && after !== undefined) {
      figures.set(figureKey(domain, 'reduction'), (before - after) / before);
    }
  }
  db.closeSync();
  instance.closeSync();
  return figures;
}
