import { createReadStream } from 'node:fs';
import path from 'node:path';
import { SAMPLE_CORPUS_DIR } from '../cli/demo';
import { readPileLines } from '../core/corpus/pile-reader';

/** The first `limit` document texts of the bundled sample corpus (`samples/pile/sample.jsonl.zst`). */
export async function readSampleTexts(limit = Infinity): Promise<string[]> {
  const file = path.join(SAMPLE_CORPUS_DIR, 'sample.jsonl.zst');
  const texts: string[] = [];
  for await (const line of readPileLines(createReadStream(file), { compressed: true, maxDocumentBytes: 1 << 26 })) {
    if ('document' in line) texts.push(line.document.text);
    if (texts.length >= limit) break;
  }
  return texts;
}
