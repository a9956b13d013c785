import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readDocumentListing, writeDocumentShard } from '../../../../core/corpus/document-shards';

describe('readDocumentListing', () => {
  it("lists a shard's documents (id, domain, bytes) in row order, without their text", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-listing-'));
    try {
      const rows = Array.from({ length: 2500 }, (_, i) => {
        const text = `document ${i} `.repeat(1 + (i % 7));
        return {
          doc_id: `d${i}`,
          domain: ['ArXiv', 'Github', 'Pile-CC'][i % 3]!,
          source_file: 'f.jsonl',
          line: i + 1,
          byte_length: Buffer.byteLength(text),
          text,
        };
      });
      const file = path.join(dir, 'shard.parquet');
      await writeDocumentShard(file, rows);
      const listing = await readDocumentListing(file);
      expect(listing).toEqual(rows.map(({ doc_id, domain, byte_length }) => ({ doc_id, domain, byte_length })));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
