import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { summarize } from '../../core/eval/aggregate';
import { type EvalResultRow, writeResultsFile } from '../../core/eval/results';
import { EVAL_RUN_KIND, partKey } from '../../core/eval/run-layout';
import { MANIFEST_FILE, writeManifest } from '../../core/store/manifest';
import { openStore } from '../../core/store/open-store';
import { ensureNotebookPython } from '../../infra/notebook';
import { SYNTHETIC_K, syntheticRows } from '../helpers/report-figures';
import { testConfig } from '../test-config';
import { configEnv, uniqueName } from './harness';

const run = promisify(execFile);
const TTTNN = path.resolve(__dirname, '..', '..', 'bin', 'tttnn');

/**
 * The results notebook as a user runs it: `tttnn eval notebook <run>` executes notebooks/results.ipynb headless
 * (nbclient) in its pinned venv, reading a run's Parquet parts from the real S3 server through pyarrow's own S3
 * client. The notebook's per-domain table (DuckDB SQL) must equal the report's figures (core/eval/aggregate.ts);
 * its plots must be real pictures; a cell that raises must fail the command.
 */
describe('notebooks/results.ipynb over a run in S3', () => {
  const config = testConfig();
  const evalRoot = `s3://tttnn/${uniqueName('notebook-evals')}`;
  const env = { ...configEnv(config), TTTNN_EVAL_ROOT: evalRoot };
  let scratch: string;
  let rows: EvalResultRow[];

  beforeAll(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-notebook-'));
    // Two parts, as a run of more than PART_SIZE documents has: the notebook must read every part the manifest lists.
    rows = syntheticRows(12, 5);
    const half = Math.ceil(rows.length / 2);
    const store = openStore(`${evalRoot}/runs/small`, config);
    const objects = [];
    for (const [part, partRows] of [rows.slice(0, half), rows.slice(half)].entries()) {
      const local = path.join(scratch, `part-${part}.parquet`);
      await writeResultsFile(local, partRows);
      objects.push(await store.putFile(partKey(part), local));
    }
    await writeManifest(store, MANIFEST_FILE, EVAL_RUN_KIND, objects, {
      settings: { k: SYNTHETIC_K, lr: 2e-5, model: 'smollm2-135m' },
      summary: {},
    });
    await ensureNotebookPython(config.toolsDir, (line) => process.stderr.write(`[notebook] ${line}\n`));
  }, 600_000);

  afterAll(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  it("computes the report's per-domain figures from the Parquet, draws its plots, and keeps its outputs", async () => {
    const out = path.join(scratch, 'out');
    const { stdout } = await run(process.execPath, [TTTNN, 'eval', 'notebook', 'small', '-o', out], {
      env,
      timeout: 300_000,
    });
    expect(stdout).toContain('per_domain.csv');

    const summary = summarize(rows, SYNTHETIC_K);
    const table = parseCsv(await fs.readFile(path.join(out, 'per_domain.csv'), 'utf8'));
    expect(table.map((r) => r.domain)).toEqual(summary.domains.map((d) => d.domain));
    const ks = [0, 1, 2, 5, 10];
    for (const [i, domain] of summary.domains.entries()) {
      const row = table[i]!;
      expect(Number(row.documents)).toBe(domain.evaluated);
      expect(Number(row.skipped)).toBe(domain.skipped);
      expect(Number(row.bytes)).toBe(domain.bytes);
      for (const k of ks) expect(Number(row[`ttt_k${k}`])).toBeCloseTo(domain.ttt[k]!.bitsPerByte, 12);
      expect(Number(row[`random_k${SYNTHETIC_K}`])).toBeCloseTo(domain.random[SYNTHETIC_K]!.bitsPerByte, 12);
      expect(Number(row.in_context)).toBeCloseTo(domain.inContext.bitsPerByte, 12);
      expect(Number(row.reduction)).toBeCloseTo(domain.reduction, 12);
    }
    // One row per evaluated document, in selection order, before and after as the results store them.
    const documents = parseCsv(await fs.readFile(path.join(out, 'documents.csv'), 'utf8'));
    const evaluated = rows.filter((r) => r.skip_reason === '');
    expect(documents.map((d) => d.doc_id)).toEqual(evaluated.map((r) => r.doc_id));
    for (const [i, d] of documents.entries()) {
      expect(Number(d.before)).toBeCloseTo(evaluated[i]!.bits_per_byte[0]!, 12);
      expect(Number(d.after)).toBeCloseTo(evaluated[i]!.bits_per_byte.at(-1)!, 12);
    }

    // The plots are pictures with something drawn on them (Pillow, from the notebook's own venv).
    const python = await ensureNotebookPython(config.toolsDir, () => undefined);
    for (const plot of ['bits_per_byte_vs_neighbors.png', 'before_after.png']) {
      const { stdout: colors } = await run(python, [
        '-c',
        'import sys; from PIL import Image; im = Image.open(sys.argv[1]).convert("RGB"); ' +
          'print(im.width, im.height, len(im.getcolors(1 << 24)))',
        path.join(out, plot),
      ]);
      const [width, height, distinct] = colors.trim().split(' ').map(Number);
      expect(width).toBeGreaterThan(300);
      expect(height).toBeGreaterThan(300);
      expect(distinct).toBeGreaterThan(50); // lines, markers and text in several colours, not a blank canvas
    }

    // The executed copy keeps its outputs and has no error output.
    const executed = JSON.parse(await fs.readFile(path.join(out, 'results.ipynb'), 'utf8')) as {
      cells: { cell_type: string; outputs?: { output_type: string }[] }[];
    };
    const outputs = executed.cells.flatMap((c) => c.outputs ?? []);
    expect(outputs.filter((o) => o.output_type === 'display_data').length).toBeGreaterThanOrEqual(2);
    expect(outputs.filter((o) => o.output_type === 'error')).toEqual([]);
  }, 300_000);

  it('fails, naming the reason, when a cell raises (here: a run with no results)', async () => {
    const out = path.join(scratch, 'missing');
    const failed = await run(process.execPath, [TTTNN, 'eval', 'notebook', 'no-such-run', '-o', out], {
      env,
      timeout: 300_000,
    }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain(`no manifest.json in ${evalRoot}/runs/no-such-run`);
    expect(failed?.stderr).toContain(path.join(out, 'results.ipynb'));
  }, 300_000);
});

/** A CSV without quoted fields (the notebook's tables: names and numbers). */
function parseCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trim().split('\n');
  const names = header!.split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i]!, v])));
}
