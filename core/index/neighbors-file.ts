import { ParquetReader, ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';
import type { Neighbor } from './retrieve';

/**
 * Neighbor lists as Parquet, one row per (query, rank): `query` (the query's position in its batch), `query_id`,
 * `rank` (from 1), `doc_id`, `distance`, `domain`, `corpus_shard`, `shard_row`. Readable as they are by DuckDB and pyarrow,
 * so that every figure computed from them can be traced to its neighbors.
 */
const schema = new ParquetSchema({
  query: { type: 'INT32' },
  query_id: { type: 'UTF8' },
  rank: { type: 'INT32' },
  doc_id: { type: 'UTF8' },
  distance: { type: 'DOUBLE' },
  domain: { type: 'UTF8' },
  corpus_shard: { type: 'UTF8' },
  shard_row: { type: 'INT32' },
});

export async function writeNeighborsFile(localPath: string, queryIds: readonly string[], lists: readonly Neighbor[][]) {
  const writer = await ParquetWriter.openFile(schema, localPath, { useDataPageV2: false });
  for (const [query, list] of lists.entries()) {
    for (const n of list) {
      await writer.appendRow({
        query,
        query_id: queryIds[query],
        rank: n.rank,
        doc_id: n.docId,
        distance: n.distance,
        domain: n.domain,
        corpus_shard: n.corpusShard,
        shard_row: n.shardRow,
      });
    }
  }
  await writer.close();
}

export async function readNeighborsFile(localPath: string): Promise<{ queryIds: string[]; lists: Neighbor[][] }> {
  const reader = await ParquetReader.openFile(localPath);
  try {
    const queryIds: string[] = [];
    const lists: Neighbor[][] = [];
    const cursor = reader.getCursor();
    for (let r = (await cursor.next()) as Record<string, unknown> | null; r; r = (await cursor.next()) as typeof r) {
      const query = Number(r.query);
      queryIds[query] = String(r.query_id);
      (lists[query] ??= []).push({
        rank: Number(r.rank),
        docId: String(r.doc_id),
        distance: Number(r.distance),
        domain: typeof r.domain === 'string' ? r.domain : '',
        corpusShard: String(r.corpus_shard),
        shardRow: Number(r.shard_row),
      });
    }
    return { queryIds, lists };
  } finally {
    await reader.close();
  }
}
