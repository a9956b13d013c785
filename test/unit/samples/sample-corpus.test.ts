import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { readPileLines } from '../../../core/corpus/pile-reader';

/** The committed sample corpus (samples/corpus/, built by scripts/build-sample-corpus.ts) as the demo will use it. */
const corpus = path.resolve(__dirname, '..', '..', '..', 'samples', 'corpus');

/** The Pile's set names, spelled as in its `meta.pile_set_name`. */
const PILE_SET_NAMES = new Set([
  'ArXiv',
  'BookCorpus2',
  'Books3',
  'DM Mathematics',
  'Enron Emails',
  'EuroParl',
  'FreeLaw',
  'Github',
  'Gutenberg (PG-19)',
  'HackerNews',
  'NIH ExPorter',
  'OpenSubtitles',
  'OpenWebText2',
  'PhilPapers',
  'Pile-CC',
  'PubMed Abstracts',
  'PubMed Central',
  'StackExchange',
  'USPTO Backgrounds',
  'Ubuntu IRC',
  'Wikipedia (en)',
  'YoutubeSubtitles',
]);

interface Record {
  text: string;
  domain: string;
  source: string;
}

const partFiles = (part: string) =>
  readdirSync(path.join(corpus, part))
    .filter((f) => f.endsWith('.jsonl.zst'))
    .sort()
    .map((f) => path.join(corpus, part, f));

/** Every line of a part, checked to be a Pile record with non-empty text, a Pile set name and a source. */
function readPart(part: string): Record[] {
  const records: Record[] = [];
  for (const file of partFiles(part)) {
    const lines = decompress(readFileSync(file)).toString('utf8').split('\n');
    expect(lines.pop()).toBe(''); // every line ends with a newline
    for (const line of lines) {
      const parsed = JSON.parse(line) as { text?: unknown; meta?: { pile_set_name?: unknown; source?: unknown } };
      expect(Object.keys(parsed).sort()).toEqual(['meta', 'text']);
      const { text, meta } = parsed;
      if (typeof text !== 'string' || text.trim() === '') throw new Error(`${file}: a line without text: ${line}`);
      if (typeof meta?.pile_set_name !== 'string' || !PILE_SET_NAMES.has(meta.pile_set_name))
        throw new Error(`${file}: not a Pile set name: ${String(meta?.pile_set_name)}`);
      if (typeof meta.source !== 'string' || !/^[a-z]+:.+@[^/@]+\/.+$/.test(meta.source))
        throw new Error(`${file}: meta.source is not <registry>:<package>@<version>/<path>: ${String(meta.source)}`);
      records.push({ text, domain: meta.pile_set_name, source: meta.source });
    }
  }
  return records;
}

const countBy = (records: Record[]) => {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.domain, (counts.get(r.domain) ?? 0) + 1);
  return counts;
};
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('samples/corpus', () => {
  const train = readPart('train');
  const test = readPart('test');

  it('has at least 6 domains in both parts and at least 10 test documents per domain', () => {
    const trainDomains = countBy(train);
    const testDomains = countBy(test);
    expect(trainDomains.size).toBeGreaterThanOrEqual(6);
    expect(testDomains.size).toBeGreaterThanOrEqual(6);
    expect([...testDomains.keys()].sort()).toEqual([...trainDomains.keys()].sort());
    for (const [domain, n] of testDomains) expect([domain, n >= 10]).toEqual([domain, true]);
    expect(train.length).toBeGreaterThanOrEqual(1000);
    expect(train.length).toBeLessThanOrEqual(3000);
  });

  it('keeps documents between 500 bytes and 30 KB, test documents at most 8 KB', () => {
    const size = (r: Record) => Buffer.byteLength(r.text, 'utf8');
    expect(Math.min(...train.map(size), ...test.map(size))).toBeGreaterThanOrEqual(500);
    expect(Math.max(...train.map(size))).toBeLessThanOrEqual(30_000);
    expect(Math.max(...test.map(size))).toBeLessThanOrEqual(8_000);
  });

  it('puts no test source in train, and no test text equals a train text', () => {
    const trainSources = new Set(train.map((r) => r.source));
    expect(trainSources.size).toBe(train.length);
    expect(new Set(test.map((r) => r.source)).size).toBe(test.length);
    expect(test.filter((r) => trainSources.has(r.source))).toEqual([]);
    const trainTexts = new Set(train.map((r) => sha256(r.text)));
    expect(test.filter((r) => trainTexts.has(sha256(r.text))).map((r) => r.source)).toEqual([]);
  });

  it('matches what PROVENANCE.md says: document counts and file hashes', () => {
    const provenance = readFileSync(path.join(corpus, 'PROVENANCE.md'), 'utf8');
    expect(provenance).toContain(`${train.length} train and ${test.length} test documents`);
    for (const file of [...partFiles('train'), ...partFiles('test')]) {
      const rel = path.relative(corpus, file);
      expect(provenance).toMatch(new RegExp(`\`${rel}\`.*\`${sha256(readFileSync(file))}\``));
    }
  });

  it('reads with the Pile reader that ingest uses, no line skipped', async () => {
    for (const [part, records] of [
      ['train', train],
      ['test', test],
    ] as const) {
      let documents = 0;
      for (const file of partFiles(part)) {
        for await (const line of readPileLines(createReadStream(file), { compressed: true, maxDocumentBytes: 1e6 })) {
          if ('skip' in line) throw new Error(`${file}:${line.line}: ${line.skip}`);
          documents++;
        }
      }
      expect(documents).toBe(records.length);
    }
  });
});
