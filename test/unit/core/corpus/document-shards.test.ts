import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ParquetReader } from '@dsnp/parquetjs';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  type DocumentRow,
  ROW_GROUP_LIMITS,
  readDocumentRows,
  readDocumentShard,
  writeDocumentShard,
} from '../../../../core/corpus/document-shards';

const MiB = 1024 * 1024;

/** A document of about `bytes` UTF-8 bytes (multi-byte characters included: the bound counts bytes). */
function doc(i: number, bytes: number): DocumentRow {
  const unit = `document ${i} é ${'lorem ipsum '.repeat(8)}\n`;
  const text = unit.repeat(Math.max(1, Math.round(bytes / Buffer.byteLength(unit))));
  return { doc_id: `d-${i}`, domain: 'Pile-CC', source_file: 'a.jsonl', line: i + 1, byte_length: 0, text };
}

/** Row counts of the file's row groups, as parquetjs and DuckDB each read them from the footer. */
async function rowGroups(file: string): Promise<number[]> {
  const reader = await ParquetReader.openFile(file);
  const counts = (reader.metadata?.row_groups ?? []).map((g) => Number(g.num_rows));
  await reader.close();
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  const read = await duck.runAndReadAll(
    `SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata('${file}') ORDER BY row_group_id`,
  );
  expect(read.getRows().map((r) => Number(r[1]))).toEqual(counts);
  return counts;
}

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-shards-'));
});
afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

describe('document shards', () => {
  test('a row group ends before the document that would take its text past the byte bound', async () => {
    // Small documents, then big ones (two fit in a group), one over the bound, and small ones again.
    const rows = [
      ...Array.from({ length: 20 }, (_, i) => doc(i, 10_000)),
      ...Array.from({ length: 3 }, (_, i) => doc(20 + i, 1.5 * MiB)),
      doc(23, 4.5 * MiB),
      ...Array.from({ length: 25 }, (_, i) => doc(24 + i, 200_000)),
    ];
    const file = path.join(dir, 'big.parquet');
    await writeDocumentShard(file, rows);

    const counts = await rowGroups(file);
    expect(counts.length).toBeGreaterThanOrEqual(5);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(rows.length);
    let first = 0;
    for (const count of counts) {
      const group = rows.slice(first, first + count);
      const bytes = group.reduce((sum, r) => sum + Buffer.byteLength(r.text), 0);
      if (count > 1) expect(bytes).toBeLessThanOrEqual(ROW_GROUP_LIMITS.textBytes);
      else if (bytes > ROW_GROUP_LIMITS.textBytes) expect(group[0]!.doc_id).toBe('d-23'); // alone in its group
      // Ended only where it had to: the next document would not have fitted.
      const next = rows[first + count];
      if (next) expect(bytes + Buffer.byteLength(next.text)).toBeGreaterThan(ROW_GROUP_LIMITS.textBytes);
      first += count;
    }
    expect(counts).toContain(1);

    // Readers see the rows as written, in any row group; the same rows write the same bytes.
    expect(await readDocumentShard(file)).toEqual(rows);
    const positions = [0, 21, 23, 24, rows.length - 1];
    const found = await readDocumentRows(file, positions);
    expect(positions.map((p) => found.get(p)?.doc_id)).toEqual(positions.map((p) => rows[p]!.doc_id));
    const again = path.join(dir, 'again.parquet');
    await writeDocumentShard(again, rows);
    expect((await fs.readFile(again)).equals(await fs.readFile(file))).toBe(true);
  });

  test('small documents still end a row group at the row limit', async () => {
    const rows = Array.from({ length: ROW_GROUP_LIMITS.rows + 5 }, (_, i) => doc(i, 50));
    const file = path.join(dir, 'small.parquet');
    await writeDocumentShard(file, rows);
    expect(await rowGroups(file)).toEqual([ROW_GROUP_LIMITS.rows, 5]);
    expect(await readDocumentShard(file)).toEqual(rows);
  });
});
