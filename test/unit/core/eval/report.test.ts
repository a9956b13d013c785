import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PILE_WEIGHTS,
  curveAt,
  pileWeight,
  reportKs,
  summarize,
  summarizeDomain,
} from '../../../../core/eval/aggregate';
import { FRESH_OPTIMIZER_NOTE, type ReportMeta, reportNotes, writeReport } from '../../../../core/eval/report';
import { type EvalResultRow, readResultsFile, skippedRow, writeResultsFile } from '../../../../core/eval/results';
import { SYNTHETIC_K, figureKey, figuresFromParquet, syntheticRows } from '../../../helpers/report-figures';

const LN2 = Math.LN2;
const common = { backend: 'tensorflow', model_digest: 'sha256:00', index_build: 'b1' };

/** An evaluated row from bits/byte curves (NLL = bits/byte × bytes × ln 2). */
function row(domain: string, docId: string, bytes: number, bpb: number[], extra: Partial<EvalResultRow> = {}) {
  const base = skippedRow({
    doc_index: 0,
    doc_id: docId,
    domain,
    bytes,
    tokens: bytes / 4,
    skip_reason: '',
    ...common,
  });
  const nll = bpb.map((b) => b * bytes * LN2);
  return { ...base, bits_per_byte: bpb, nll, ...extra };
}
function skipped(domain: string, docId: string, reason: string): EvalResultRow {
  return skippedRow({ doc_index: 0, doc_id: docId, domain, bytes: 10, tokens: 0, skip_reason: reason, ...common });
}

const meta: ReportMeta = {
  runId: 'run-1',
  model: 'smollm2-135m',
  encoder: 'all-minilm-l6-v2',
  indexBuild: 'b1',
  k: SYNTHETIC_K,
  lr: 2e-5,
  maxLength: 512,
  selection: '12 per domain, seed 1216',
  backend: 'tensorflow',
  started: '2025-01-01T00:00:00Z',
  notes: [FRESH_OPTIMIZER_NOTE],
};

test('k values shown: 0, 1, 2, 5, 10, 20, 50, … up to K, and K', () => {
  expect(reportKs(50)).toEqual([0, 1, 2, 5, 10, 20, 50]);
  expect(reportKs(20)).toEqual([0, 1, 2, 5, 10, 20]);
  expect(reportKs(30)).toEqual([0, 1, 2, 5, 10, 20, 30]);
  expect(reportKs(200)).toEqual([0, 1, 2, 5, 10, 20, 50, 100, 200]);
  expect(reportKs(3)).toEqual([0, 1, 2, 3]);
  expect(reportKs(0)).toEqual([0]);
});

test('Pile domain names as the Pile spells them map to the reference weights; others have none', () => {
  const names: Record<string, number> = {
    ArXiv: 8.96,
    'DM Mathematics': 1.24,
    FreeLaw: 6.12,
    Github: 7.59,
    'Pile-CC': 18.11,
    StackExchange: 5.13,
    'USPTO Backgrounds': 3.65,
    'PubMed Central': 14.4,
    'Wikipedia (en)': 1.53,
    HackerNews: 0.62,
    'Enron Emails': 0.14,
    OpenWebText2: 10.01,
    Books3: 12.07,
    BookCorpus2: 0.75,
    'Gutenberg (PG-19)': 2.17,
    'NIH ExPorter': 0.3,
    OpenSubtitles: 1.55,
    PhilPapers: 0.38,
    'PubMed Abstracts': 3.07,
    'Ubuntu IRC': 0.88,
    YoutubeSubtitles: 0.6,
    EuroParl: 0.73,
  };
  for (const [name, weight] of Object.entries(names)) expect([name, pileWeight(name)]).toEqual([name, weight]);
  // Every weight is reached by exactly one Pile name, and together they are the whole Pile.
  expect(Object.keys(PILE_WEIGHTS)).toHaveLength(Object.keys(names).length);
  expect(Object.values(PILE_WEIGHTS).reduce((a, b) => a + b, 0)).toBeCloseTo(100, 1);
  expect(pileWeight('Sample Notes')).toBeUndefined();
  expect(pileWeight('Wikipedia')).toBeUndefined();
});

test('per domain: sum of NLL over sum of bytes, short curves keep their last value, skips counted', () => {
  const K = 2;
  const rows = [
    row('ArXiv', 'a1', 100, [1.0, 0.8, 0.6], {
      random_nll: [100 * LN2, 95 * LN2, 90 * LN2],
      split_bytes: 50,
      split_nll_before: 40,
      split_nll_dynamic: 35,
      split_nll_ttt: 30,
      exact_copies: 1,
      excluded_copies: 1,
    }),
    row('ArXiv', 'a2', 300, [2.0, 1.5]), // one neighbor only; no baselines
    skipped('ArXiv', 'a3', 'over_size_limit'),
    skipped('ArXiv', 'a4', 'empty_after_tokenizing'),
    skipped('ArXiv', 'a5', 'empty_after_tokenizing'),
  ];
  const d = summarizeDomain('ArXiv', rows, K);
  expect(d).toMatchObject({ documents: 5, evaluated: 2, skipped: 3, bytes: 400, shortCurves: 1, pileWeight: 8.96 });
  expect(d.skippedByReason).toEqual({ over_size_limit: 1, empty_after_tokenizing: 2 });
  // (100·1.0 + 300·2.0) / 400 — byte-weighted, not the mean of 1.0 and 2.0.
  expect(d.ttt.map((p) => p.bitsPerByte)).toEqual([
    expect.closeTo((100 * 1.0 + 300 * 2.0) / 400, 12),
    expect.closeTo((100 * 0.8 + 300 * 1.5) / 400, 12),
    expect.closeTo((100 * 0.6 + 300 * 1.5) / 400, 12), // a2 stopped at k=1: its last value counts at k=2
  ]);
  expect(d.ttt[K]!.bitsPerByte).not.toBeCloseTo((0.6 + 1.5) / 2, 3);
  expect(d.reduction).toBeCloseTo((1.75 - 1.275) / 1.75, 12);
  // The random control ran for a1 only: its figure is over a1's bytes.
  expect(d.random.map((p) => [p.documents, p.bytes])).toEqual([
    [1, 100],
    [1, 100],
    [1, 100],
  ]);
  expect(d.random[2]!.bitsPerByte).toBeCloseTo(0.9, 12);
  expect(d.split.before).toMatchObject({ documents: 1, bytes: 50, bitsPerByte: expect.closeTo(40 / 50 / LN2, 12) });
  expect(d.split.dynamic.bitsPerByte).toBeCloseTo(35 / 50 / LN2, 12);
  expect(d.split.ttt.bitsPerByte).toBeCloseTo(30 / 50 / LN2, 12);
  expect(d.inContext).toEqual({ bitsPerByte: NaN, nll: 0, bytes: 0, documents: 0 });
  expect(d).toMatchObject({ exactCopies: 1, excludedCopies: 1, documentsWithCopies: 1, neighbors: 3 });

  expect(curveAt([3, 2, 1], 7)).toBe(1);
  expect(() => summarizeDomain('ArXiv', [row('ArXiv', 'x', 10, [1, 1, 1, 1])], K)).toThrow(/more than K = 2/);
  expect(() => summarizeDomain('ArXiv', [row('ArXiv', 'x', 10, [])], K)).toThrow(/no curve/);
});

test('pooled over every byte; Pile-weighted over the domains with a weight, renormalised; unknown named', () => {
  const rows = [
    row('ArXiv', 'a', 100, [1.0, 0.9]),
    row('Github', 'g', 300, [2.0, 1.6], { in_context_nll: 1.9 * 300 * LN2 }),
    row('Sample Notes', 's', 1000, [3.0, 2.0]),
    skipped('Pile-CC', 'p', 'empty_after_tokenizing'), // a Pile domain with nothing evaluated: no weight taken
  ];
  const s = summarize(rows, 1);
  expect(s.domains.map((d) => d.domain)).toEqual(['ArXiv', 'Github', 'Pile-CC', 'Sample Notes']);
  expect(s.pooled.ttt[0]!.bitsPerByte).toBeCloseTo((100 * 1 + 300 * 2 + 1000 * 3) / 1400, 12);
  expect(s.pooled.ttt[1]!.bitsPerByte).toBeCloseTo((100 * 0.9 + 300 * 1.6 + 1000 * 2) / 1400, 12);
  expect(s.weighted.domains).toEqual(['ArXiv', 'Github']);
  expect(s.unweighted).toEqual(['Sample Notes']);
  expect(s.weighted.ttt[0]).toBeCloseTo((8.96 * 1.0 + 7.59 * 2.0) / (8.96 + 7.59), 12);
  expect(s.weighted.ttt[1]).toBeCloseTo((8.96 * 0.9 + 7.59 * 1.6) / (8.96 + 7.59), 12);
  // In-context ran in Github only: the weighted figure is Github's, its weight renormalised to 1.
  expect(s.weighted.inContext).toBeCloseTo(1.9, 12);
  expect(s.weighted.random).toEqual([NaN, NaN]);
  expect(s.weighted.split.dynamic).toBeNaN();

  const notes = reportNotes(s, { ...meta, k: 1 }).join('\n');
  expect(notes).toContain('Sample Notes');
  expect(notes).toMatch(/renormalised over the 2 domain\(s\) present: ArXiv, Github/);
  expect(notes).toContain('The random-neighbor control was not run.');
  expect(notes).toContain('The dynamic-evaluation baseline was not run.');
  expect(notes).toContain('The in-context baseline ran for 1 of 3 evaluated documents');
  expect(notes).toContain('1 of 4 documents were skipped (empty_after_tokenizing 1)');
  expect(notes).toContain(FRESH_OPTIMIZER_NOTE);
  expect(notes).not.toContain('fewer than');
});

test('SIFT: its curve, each document at its own adaptive stop beside TTT-NN at the same k, and a verdict either way', () => {
  const K = 2;
  const nll = (bytes: number, bpb: number[]) => bpb.map((b) => b * bytes * LN2);
  const rows = [
    // SIFT worse than nearest neighbors at K in both documents; the first stopped after 1 pick, the second has no α.
    row('ArXiv', 'a1', 100, [1.0, 0.8, 0.6], { sift_nll: nll(100, [1.0, 0.9, 0.7]), sift_stop: 1 }),
    row('Github', 'g1', 300, [2.0, 1.5, 1.4], { sift_nll: nll(300, [2.0, 1.6, 1.5]), sift_stop: -1 }),
    row('Github', 'g2', 100, [2.0, 1.5, 1.4]), // SIFT not run
  ];
  const s = summarize(rows, K);
  expect(s.pooled.sift.map((p) => p.documents)).toEqual([2, 2, 2]);
  expect(s.pooled.sift[2]!.bitsPerByte).toBeCloseTo((100 * 0.7 + 300 * 1.5) / 400, 12);
  expect(s.pooled.siftAdaptive.sift).toMatchObject({ documents: 1, bitsPerByte: expect.closeTo(0.9, 12) });
  expect(s.pooled.siftAdaptive.ttt.bitsPerByte).toBeCloseTo(0.8, 12);
  expect(s.pooled.siftAdaptive.meanStop).toBe(1);
  expect(s.domains[1]!.siftAdaptive.meanStop).toBeNaN(); // Github: no stop recorded
  const notes = reportNotes(s, { ...meta, k: K }).join('\n');
  expect(notes).toMatch(/SIFT does not beat nearest neighbors here: at k=2, .* \(pooled\); lower in 0 of 2 domain/);
  expect(notes).toContain('The SIFT baseline ran for 2 of 3 evaluated documents');

  const better = summarize([row('ArXiv', 'a1', 100, [1.0, 0.8, 0.6], { sift_nll: nll(100, [1, 0.7, 0.5]) })], K);
  expect(reportNotes(better, { ...meta, k: K }).join('\n')).toContain('SIFT beats nearest neighbors here');
  // A run without SIFT says nothing of it (its report is as before the baseline existed).
  expect(reportNotes(summarize([row('ArXiv', 'a1', 100, [1.0, 0.8, 0.6])], K), meta).join('\n')).not.toContain('SIFT');
});

test('a run with nothing evaluated, or with odd domain names, still makes a report', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-report-edge-'));
  try {
    const empty = await writeReport([skipped('ArXiv', 'a', 'over_size_limit')], meta, path.join(dir, 'empty'));
    expect(empty.summary.pooled).toMatchObject({ evaluated: 0, skipped: 1 });
    expect(empty.files.plots).toHaveLength(3);
    const md = await fs.readFile(empty.files.markdown, 'utf8');
    expect(md).toContain('| ArXiv | 8.96 | 0 | 1 | 0 | — | — | — | — | — |');
    expect(md).toContain('The random-neighbor control was not run.');

    const odd = await writeReport([row('A|B <x> & "y"', 'o', 100, [1, 0.5])], { ...meta, k: 1 }, path.join(dir, 'odd'));
    expect(await fs.readFile(odd.files.markdown, 'utf8')).toContain('| A\\|B <x> & "y" | unknown | 1 |');
    const html = await fs.readFile(odd.files.html, 'utf8');
    expect(html).toContain('<th>A|B &lt;x&gt; &amp; &quot;y&quot;</th>');
    expect(html).toContain('data-domain="A|B &lt;x&gt; &amp; &quot;y&quot;" data-metric="ttt" data-k="1">0.5000<');
    expect(odd.files.plots.map((p) => path.basename(p))).toContain('curve-01-a-b-x-y.svg');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

describe('a report from a results Parquet file', () => {
  let dir: string;
  let html: string;
  let markdown: string;
  let figures: Map<string, number>;
  let plots: string[];
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-report-'));
    const file = path.join(dir, 'part-00000.parquet');
    await writeResultsFile(file, syntheticRows());
    const rows = await readResultsFile(file);
    const { files } = await writeReport(rows, meta, path.join(dir, 'report'));
    html = await fs.readFile(files.html, 'utf8');
    markdown = await fs.readFile(files.markdown, 'utf8');
    plots = files.plots;
    figures = await figuresFromParquet(file, reportKs(SYNTHETIC_K));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('every number on the page equals DuckDB SQL over the Parquet file', () => {
    const cells = htmlCells(html).filter((c) => c.attrs['data-value'] !== undefined);
    expect(cells.length).toBeGreaterThan(250);
    let compared = 0;
    for (const cell of cells) {
      const { 'data-domain': domain, 'data-metric': metric, 'data-k': k } = cell.attrs;
      const value = Number(cell.attrs['data-value']);
      if (domain === '') continue; // the run's settings
      const key = figureKey(domain!, metric!, k === undefined ? undefined : Number(k));
      // SQL has no row for a figure over no documents: a count of 0, a bits/byte the page shows as "—".
      const counted = /_documents$|^skipped:/.test(metric!);
      const expected = figures.get(key) ?? (counted ? 0 : NaN);
      if (Number.isNaN(expected)) expect([key, value, cell.text]).toEqual([key, NaN, '—']);
      else expect([key, value]).toEqual([key, expect.closeTo(expected, 10)]);
      compared += 1;
    }
    expect(compared).toBe(cells.length - 3); // all but K, lr, max_length
    // The synthetic rows cover what the report must handle.
    expect(figures.get(figureKey('(pooled)', 'short_curves'))).toBeGreaterThan(0);
    expect(figures.get(figureKey('(pooled)', 'skipped:over_size_limit'))).toBe(1);
    expect(html).toContain('data-domain="Sample Notes" data-metric="ttt" data-k="10"');
    expect(html).toContain('data-domain="(pile-weighted)" data-metric="ttt" data-k="10"');
    for (const metric of ['sift', 'sift_at_stop', 'ttt_at_sift_stop', 'sift_stop_mean']) {
      expect(html).toContain(`data-domain="(pooled)" data-metric="${metric}"`);
    }
  });

  test('Markdown and HTML show the same tables with the same text', () => {
    const mdRows = markdown
      .split('\n')
      .filter((line) => line.startsWith('| ') && !line.startsWith('| ---'))
      .map((line) =>
        line
          .slice(2, -2)
          .split(' | ')
          .map((c) => c.trim()),
      );
    const htmlRows = [...html.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => htmlCells(m[1]!).map((c) => c.text));
    expect(mdRows.length).toBeGreaterThan(40);
    expect(mdRows).toEqual(htmlRows);
    expect(markdown).toContain('(plots/scatter.svg)');
  });

  test('plots: one curve per domain and pooled, and the scatter, as SVG with drawn marks', async () => {
    expect(plots.map((p) => path.basename(p))).toEqual([
      'curve-00-pooled.svg',
      'curve-01-arxiv.svg',
      'curve-02-github.svg',
      'curve-03-gutenberg-pg-19.svg',
      'curve-04-sample-notes.svg',
      'curve-05-wikipedia-en.svg',
      'scatter.svg',
    ]);
    for (const plot of plots) {
      const svg = await fs.readFile(plot, 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toMatch(/class="mark-(line|symbol)/);
      expect(svg).toMatch(/<path [^>]*d="M[-\d.]/);
      // Inlined in the page as it is on disk.
      expect(html).toContain(Buffer.from(svg).toString('base64'));
    }
  });
});

/** `<td>`/`<th>` cells of an HTML fragment: their text (entities decoded) and attributes. */
function htmlCells(fragment: string): { text: string; attrs: Record<string, string> }[] {
  const decode = (s: string) =>
    s
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&');
  return [...fragment.matchAll(/<(td|th)((?: [a-z-]+="[^"]*")*)>([^<]*)<\/\1>/g)].map((m) => ({
    text: decode(m[3]!),
    attrs: Object.fromEntries([...m[2]!.matchAll(/ ([a-z-]+)="([^"]*)"/g)].map((a) => [a[1]!, decode(a[2]!)])),
  }));
}
