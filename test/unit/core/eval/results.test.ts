import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  type EvalResultRow,
  RESULT_SCHEMA,
  decodeRow,
  encodeRow,
  readResultsFile,
  skippedRow,
  writeResultsFile,
} from '../../../../core/eval/results';

const meta = { backend: 'tensorflow', model_digest: 'sha256:aa', index_build: 'b1' };
const evaluated: EvalResultRow = {
  ...skippedRow({ doc_index: 0, doc_id: 'd-é', domain: 'ArXiv', bytes: 1200, tokens: 300, skip_reason: '', ...meta }),
  bits_per_byte: [1.25, 1.125, 1.0625],
  nll: [1039.7, 935.7, 884.3],
  neighbor_ids: ['n1', 'n2'],
  neighbor_distances: [0, 0.5],
  neighbor_domains: ['ArXiv', 'Github'],
  neighbor_losses: [2.5, NaN],
  exact_copies: 1,
  steps: 3,
  random_bits_per_byte: [1.25, 1.2, 1.19],
  random_nll: [1039.7, 998.1, 989.9],
  random_steps: 4,
  sift_bits_per_byte: [1.25, 1.1, 1.05],
  sift_nll: [1039.7, 914.9, 873.2],
  sift_steps: 5,
  sift_neighbor_ids: ['n2', 'n2'],
  sift_stop: 1,
  split_bytes: 600,
  split_tokens: 150,
  split_nll_before: 500.5,
  split_nll_dynamic: 480.25,
  split_nll_ttt: 470.125,
  dynamic_steps: 1,
  in_context_nll: 1000.5,
  seconds_selection: 0.004,
  seconds_training: 12.5,
  seconds_evaluation: 3.25,
  seconds_total: 16,
};
const skipped = skippedRow({
  doc_index: 1,
  doc_id: 'd2',
  domain: 'Github',
  bytes: 0,
  tokens: 0,
  skip_reason: 'empty_after_tokenizing',
  ...meta,
});

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-results-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('results round-trip through parquetjs (NaN, empty lists, skipped rows) and DuckDB reads lists as lists', async () => {
  const file = path.join(dir, 'part.parquet');
  await writeResultsFile(file, [evaluated, skipped]);
  const back = await readResultsFile(file);
  expect(back).toEqual([evaluated, skipped]);

  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const reader = await db.runAndReadAll(
    `select doc_id, len(bits_per_byte) as k1, nll[3] as nll2, neighbor_domains[2] as d2, skip_reason,
            sum(nll[1]) over () / sum(bytes) over () / ln(2) as pooled
     from read_parquet('${file}') order by doc_index`,
  );
  const rows = reader.getRowObjectsJson();
  expect(rows[0]).toMatchObject({ doc_id: 'd-é', k1: '3', nll2: 884.3, d2: 'Github', skip_reason: '' });
  expect(rows[1]).toMatchObject({ doc_id: 'd2', k1: '0', skip_reason: 'empty_after_tokenizing' });
  expect(Number(rows[0]!.pooled)).toBeCloseTo(1039.7 / 1200 / Math.LN2, 10);
});

test('rows written before the SIFT columns read back as rows without the baseline', async () => {
  const older = Object.fromEntries(
    Object.entries(evaluated).filter(([column]) => !column.startsWith('sift_') && column !== 'seconds_selection'),
  );
  const fields = Object.fromEntries(
    Object.entries(RESULT_SCHEMA.schema).filter(([c]) => !c.startsWith('sift_') && c !== 'seconds_selection'),
  );
  const file = path.join(dir, 'older.parquet');
  const writer = await ParquetWriter.openFile(new ParquetSchema(fields), file, { useDataPageV2: false });
  await writer.appendRow(older);
  await writer.close();
  const withoutSift = { sift_bits_per_byte: [], sift_nll: [], sift_neighbor_ids: [], sift_steps: 0, sift_stop: -1 };
  expect(await readResultsFile(file)).toEqual([{ ...evaluated, ...withoutSift, seconds_selection: 0 }]);
  expect(decodeRow(encodeRow(older as unknown as EvalResultRow))).toEqual({
    ...evaluated,
    ...withoutSift,
    seconds_selection: 0,
  });
});

test('a committed document (JSON) keeps NaN, infinities and ids that look like numbers', () => {
  const row = { ...evaluated, doc_id: 'NaN', neighbor_ids: ['Infinity', '1'], in_context_nll: -Infinity };
  expect(decodeRow(encodeRow(row))).toEqual(row);
});
