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

/** Rows per row group: small enough that a shard of long documents stays bounded in memory while writing. */
const ROW_GROUP_SIZE = 2048;

/** Writes a shard to a local file; the caller uploads it. Output depends only on the rows (no timestamps). */
export async function writeDocumentShard(
  localPath: string,
  rows: readonly DocumentRow[],
  compression: ParquetCompression = 'GZIP',
): Promise<void> {
  // Data page v1: the most widely readable layout (DuckDB, pyarrow, Spark).
  const writer = await ParquetWriter.openFile(documentSchema(compression), localPath, {
    rowGroupSize: ROW_GROUP_SIZE,
    useDataPageV2: false,
  });
  for (const row of rows) await writer.appendRow({ ...row });
  await writer.close();
}

export async function readDocumentShard(localPath: string): Promise<DocumentRow[]> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const cursor = reader.getCursor();
    const rows: DocumentRow[] = [];
    for (let record = await cursor.next(); record; record = await cursor.next()) {
      const r = record as Record<string, unknown>;
      rows.push({
        doc_id: String(r.doc_id),
        domain: String(r.domain),
        source_file: String(r.source_file),
        line: Number(r.line),
        byte_length: Number(r.byte_length),
        text: String(r.text),
      });
    }
    return rows;
  } finally {
    await reader.close();
  }
}
