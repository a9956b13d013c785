import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { reportKs } from '../../core/eval/aggregate';
import { FRESH_OPTIMIZER_NOTE, writeReport } from '../../core/eval/report';
import { readResultsFile, writeResultsFile } from '../../core/eval/results';
import { ensureChromium } from '../../infra/chromium';
import { SYNTHETIC_K, type Figures, figureKey, figuresFromParquet, syntheticRows } from '../helpers/report-figures';
import { testConfig } from '../test-config';

/**
 * The report as a person opens it: report.html in headless Chromium (Debian's, see infra/chromium.ts), driven by
 * playwright-core. The page must load without errors, every plot must decode to a non-blank picture drawn from
 * real marks, and every number on it must equal DuckDB's SQL over the results Parquet file.
 */
/** The browser globals the page functions below use (the project compiles without TypeScript's DOM library). */
interface PageCanvas {
  width: number;
  height: number;
  getContext(kind: '2d'): {
    drawImage(image: unknown, x: number, y: number): void;
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
  } | null;
}
interface PageElement {
  getAttribute(name: string): string | null;
  textContent: string | null;
  offsetWidth: number;
}
interface PageImage {
  src: string;
  naturalWidth: number;
  naturalHeight: number;
  dataset: Record<string, string | undefined>;
  decode(): Promise<void>;
}
declare const document: { createElement(tag: 'canvas'): PageCanvas };
declare const DOMParser: new () => {
  parseFromString(text: string, type: string): { querySelectorAll(selector: string): Iterable<PageElement> };
};

let dir: string;
let htmlFile: string;
let plotCount: number;
let figures: Figures;
let browser: Browser;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-report-browser-'));
  const parquet = path.join(dir, 'part-00000.parquet');
  await writeResultsFile(parquet, syntheticRows(20, 11));
  const meta = {
    runId: 'browser-check',
    model: 'smollm2-135m',
    encoder: 'all-minilm-l6-v2',
    indexBuild: 'build-1',
    k: SYNTHETIC_K,
    lr: 2e-5,
    maxLength: 512,
    selection: '20 per domain, seed 11',
    backend: 'tensorflow',
    notes: [FRESH_OPTIMIZER_NOTE],
  };
  const { files } = await writeReport(await readResultsFile(parquet), meta, path.join(dir, 'report'));
  htmlFile = files.html;
  plotCount = files.plots.length;
  figures = await figuresFromParquet(parquet, reportKs(SYNTHETIC_K));
  // Cold: Debian's chromium and the libraries this machine lacks are fetched and unpacked (~15 s here); then cached.
  const executablePath = await ensureChromium(testConfig().toolsDir, (line) =>
    process.stderr.write(`[chromium] ${line}\n`),
  );
  browser = await chromium.launch({ executablePath });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

test('report.html: no console errors, every plot drawn, every number equal to SQL over the Parquet rows', async () => {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url().slice(0, 80)}`));
  await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });

  // Each plot: decoded, drawn onto a canvas and its pixels counted; its SVG parsed for Vega's marks.
  const plots = await page.$$eval('img', (images: PageImage[]) =>
    Promise.all(
      images.map(async (img) => {
        await img.decode();
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        if (context === null) throw new Error('no 2d context');
        context.drawImage(img, 0, 0);
        const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let ink = 0;
        let colored = 0;
        for (let i = 0; i < pixels.length; i += 4) {
          const [r, g, b, a] = [pixels[i]!, pixels[i + 1]!, pixels[i + 2]!, pixels[i + 3]!];
          if (a > 0 && Math.min(r, g, b) < 200) ink += 1;
          if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) colored += 1;
        }
        const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(), 'image/svg+xml');
        const marks = [...svg.querySelectorAll('g.mark-line path, g.mark-symbol path')].filter(
          (p) => (p.getAttribute('d') ?? '').length > 2,
        ).length;
        return {
          plot: img.dataset.plot,
          width: img.naturalWidth,
          height: img.naturalHeight,
          inkShare: ink / (canvas.width * canvas.height),
          colored,
          marks,
        };
      }),
    ),
  );
  expect(plots).toHaveLength(plotCount);
  for (const plot of plots) {
    expect(plot).toMatchObject({
      width: expect.any(Number),
      inkShare: expect.any(Number),
      colored: expect.any(Number),
      marks: expect.any(Number),
    });
    expect([plot.plot, plot.width > 300, plot.height > 200]).toEqual([plot.plot, true, true]);
    // Axes, text and data: well above a blank or axes-only picture, and in colour (the data are).
    expect([plot.plot, plot.inkShare > 0.01, plot.colored > 200, plot.marks >= 2]).toEqual([
      plot.plot,
      true,
      true,
      true,
    ]);
  }

  const cells = await page.$$eval('[data-value]', (elements: PageElement[]) =>
    elements.map((e) => ({
      value: Number(e.getAttribute('data-value')),
      domain: e.getAttribute('data-domain') ?? '',
      metric: e.getAttribute('data-metric') ?? '',
      k: e.getAttribute('data-k'),
      text: e.textContent ?? '',
      visible: e.offsetWidth > 0,
    })),
  );
  const figuresShown = cells.filter((c) => c.domain !== '');
  expect(figuresShown.length).toBeGreaterThan(250);
  for (const cell of figuresShown) {
    const key = figureKey(cell.domain, cell.metric, cell.k === null ? undefined : Number(cell.k));
    const counted = /_documents$|^skipped:/.test(cell.metric);
    const expected = figures.get(key) ?? (counted ? 0 : NaN);
    if (Number.isNaN(expected)) expect([key, cell.value, cell.text]).toEqual([key, NaN, '—']);
    else expect([key, cell.value]).toEqual([key, expect.closeTo(expected, 10)]);
    expect([key, cell.visible]).toEqual([key, true]);
  }
  expect(problems).toEqual([]);
  await page.close();
});
