import type { EvalResultRow } from './results';

/**
 * An evaluation's figures from its result rows (pure functions; `report.ts` renders them).
 *
 * Bits/byte aggregate as lm-evaluation-harness's `bits_per_byte` does: the sum of the documents' NLL (nats) over
 * the sum of their UTF-8 bytes, / ln 2 — a byte-weighted mean, not a mean of per-document figures. Across domains
 * there are two: the pooled figure (every document's NLL over every byte) and the Pile-weighted one (each domain's
 * figure weighted by its share of the Pile, renormalised over the domains present that have one).
 *
 * Curves are indexed by k, the number of neighbors trained on (0: before training). A document whose curve is
 * shorter than the run's K (fewer neighbors passed the distance threshold) counts at every larger k with its last
 * value: training stopped there. A skipped document (`skip_reason` set) is counted per reason and adds no bytes.
 * A baseline that was not run for a document (an empty random curve, NaN split or in-context NLL) leaves that
 * document out of that baseline's figure only; every figure says over how many documents and bytes it is.
 */

/** A byte-weighted figure: `nll` nats over `bytes` bytes; `bitsPerByte` is NaN over no documents. */
export interface Pooled {
  bitsPerByte: number;
  nll: number;
  bytes: number;
  documents: number;
}

export interface DomainSummary {
  domain: string;
  /** Its share of the Pile in percent (ttt-nn.md), or undefined when the name is not a Pile domain. */
  pileWeight: number | undefined;
  /** Rows: evaluated plus skipped. */
  documents: number;
  evaluated: number;
  skipped: number;
  skippedByReason: Record<string, number>;
  /** UTF-8 bytes and tokens of the evaluated documents. */
  bytes: number;
  tokens: number;
  /** TTT-NN at k = 0..K (index = k). */
  ttt: Pooled[];
  /** (bits/byte at 0 − at K) / at 0. */
  reduction: number;
  /** Random-neighbor control at k = 0..K, over the documents it ran for. */
  random: Pooled[];
  /** SIFT's picks at k = 0..K, over the documents it ran for. */
  sift: Pooled[];
  /**
   * Adaptive SIFT, over the documents with a recorded stop: SIFT's curve at each document's own stop, TTT-NN's at
   * the same k (as many neighbors, nearest first) and the mean stop.
   */
  siftAdaptive: { sift: Pooled; ttt: Pooled; meanStop: number };
  /** Dynamic evaluation: the second half before training, after training on the first half, after TTT-NN. */
  split: { before: Pooled; dynamic: Pooled; ttt: Pooled };
  inContext: Pooled;
  /** Evaluated documents with fewer than K neighbors (curve shorter than K + 1). */
  shortCurves: number;
  /** Neighbors trained on, summed over documents (mean = neighbors / evaluated). */
  neighbors: number;
  exactCopies: number;
  excludedCopies: number;
  /** Documents with at least one neighbor identical to them. */
  documentsWithCopies: number;
  steps: number;
  seconds: { retrieval: number; training: number; evaluation: number; total: number };
}

/** Pile-weighted figures: each domain's bits/byte times its weight, over the weights of the domains that have it. */
export interface WeightedSummary {
  ttt: number[];
  reduction: number;
  random: number[];
  sift: number[];
  siftAdaptive: { sift: number; ttt: number };
  split: { before: number; dynamic: number; ttt: number };
  inContext: number;
  /** Domains with a Pile weight and evaluated documents (their weights renormalised to 1). */
  domains: string[];
}

export interface EvalSummary {
  /** The run's K: curves run k = 0..K. */
  k: number;
  /** The k values tables show: 0, 1, 2, 5, 10, 20, 50, … up to K, and K. */
  ks: number[];
  /** In name order. */
  domains: DomainSummary[];
  /** All documents as one: every document's NLL over every byte. */
  pooled: DomainSummary;
  weighted: WeightedSummary;
  /** Domains without a Pile weight: reported, left out of the weighted figure. */
  unweighted: string[];
}

/**
 * Percent of the Pile by epochs-weighted size, as the reference code weights its domains (ttt-nn.md), under the
 * reference's names; `pileWeight` matches names case- and punctuation-blind ("Wikipedia (en)" = wikipedia-en).
 */
export const PILE_WEIGHTS: Readonly<Record<string, number>> = {
  arxiv: 8.96,
  bookcorpus2: 0.75,
  books3: 12.07,
  'dm-mathematics': 1.24,
  'enron-emails': 0.14,
  europarl: 0.73,
  freelaw: 6.12,
  github: 7.59,
  'gutenberg (pg-19)': 2.17,
  hackernews: 0.62,
  'nih-exporter': 0.3,
  opensubtitles: 1.55,
  openwebtext2: 10.01,
  philpapers: 0.38,
  'pile-cc': 18.11,
  'pubmed-abstracts': 3.07,
  'pubmed-central': 14.4,
  stackexchange: 5.13,
  'ubuntu-irc': 0.88,
  'uspto-backgrounds': 3.65,
  'wikipedia-en': 1.53,
  'youtube-subtitles': 0.6,
};

const squash = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, '');
const WEIGHT_BY_SQUASHED = new Map(Object.entries(PILE_WEIGHTS).map(([name, w]) => [squash(name), w]));

/** The Pile weight (percent) of a domain as `meta.pile_set_name` spells it ("Pile-CC", "Gutenberg (PG-19)"). */
export function pileWeight(domain: string): number | undefined {
  return WEIGHT_BY_SQUASHED.get(squash(domain));
}

/** 0, 1, 2, 5, 10, 20, 50, 100, … while ≤ K, then K itself. */
export function reportKs(k: number): number[] {
  const ks = [0];
  for (let decade = 1; decade <= k; decade *= 10) {
    for (const step of [1, 2, 5]) if (step * decade <= k) ks.push(step * decade);
  }
  if (ks.at(-1) !== k) ks.push(k);
  return ks;
}

export function bitsPerByte(nll: number, bytes: number): number {
  return bytes > 0 ? nll / bytes / Math.LN2 : NaN;
}

/** A curve's value at k: its last value when it stops before k. */
export function curveAt(curve: readonly number[], k: number): number {
  if (curve.length === 0) throw new Error('curveAt on an empty curve');
  return curve[Math.min(k, curve.length - 1)]!;
}

class Sum {
  nll = 0;
  bytes = 0;
  documents = 0;
  add(nll: number, bytes: number): void {
    this.nll += nll;
    this.bytes += bytes;
    this.documents += 1;
  }
  get pooled(): Pooled {
    const { nll, bytes, documents } = this;
    return { bitsPerByte: documents > 0 ? bitsPerByte(nll, bytes) : NaN, nll, bytes, documents };
  }
}

/** One domain's figures (or, with `domain` = its label, any set of rows'). */
export function summarizeDomain(domain: string, rows: readonly EvalResultRow[], k: number): DomainSummary {
  const ttt = Array.from({ length: k + 1 }, () => new Sum());
  const random = Array.from({ length: k + 1 }, () => new Sum());
  const sift = Array.from({ length: k + 1 }, () => new Sum());
  const adaptive = { sift: new Sum(), ttt: new Sum(), stops: 0 };
  const split = { before: new Sum(), dynamic: new Sum(), ttt: new Sum() };
  const inContext = new Sum();
  const summary: DomainSummary = {
    domain,
    pileWeight: pileWeight(domain),
    documents: rows.length,
    evaluated: 0,
    skipped: 0,
    skippedByReason: {},
    bytes: 0,
    tokens: 0,
    ttt: [],
    reduction: NaN,
    random: [],
    sift: [],
    siftAdaptive: { sift: adaptive.sift.pooled, ttt: adaptive.ttt.pooled, meanStop: NaN },
    split: { before: split.before.pooled, dynamic: split.dynamic.pooled, ttt: split.ttt.pooled },
    inContext: inContext.pooled,
    shortCurves: 0,
    neighbors: 0,
    exactCopies: 0,
    excludedCopies: 0,
    documentsWithCopies: 0,
    steps: 0,
    seconds: { retrieval: 0, training: 0, evaluation: 0, total: 0 },
  };
  for (const row of rows) {
    if (row.skip_reason !== '') {
      summary.skipped += 1;
      summary.skippedByReason[row.skip_reason] = (summary.skippedByReason[row.skip_reason] ?? 0) + 1;
      continue;
    }
    if (row.nll.length === 0) throw new Error(`document ${row.doc_id} (${row.domain}) is evaluated but has no curve`);
    if (row.nll.length > k + 1) {
      throw new Error(`document ${row.doc_id} has a curve over ${row.nll.length - 1} neighbors, more than K = ${k}`);
    }
    summary.evaluated += 1;
    summary.bytes += row.bytes;
    summary.tokens += row.tokens;
    summary.neighbors += row.nll.length - 1;
    if (row.nll.length < k + 1) summary.shortCurves += 1;
    for (let i = 0; i <= k; i++) ttt[i]!.add(curveAt(row.nll, i), row.bytes);
    if (row.random_nll.length > 0) for (let i = 0; i <= k; i++) random[i]!.add(curveAt(row.random_nll, i), row.bytes);
    if (row.sift_nll.length > 0) {
      for (let i = 0; i <= k; i++) sift[i]!.add(curveAt(row.sift_nll, i), row.bytes);
      if (row.sift_stop >= 0) {
        adaptive.sift.add(curveAt(row.sift_nll, row.sift_stop), row.bytes);
        adaptive.ttt.add(curveAt(row.nll, row.sift_stop), row.bytes);
        adaptive.stops += row.sift_stop;
      }
    }
    if (row.split_bytes > 0 && Number.isFinite(row.split_nll_before)) {
      split.before.add(row.split_nll_before, row.split_bytes);
      if (Number.isFinite(row.split_nll_dynamic)) split.dynamic.add(row.split_nll_dynamic, row.split_bytes);
      if (Number.isFinite(row.split_nll_ttt)) split.ttt.add(row.split_nll_ttt, row.split_bytes);
    }
    if (Number.isFinite(row.in_context_nll)) inContext.add(row.in_context_nll, row.bytes);
    summary.exactCopies += row.exact_copies;
    summary.excludedCopies += row.excluded_copies;
    if (row.exact_copies > 0) summary.documentsWithCopies += 1;
    summary.steps += row.steps;
    summary.seconds.retrieval += row.seconds_retrieval;
    summary.seconds.training += row.seconds_training;
    summary.seconds.evaluation += row.seconds_evaluation;
    summary.seconds.total += row.seconds_total;
  }
  summary.ttt = ttt.map((s) => s.pooled);
  summary.random = random.map((s) => s.pooled);
  summary.sift = sift.map((s) => s.pooled);
  summary.siftAdaptive = {
    sift: adaptive.sift.pooled,
    ttt: adaptive.ttt.pooled,
    meanStop: adaptive.sift.documents > 0 ? adaptive.stops / adaptive.sift.documents : NaN,
  };
  summary.split = { before: split.before.pooled, dynamic: split.dynamic.pooled, ttt: split.ttt.pooled };
  summary.inContext = inContext.pooled;
  summary.reduction = relativeReduction(summary.ttt[0]!.bitsPerByte, summary.ttt[k]!.bitsPerByte);
  return summary;
}

export function relativeReduction(before: number, after: number): number {
  return (before - after) / before;
}

/** Every figure of a run: per domain, pooled and Pile-weighted. `k` is the run's K. */
export function summarize(rows: readonly EvalResultRow[], k: number): EvalSummary {
  if (!Number.isInteger(k) || k < 0) throw new Error(`K must be a whole number ≥ 0, not ${k}`);
  const byDomain = new Map<string, EvalResultRow[]>();
  for (const row of rows) {
    const list = byDomain.get(row.domain);
    if (list === undefined) byDomain.set(row.domain, [row]);
    else list.push(row);
  }
  const domains = [...byDomain.keys()].sort().map((d) => summarizeDomain(d, byDomain.get(d)!, k));
  const unweighted = domains.filter((d) => d.pileWeight === undefined).map((d) => d.domain);
  return {
    k,
    ks: reportKs(k),
    domains,
    pooled: summarizeDomain('All domains (pooled)', rows, k),
    weighted: weightDomains(domains, k),
    unweighted,
  };
}

/** Pile-weighted figures; each over the domains with a weight that have that figure (weights renormalised). */
export function weightDomains(domains: readonly DomainSummary[], k: number): WeightedSummary {
  const weighted = domains.filter((d) => d.pileWeight !== undefined && d.evaluated > 0);
  const mean = (figure: (d: DomainSummary) => Pooled) => {
    let total = 0;
    let weights = 0;
    for (const d of weighted) {
      const pooled = figure(d);
      if (pooled.documents === 0) continue;
      total += d.pileWeight! * pooled.bitsPerByte;
      weights += d.pileWeight!;
    }
    return weights > 0 ? total / weights : NaN;
  };
  const ks = Array.from({ length: k + 1 }, (_, i) => i);
  const ttt = ks.map((i) => mean((d) => d.ttt[i]!));
  return {
    ttt,
    reduction: relativeReduction(ttt[0]!, ttt[k]!),
    random: ks.map((i) => mean((d) => d.random[i]!)),
    sift: ks.map((i) => mean((d) => d.sift[i]!)),
    siftAdaptive: { sift: mean((d) => d.siftAdaptive.sift), ttt: mean((d) => d.siftAdaptive.ttt) },
    split: {
      before: mean((d) => d.split.before),
      dynamic: mean((d) => d.split.dynamic),
      ttt: mean((d) => d.split.ttt),
    },
    inContext: mean((d) => d.inContext),
    domains: weighted.map((d) => d.domain),
  };
}
