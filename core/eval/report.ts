import { promises as fs } from 'node:fs';
import path from 'node:path';
import type * as Vega from 'vega' with { 'resolution-mode': 'import' };
import type * as VegaLite from 'vega-lite' with { 'resolution-mode': 'import' };
import type { TopLevelSpec } from 'vega-lite' with { 'resolution-mode': 'import' };
import { type DomainSummary, type EvalSummary, type Pooled, bitsPerByte, curveAt, summarize } from './aggregate';
import type { EvalResultRow } from './results';
import type { EvalSettings } from './run-layout';

/**
 * An evaluation's report: `report.md`, `report.html` (one static page, plots inlined, no script) and the plots as
 * SVG files under `plots/`. Both documents come from the same tables, so every number is formatted the same in
 * both; in the HTML each number also carries its full-precision value and what it is (`data-value`,
 * `data-domain`, `data-metric`, `data-k`), which the tests compare with an independent computation.
 *
 * Plots are Vega-Lite specs rendered to SVG in Node by Vega's headless view (no canvas, no browser). Vega ships
 * only ES modules, one of which awaits at its top level (vega-canvas probing for the optional `canvas` package),
 * so it cannot be `require`d: it is loaded with a dynamic `import()`, which TypeScript keeps as such in our
 * CommonJS output (jest.config.js compiles the same modules to CommonJS for the tests instead).
 */

/** What the report says about the run besides its rows. */
export interface ReportMeta {
  runId: string;
  model: string;
  encoder: string;
  indexBuild: string;
  /** The run's K: curves go k = 0..K. */
  k: number;
  lr: number;
  maxLength: number;
  /** In words, e.g. "20 per domain, seed 1216". */
  selection: string;
  backend: string;
  /** ISO times, when known. */
  started?: string;
  finished?: string;
  /** Said on the report as they are, e.g. how the run differs from the reference. */
  notes: string[];
}

/** The note every TTT-NN run carries: where it departs from the reference code. */
export const FRESH_OPTIMIZER_NOTE =
  'Every document starts from the pretrained weights and a fresh AdamW state. The reference code resets the ' +
  "weights but keeps Adam's moments and step count from one document to the next, which makes a document's " +
  'result depend on the documents before it on the same process.';

/** `ReportMeta` from a run's settings (run.json / the manifest's body). */
export function reportMeta(
  settings: EvalSettings,
  run: { buildId: string; backend: string; started?: string; finished?: string; notes?: string[] },
): ReportMeta {
  const { selection } = settings;
  return {
    runId: settings.runId,
    model: settings.model,
    encoder: settings.encoder,
    indexBuild: run.buildId,
    k: settings.k,
    lr: settings.lr,
    maxLength: settings.maxLength,
    selection:
      'ids' in selection
        ? `${selection.ids.length} documents by id`
        : `${selection.perDomain} per domain, seed ${selection.seed}`,
    backend: run.backend,
    started: run.started,
    finished: run.finished,
    notes: [FRESH_OPTIMIZER_NOTE, ...(run.notes ?? [])],
  };
}

export interface ReportFiles {
  markdown: string;
  html: string;
  plots: string[];
}

/** Writes report.md, report.html and plots/*.svg into `outDir` (created); returns the figures and the paths. */
export async function writeReport(
  rows: readonly EvalResultRow[],
  meta: ReportMeta,
  outDir: string,
): Promise<{ summary: EvalSummary; files: ReportFiles }> {
  const summary = summarize(rows, meta.k);
  const tables = reportTables(summary);
  const plots = await renderPlots(summary, rows);
  await fs.mkdir(path.join(outDir, 'plots'), { recursive: true });
  const plotFiles: string[] = [];
  for (const plot of plots) {
    const file = path.join(outDir, 'plots', plot.file);
    await fs.writeFile(file, plot.svg);
    plotFiles.push(file);
  }
  const notes = reportNotes(summary, meta);
  const markdown = path.join(outDir, 'report.md');
  const html = path.join(outDir, 'report.html');
  await fs.writeFile(markdown, renderMarkdown(meta, tables, plots, notes));
  await fs.writeFile(html, renderHtml(meta, tables, plots, notes));
  return { summary, files: { markdown, html, plots: plotFiles } };
}

// ---------------------------------------------------------------------------------------------------------------
// Tables: one structure, rendered to Markdown and to HTML

/** What a number is, for `data-*` attributes: a domain (or POOLED / WEIGHTED), a metric and maybe a k. */
export interface CellKey {
  domain: string;
  metric: string;
  k?: number;
}

export interface Cell {
  text: string;
  /** Full precision; absent for text cells. NaN for a figure that was not measured (shown as "—"). */
  value?: number;
  key?: CellKey;
}

export interface Table {
  id: string;
  title: string;
  columns: string[];
  rows: Cell[][];
  /** Said under the table. */
  caption?: string;
}

export const POOLED = '(pooled)';
export const WEIGHTED = '(pile-weighted)';
const POOLED_LABEL = 'All domains (pooled)';
const WEIGHTED_LABEL = 'Pile-weighted';

export const format = {
  bitsPerByte: (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '—'),
  percent: (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(2)} %` : '—'),
  count: (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—'),
  decimal: (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : '—'),
  /** A setting as given (learning rates like 2e-5 keep their form). */
  plain: (v: number) => String(v),
};

const text = (t: string): Cell => ({ text: t });
const number = (value: number, shown: (v: number) => string, key: CellKey): Cell => ({
  text: shown(value),
  value,
  key,
});

/** Every table of the report, in order. */
export function reportTables(summary: EvalSummary): Table[] {
  const { k, ks, domains, pooled, weighted } = summary;
  const all = [...domains, pooled];
  const label = (d: DomainSummary) => (d === pooled ? POOLED_LABEL : d.domain);
  const keyOf = (d: DomainSummary) => (d === pooled ? POOLED : d.domain);
  const bpb = (d: DomainSummary, metric: string, p: Pooled, at?: number) =>
    number(p.bitsPerByte, format.bitsPerByte, { domain: keyOf(d), metric, k: at });
  const count = (d: DomainSummary, metric: string, v: number) => number(v, format.count, { domain: keyOf(d), metric });
  const w = (metric: string, v: number, at?: number) =>
    number(v, metric === 'reduction' ? format.percent : format.bitsPerByte, { domain: WEIGHTED, metric, k: at });
  const none = text('');

  const summaryTable: Table = {
    id: 'summary',
    title: 'Summary',
    columns: [
      'Domain',
      'Pile weight (%)',
      'Evaluated',
      'Skipped',
      'Bytes',
      'bits/byte, no TTT',
      `bits/byte, TTT-NN k=${k}`,
      'Reduction',
      `Random control k=${k}`,
      'In-context',
    ],
    rows: [
      ...all.map((d) => [
        text(label(d)),
        d.pileWeight === undefined
          ? text(d === pooled ? '' : 'unknown')
          : number(d.pileWeight, format.plain, { domain: keyOf(d), metric: 'pile_weight' }),
        count(d, 'evaluated', d.evaluated),
        count(d, 'skipped', d.skipped),
        count(d, 'bytes', d.bytes),
        bpb(d, 'ttt', d.ttt[0]!, 0),
        bpb(d, 'ttt', d.ttt[k]!, k),
        number(d.reduction, format.percent, { domain: keyOf(d), metric: 'reduction' }),
        bpb(d, 'random', d.random[k]!, k),
        bpb(d, 'in_context', d.inContext),
      ]),
      [
        text(WEIGHTED_LABEL),
        none,
        none,
        none,
        none,
        w('ttt', weighted.ttt[0]!, 0),
        w('ttt', weighted.ttt[k]!, k),
        w('reduction', weighted.reduction),
        w('random', weighted.random[k]!, k),
        w('in_context', weighted.inContext),
      ],
    ],
    caption:
      'bits/byte = Σ NLL (nats) / Σ UTF-8 bytes / ln 2 over the evaluated documents of a domain, as ' +
      "lm-evaluation-harness's bits_per_byte aggregates. Reduction: (no TTT − TTT-NN at K) / no TTT.",
  };

  const curveTable = (id: string, title: string, metric: 'ttt' | 'random' | 'sift', caption: string): Table => ({
    id,
    title,
    columns: ['Domain', 'Documents', ...ks.map((i) => `k=${i}`)],
    rows: [
      ...all.map((d) => [
        text(label(d)),
        count(d, `${metric}_documents`, d[metric][0]!.documents),
        ...ks.map((i) => bpb(d, metric, d[metric][i]!, i)),
      ]),
      [text(WEIGHTED_LABEL), none, ...ks.map((i) => w(metric, weighted[metric][i]!, i))],
    ],
    caption,
  });

  // SIFT's curve beside adaptive SIFT at each document's own stop, and TTT-NN with as many neighbors.
  const siftCurve = curveTable(
    'sift',
    'SIFT: bits/byte after training on k of its picks',
    'sift',
    'SIFT (Hübotter et al., ICLR 2025) picks from each document’s nearest neighbors, in pick order, repeats ' +
      'trained on again.',
  );
  const siftTable: Table = {
    ...siftCurve,
    columns: [...siftCurve.columns, 'Adaptive stop (mean k)', 'SIFT at its stop', 'TTT-NN at the same k'],
    rows: [
      ...all.map((d, i) => [
        ...siftCurve.rows[i]!,
        number(d.siftAdaptive.meanStop, (v) => format.decimal(v, 2), { domain: keyOf(d), metric: 'sift_stop_mean' }),
        bpb(d, 'sift_at_stop', d.siftAdaptive.sift),
        bpb(d, 'ttt_at_sift_stop', d.siftAdaptive.ttt),
      ]),
      [
        ...siftCurve.rows[all.length]!,
        none,
        w('sift_at_stop', weighted.siftAdaptive.sift),
        w('ttt_at_sift_stop', weighted.siftAdaptive.ttt),
      ],
    ],
    caption:
      `${siftCurve.caption} Adaptive SIFT stops a document where its uncertainty stops falling fast enough ` +
      '(eval.siftAlpha); its figure is each document at its own stop, pooled, beside TTT-NN with as many ' +
      'neighbors (— when no stop was recorded). Its picks are a prefix of SIFT’s, so nothing is trained twice.',
  };
  const siftRan = pooled.sift[0]!.documents > 0;
  const dynamicRan = pooled.split.before.documents > 0;

  const split = (d: DomainSummary) => d.split;
  const dynamicTable: Table = {
    id: 'dynamic',
    title: 'Dynamic evaluation (second half of each document)',
    columns: ['Domain', 'Documents', 'Bytes', 'Before training', 'Dynamic evaluation', `TTT-NN k=${k}`],
    rows: [
      ...all.map((d) => [
        text(label(d)),
        count(d, 'split_documents', split(d).before.documents),
        count(d, 'split_bytes', split(d).before.bytes),
        bpb(d, 'split_before', split(d).before),
        bpb(d, 'split_dynamic', split(d).dynamic),
        bpb(d, 'split_ttt', split(d).ttt),
      ]),
      [
        text(WEIGHTED_LABEL),
        none,
        none,
        w('split_before', weighted.split.before),
        w('split_dynamic', weighted.split.dynamic),
        w('split_ttt', weighted.split.ttt),
      ],
    ],
    caption:
      'Each document’s second half scored before training, after training on its first half (dynamic ' +
      'evaluation), and after TTT-NN on all its neighbors: the same bytes in all three columns.',
  };

  const baselineTable: Table = {
    id: 'baselines',
    title: 'Baseline coverage',
    columns: ['Domain', 'Evaluated', 'Random control', 'Dynamic evaluation', 'In-context'],
    rows: all.map((d) => [
      text(label(d)),
      count(d, 'evaluated', d.evaluated),
      count(d, 'random_documents', d.random[0]!.documents),
      count(d, 'split_documents', d.split.before.documents),
      count(d, 'in_context_documents', d.inContext.documents),
    ]),
    caption: 'Documents each baseline ran for; a figure is over exactly these documents (— when none).',
  };

  const reasons = [...new Set(all.flatMap((d) => Object.keys(d.skippedByReason)))].sort();
  const skipTable: Table = {
    id: 'skipped',
    title: 'Skipped documents',
    columns: ['Domain', 'Documents', 'Evaluated', ...reasons],
    rows: all.map((d) => [
      text(label(d)),
      count(d, 'documents', d.documents),
      count(d, 'evaluated', d.evaluated),
      ...reasons.map((r) => count(d, `skipped:${r}`, d.skippedByReason[r] ?? 0)),
    ]),
    caption: reasons.length === 0 ? 'No document was skipped.' : 'Skipped documents are counted, never dropped.',
  };

  const workTable: Table = {
    id: 'work',
    title: 'Neighbors, contamination and time',
    columns: [
      'Domain',
      'Neighbors (mean)',
      `Fewer than ${k} neighbors`,
      'Exact copies',
      'Documents with copies',
      'Copies left out',
      'Steps',
      'Training (s)',
      'Total (s)',
    ],
    rows: all.map((d) => [
      text(label(d)),
      number(d.evaluated > 0 ? d.neighbors / d.evaluated : NaN, (v) => format.decimal(v, 2), {
        domain: keyOf(d),
        metric: 'neighbors_mean',
      }),
      count(d, 'short_curves', d.shortCurves),
      count(d, 'exact_copies', d.exactCopies),
      count(d, 'documents_with_copies', d.documentsWithCopies),
      count(d, 'excluded_copies', d.excludedCopies),
      count(d, 'steps', d.steps),
      number(d.seconds.training, (v) => format.decimal(v, 1), { domain: keyOf(d), metric: 'seconds_training' }),
      number(d.seconds.total, (v) => format.decimal(v, 1), { domain: keyOf(d), metric: 'seconds_total' }),
    ]),
    caption:
      'Exact copies: neighbors whose text is byte-identical to the test document (test-set contamination). ' +
      'Time: summed over documents.',
  };

  return [
    summaryTable,
    curveTable(
      'ttt-nn',
      'TTT-NN: bits/byte after training on k neighbors',
      'ttt',
      'k = 0 is the model before training (no TTT).',
    ),
    curveTable(
      'random',
      'Random-neighbor control: bits/byte after training on k random documents',
      'random',
      'As many documents drawn uniformly from the index as the document has neighbors: what retrieval adds.',
    ),
    ...(siftRan ? [siftTable] : []),
    ...(dynamicRan ? [dynamicTable] : []), // the notes say which baselines did not run
    baselineTable,
    skipTable,
    workTable,
  ];
}

/** Notes under the tables: how figures were made and what is missing. */
export function reportNotes(summary: EvalSummary, meta: ReportMeta): string[] {
  const { k, pooled, weighted } = summary;
  const notes = [...meta.notes];
  notes.push(
    'Per domain, bits/byte is the sum of the documents’ NLL over the sum of their bytes / ln 2 ' +
      '(lm-evaluation-harness bits_per_byte), not a mean of per-document bits/byte. The pooled row does the same over ' +
      'all documents.',
  );
  notes.push(
    weighted.domains.length > 0
      ? `Pile-weighted: each domain’s bits/byte weighted by its share of the Pile (the reference code’s weights), ` +
          `renormalised over the ${weighted.domains.length} domain(s) present: ${weighted.domains.join(', ')}.`
      : 'Pile-weighted: no evaluated domain has a Pile weight, so there is no weighted figure.',
  );
  if (summary.unweighted.length > 0) {
    notes.push(
      `Not a Pile domain, so reported unweighted and left out of the Pile-weighted figure: ${summary.unweighted.join(', ')}.`,
    );
  }
  if (pooled.shortCurves > 0) {
    notes.push(
      `${pooled.shortCurves} of ${pooled.evaluated} evaluated documents had fewer than ${k} neighbors within the ` +
        'distance threshold; each counts at every k beyond its last neighbor with its last value.',
    );
  }
  if (pooled.skipped > 0) {
    const reasons = Object.entries(pooled.skippedByReason)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ');
    notes.push(`${pooled.skipped} of ${pooled.documents} documents were skipped (${reasons}); they add no bytes.`);
  }
  const coverage = (name: string, documents: number) => {
    if (documents === 0) notes.push(`The ${name} was not run.`);
    else if (documents < pooled.evaluated) {
      notes.push(
        `The ${name} ran for ${documents} of ${pooled.evaluated} evaluated documents; its figures are over those.`,
      );
    }
  };
  coverage('random-neighbor control', pooled.random[0]!.documents);
  if (pooled.sift[0]!.documents > 0) {
    coverage('SIFT baseline', pooled.sift[0]!.documents);
    notes.push(siftVerdict(summary));
  }
  coverage('dynamic-evaluation baseline', pooled.split.before.documents);
  coverage('in-context baseline', pooled.inContext.documents);
  return notes;
}

/** Whether SIFT beat nearest neighbors at K, pooled and per domain, said either way. */
export function siftVerdict(summary: EvalSummary): string {
  const { k, pooled, domains } = summary;
  const [sift, nn] = [pooled.sift[k]!.bitsPerByte, pooled.ttt[k]!.bitsPerByte];
  const ran = domains.filter((d) => d.sift[k]!.documents > 0);
  const ahead = ran.filter((d) => d.sift[k]!.bitsPerByte < d.ttt[k]!.bitsPerByte).length;
  const figures =
    `at k=${k}, ${format.bitsPerByte(sift)} bits/byte against TTT-NN's ${format.bitsPerByte(nn)} (pooled); ` +
    `lower in ${ahead} of ${ran.length} domain(s)`;
  return sift < nn
    ? `SIFT beats nearest neighbors here: ${figures}.`
    : `SIFT does not beat nearest neighbors here: ${figures}.`;
}

function metaRows(meta: ReportMeta): Cell[][] {
  const setting = (name: string, value: number): Cell[] => [
    text(name),
    number(value, format.plain, { domain: '', metric: name }),
  ];
  return [
    [text('Run'), text(meta.runId)],
    [text('Model'), text(meta.model)],
    [text('Encoder'), text(meta.encoder)],
    [text('Index build'), text(meta.indexBuild)],
    [text('Selection'), text(meta.selection)],
    [text('Backend'), text(meta.backend)],
    setting('K', meta.k),
    setting('lr', meta.lr),
    setting('max_length', meta.maxLength),
    ...(meta.started === undefined ? [] : [[text('Started'), text(meta.started)]]),
    ...(meta.finished === undefined ? [] : [[text('Finished'), text(meta.finished)]]),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Plots

export interface Plot {
  file: string;
  title: string;
  svg: string;
}

const SERIES = [
  'TTT-NN',
  'random neighbors',
  'SIFT',
  'no TTT',
  'in-context',
  '2nd half: before',
  '2nd half: dynamic',
  '2nd half: TTT-NN',
];
const LINES = ['TTT-NN', 'random neighbors', 'SIFT', 'no TTT'];
const DASHES: Record<string, number[]> = {
  'TTT-NN': [1, 0],
  'random neighbors': [6, 3],
  SIFT: [8, 2, 2, 2],
  'no TTT': [2, 2],
};
const SHAPES = ['circle', 'circle', 'circle', 'circle', 'diamond', 'square', 'triangle-up', 'cross'];
const COLORS = ['#1f77b4', '#ff7f0e', '#8c564b', '#7f7f7f', '#2ca02c', '#9467bd', '#d62728', '#17becf'];

/** bits/byte against k for one domain (or the pooled rows), with the baselines. */
export function curveSpec(d: DomainSummary, title: string, ks: number[]): TopLevelSpec {
  const k = d.ttt.length - 1;
  const values: { series: string; kind: 'line' | 'marker'; k: number; bpb: number }[] = [];
  const add = (series: string, kind: 'line' | 'marker', at: number, bpb: number) => {
    if (Number.isFinite(bpb)) values.push({ series, kind, k: at, bpb });
  };
  d.ttt.forEach((p, i) => add('TTT-NN', 'line', i, p.bitsPerByte));
  d.random.forEach((p, i) => add('random neighbors', 'line', i, p.bitsPerByte));
  d.sift.forEach((p, i) => add('SIFT', 'line', i, p.bitsPerByte));
  add('no TTT', 'line', 0, d.ttt[0]!.bitsPerByte);
  add('no TTT', 'line', k, d.ttt[0]!.bitsPerByte);
  add('in-context', 'marker', k, d.inContext.bitsPerByte);
  add('2nd half: before', 'marker', 0, d.split.before.bitsPerByte);
  add('2nd half: dynamic', 'marker', 0, d.split.dynamic.bitsPerByte);
  add('2nd half: TTT-NN', 'marker', k, d.split.ttt.bitsPerByte);
  const present = SERIES.filter((s) => values.some((v) => v.series === s));
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: null,
    scale: { domain: present, range: present.map((s) => COLORS[SERIES.indexOf(s)]!) },
  };
  const x = {
    field: 'k',
    type: 'quantitative' as const,
    title: 'neighbors trained on (k)',
    scale: { type: 'symlog' as const, domain: [0, Math.max(k, 1)] },
    axis: { values: ks, format: 'd' },
  };
  const y = { field: 'bpb', type: 'quantitative' as const, title: 'bits per byte', scale: { zero: false } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 260,
    data: { values },
    layer: [
      ...LINES.filter((s) => present.includes(s)).map((series) => ({
        transform: [{ filter: { field: 'series', equal: series } }],
        mark: { type: 'line' as const, point: k <= 20, strokeDash: DASHES[series] },
        encoding: { x, y, color },
      })),
      {
        transform: [{ filter: "datum.kind === 'marker'" }],
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x,
          y,
          color,
          shape: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: { domain: present, range: present.map((s) => SHAPES[SERIES.indexOf(s)]!) },
          },
        },
      },
    ],
  };
}

/** Per document: bits/byte before training against after K neighbors, by domain, with the diagonal. */
export function scatterSpec(rows: readonly EvalResultRow[], k: number): TopLevelSpec {
  const values = rows
    .filter((r) => r.skip_reason === '' && r.nll.length > 0)
    .map((r) => ({
      domain: r.domain,
      doc: r.doc_id,
      before: bitsPerByte(r.nll[0]!, r.bytes),
      after: bitsPerByte(curveAt(r.nll, k), r.bytes),
    }))
    .filter((v) => Number.isFinite(v.before) && Number.isFinite(v.after));
  const all = values.flatMap((v) => [v.before, v.after]);
  const lo = all.length > 0 ? Math.min(...all) : 0;
  const hi = all.length > 0 ? Math.max(...all) : 1;
  const pad = (hi - lo) * 0.05 || 0.05;
  const domain = [lo - pad, hi + pad];
  const scale = { domain, zero: false, nice: false };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Per document: bits/byte before and after TTT-NN (k=${k})`,
    width: 420,
    height: 420,
    layer: [
      {
        data: { values: [{ v: domain[0] }, { v: domain[1] }] },
        mark: { type: 'line', color: '#999999', strokeDash: [4, 4] },
        encoding: {
          x: { field: 'v', type: 'quantitative', scale },
          y: { field: 'v', type: 'quantitative', scale },
        },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, opacity: 0.7 },
        encoding: {
          x: { field: 'before', type: 'quantitative', title: 'bits/byte before (k=0)', scale },
          y: { field: 'after', type: 'quantitative', title: `bits/byte after (k=${k})`, scale },
          color: { field: 'domain', type: 'nominal', title: 'domain' },
        },
      },
    ],
  };
}

/** The report's plots: the pooled curve, one curve per domain, the per-document scatter. */
export async function renderPlots(summary: EvalSummary, rows: readonly EvalResultRow[]): Promise<Plot[]> {
  const specs: { file: string; title: string; spec: TopLevelSpec }[] = [];
  const curve = (d: DomainSummary, title: string, file: string) =>
    specs.push({ file, title, spec: curveSpec(d, title, summary.ks) });
  curve(summary.pooled, `${POOLED_LABEL}: bits/byte against neighbors`, 'curve-00-pooled.svg');
  summary.domains.forEach((d, i) =>
    curve(
      d,
      `${d.domain}: bits/byte against neighbors`,
      `curve-${String(i + 1).padStart(2, '0')}-${slug(d.domain)}.svg`,
    ),
  );
  specs.push({ file: 'scatter.svg', title: 'Per-document bits/byte', spec: scatterSpec(rows, summary.k) });
  const plots: Plot[] = [];
  for (const { file, title, spec } of specs) plots.push({ file, title, svg: await renderSvg(spec) });
  return plots;
}

let vegaModules: Promise<[typeof Vega, typeof VegaLite]> | undefined;

/** A Vega-Lite spec as SVG, rendered in Node by Vega's headless view. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  vegaModules ??= Promise.all([import('vega'), import('vega-lite')]);
  const [vega, vegaLite] = await vegaModules;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'domain'
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown and HTML

function renderMarkdown(meta: ReportMeta, tables: Table[], plots: Plot[], notes: string[]): string {
  const cell = (c: Cell) => c.text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const table = (columns: string[], rows: Cell[][]) =>
    [
      `| ${columns.map((c) => cell(text(c))).join(' | ')} |`,
      `| ${columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
      ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
    ].join('\n');
  const out = [`# TTT-NN evaluation ${meta.runId}`, '', table(['Setting', 'Value'], metaRows(meta)), ''];
  for (const t of tables) {
    out.push(`## ${t.title}`, '', table(t.columns, t.rows), '');
    if (t.caption !== undefined) out.push(t.caption, '');
  }
  out.push('## Plots', '');
  for (const p of plots) out.push(`![${p.title}](plots/${p.file})`, '');
  out.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return out.join('\n');
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlCell(c: Cell, tag: 'td' | 'th'): string {
  if (c.value === undefined) return `<${tag}>${escapeHtml(c.text)}</${tag}>`;
  const attrs = [`data-value="${String(c.value)}"`, 'class="num"'];
  if (c.key !== undefined) {
    attrs.push(`data-domain="${escapeHtml(c.key.domain)}"`, `data-metric="${escapeHtml(c.key.metric)}"`);
    if (c.key.k !== undefined) attrs.push(`data-k="${c.key.k}"`);
  }
  return `<${tag} ${attrs.join(' ')}>${escapeHtml(c.text)}</${tag}>`;
}

function htmlTable(id: string, columns: string[], rows: Cell[][], caption?: string): string {
  return [
    `<table id="${id}">`,
    `<thead><tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...rows.map((r) => `<tr>${r.map((c, i) => htmlCell(c, i === 0 ? 'th' : 'td')).join('')}</tr>`),
    '</tbody>',
    '</table>',
    ...(caption === undefined ? [] : [`<p class="caption">${escapeHtml(caption)}</p>`]),
  ].join('\n');
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ddd; }
thead th { text-align: right; border-bottom: 2px solid #888; }
thead th:first-child, tbody th { text-align: left; font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.caption { color: #555; font-size: 0.85rem; max-width: 60rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: 0.85rem; color: #555; }
`;

function renderHtml(meta: ReportMeta, tables: Table[], plots: Plot[], notes: string[]): string {
  const title = `TTT-NN evaluation ${meta.runId}`;
  const figures = plots.map((p) => {
    const src = `data:image/svg+xml;base64,${Buffer.from(p.svg, 'utf8').toString('base64')}`;
    return `<figure><img src="${src}" alt="${escapeHtml(p.title)}" data-plot="${escapeHtml(p.file)}"><figcaption>${escapeHtml(p.file)}</figcaption></figure>`;
  });
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(title)}</h1>`,
    htmlTable('settings', ['Setting', 'Value'], metaRows(meta)),
    ...tables.flatMap((t) => [`<h2>${escapeHtml(t.title)}</h2>`, htmlTable(t.id, t.columns, t.rows, t.caption)]),
    '<h2>Plots</h2>',
    `<div class="plots">${figures.join('\n')}</div>`,
    '<h2>Notes</h2>',
    `<ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('\n')}</ul>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
