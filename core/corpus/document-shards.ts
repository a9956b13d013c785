import { ParquetReader, ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';

/**
 * One Parquet row per ingested document. `doc_id` is stable: it depends only on the source file's name
 * and the line, so re-ingesting the same input gives the same ids (and byte-identical shards).
 */
export interface DocumentRow {
  doc_id: string;
  domain: string;
  source_file: string;
  line: number;
  byte_length: number;
  text: string;
}

export const PARQUET_COMPRESSIONS = ['UNCOMPRESSED', 'GZIP', 'SNAPPY', 'BROTLI'] as const;
export type ParquetCompression = (typeof PARQUET_COMPRESSIONS)[number];

function documentSchema(compression: ParquetCompression): ParquetSchema {
  return new ParquetSchema({
    doc_id: { type: 'UTF8', compression },
    domain: { type: 'UTF8', compression },
    source_file: { type: 'UTF8', compression },
    line: { type: 'INT64', compression },
    byte_length: { type: 'INT64', compression },
    text: { type: 'UTF8', compression },
  });
}

/**
 * When a row group ends: at `rows` rows, or before the row that would take its texts (UTF-8) past `textBytes`. A
 * reader of one neighbor's text decodes its whole row group, so the bytes bound what that costs, and a shard of long
 * documents stays bounded in memory while writing; a document longer than the bound has a row group of its own.
 * Part of the ingest version: other limits lay out other shards.
 */
export const ROW_GROUP_LIMITS = { rows: 2048, textBytes: 4 * 1024 * 1024 } as const;

/**
 * Snappy: the Parquet ecosystem's default codec. Measured on 210 MB of generated Pile text (bench:ingest input):
 * write 5.1 s / 138 MB with Snappy, 15.8 s / 81 MB with GZIP (zlib level 6), 3.3 s / 211 MB uncompressed.
 * (parquetjs has no zstd.)
 */
export const DEFAULT_COMPRESSION: ParquetCompression = 'SNAPPY';

/**
 * Streams rows into a local Parquet file, holding one row group at a time. Output depends only on the rows.
 *
 * parquetjs ends a row group only inside appendRow, once the row it was given makes `rowGroupSize` rows, and has no
 * public flush. So each row is held back until the next arrives: only then is it known whether that next row fits
 * in the group, and the held row is appended with `rowGroupSize` set to end the group with it when it does not.
 */
export class DocumentShardWriter {
  /** The row not yet handed to parquetjs, and its text's UTF-8 length. */
  private held: { row: DocumentRow; textBytes: number } | undefined;
  /** Rows and text bytes in the row group being filled (handed to parquetjs, not yet written). */
  private groupRows = 0;
  private groupTextBytes = 0;

  private constructor(private readonly writer: ParquetWriter) {}

  static async open(localPath: string, compression: ParquetCompression = DEFAULT_COMPRESSION) {
    // Data page v1: the most widely readable layout (DuckDB, pyarrow, Spark).
    const writer = await ParquetWriter.openFile(documentSchema(compression), localPath, {
      rowGroupSize: ROW_GROUP_LIMITS.rows,
      useDataPageV2: false,
    });
    return new DocumentShardWriter(writer);
  }

  async append(row: DocumentRow): Promise<void> {
    const next = { row, textBytes: Buffer.byteLength(row.text, 'utf8') };
    if (this.held) {
      const bytes = this.groupTextBytes + this.held.textBytes;
      await this.appendHeld(bytes + next.textBytes > ROW_GROUP_LIMITS.textBytes);
    }
    this.held = next;
  }

  async close(): Promise<void> {
    if (this.held) await this.appendHeld(true);
    await this.writer.close();
  }

  /** Hands the held row to parquetjs, ending the row group with it if `endsGroup` (or at the row limit). */
  private async appendHeld(endsGroup: boolean): Promise<void> {
    const { row, textBytes } = this.held!;
    this.held = undefined;
    this.writer.setRowGroupSize(endsGroup ? this.groupRows + 1 : ROW_GROUP_LIMITS.rows);
    await this.writer.appendRow({ ...row });
    this.groupRows += 1;
    this.groupTextBytes += textBytes;
    if (endsGroup || this.groupRows === ROW_GROUP_LIMITS.rows) {
      this.groupRows = 0;
      this.groupTextBytes = 0;
    }
  }
}

export async function writeDocumentShard(
  localPath: string,
  rows: readonly DocumentRow[],
  compression: ParquetCompression = DEFAULT_COMPRESSION,
): Promise<void> {
  const writer = await DocumentShardWriter.open(localPath, compression);
  for (const row of rows) await writer.append(row);
  await writer.close();
}

export async function readDocumentShard(localPath: string): Promise<DocumentRow[]> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const cursor = reader.getCursor();
    const rows: DocumentRow[] = [];
    for (let record = await cursor.next(); record; record = await cursor.next()) {
      rows.push(toDocumentRow(record as Record<string, unknown>));
    }
    return rows;
  } finally {
    await reader.close();
  }
}

/** What a shard's documents are without their text (ids, domains, sizes): only those columns are read. */
export type DocumentListing = Pick<DocumentRow, 'doc_id' | 'domain' | 'byte_length'>;

export async function readDocumentListing(localPath: string): Promise<DocumentListing[]> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const cursor = reader.getCursor([['doc_id'], ['domain'], ['byte_length']]);
    const rows: DocumentListing[] = [];
    for (let r = (await cursor.next()) as Record<string, unknown> | null; r; r = (await cursor.next()) as typeof r) {
      rows.push({ doc_id: String(r.doc_id), domain: String(r.domain), byte_length: Number(r.byte_length) });
    }
    return rows;
  } finally {
    await reader.close();
  }
}

/**
 * The rows at the given positions of a local shard, reading only the row groups that hold them (a neighbor's text
 * without the rest of its shard in memory). Rows out of range are absent from the result.
 */
export async function readDocumentRows(
  localPath: string,
  positions: readonly number[],
): Promise<Map<number, DocumentRow>> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const found = new Map<number, DocumentRow>();
    const cursor = reader.getCursor();
    let groupStart = 0;
    const groups = reader.metadata?.row_groups ?? [];
    for (let g = 0; g < groups.length; g++) {
      const groupRows = Number(groups[g]!.num_rows);
      const wanted = positions.filter((p) => p >= groupStart && p < groupStart + groupRows);
      if (wanted.length > 0) {
        // The cursor reads row group `rowGroupIndex` on its next call once its current group is used up.
        cursor.rowGroupIndex = g;
        cursor.rowGroup = [];
        cursor.cursorIndex = 0;
        for (let row = groupStart; row <= Math.max(...wanted); row++) {
          const record = (await cursor.next()) as Record<string, unknown>;
          if (wanted.includes(row)) found.set(row, toDocumentRow(record));
        }
      }
      groupStart += groupRows;
    }
    return found;
  } finally {
    await reader.close();
  }
}

function toDocumentRow(r: Record<string, unknown>): DocumentRow {
  return {
    doc_id: String(r.doc_id),
    domain: String(r.domain),
    source_file: String(r.source_file),
    line: Number(r.line),
    byte_length: Number(r.byte_length),
    text: String(r.text),
  };
}
