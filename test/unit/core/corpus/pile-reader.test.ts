import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { compress } from 'zstd-napi';
import { type PileLine, readPileLines } from '../../../../core/corpus/pile-reader';

async function readAll(
  bytes: Buffer,
  options: { compressed?: boolean; max?: number; skip?: number; chunk?: number } = {},
) {
  const chunk = options.chunk ?? 7;
  const pieces = Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) =>
    bytes.subarray(i * chunk, (i + 1) * chunk),
  );
  const out: PileLine[] = [];
  for await (const line of readPileLines(Readable.from(pieces), {
    compressed: options.compressed ?? false,
    maxDocumentBytes: options.max ?? 1000,
    skipThroughLine: options.skip,
  })) {
    out.push(line);
  }
  return out;
}

const doc = (text: string, domain = 'Github') => JSON.stringify({ text, meta: { pile_set_name: domain } });

describe('readPileLines', () => {
  it('classifies every kind of bad line and keeps the good ones with their line numbers', async () => {
    const input = Buffer.concat([
      Buffer.from(`${doc('héllo wörld')}\n`),
      Buffer.from('{"text": "unterminated\n'),
      Buffer.from('{"meta": {"pile_set_name": "Github"}}\n'),
      Buffer.from('{"text": "bad \xff byte"}\n'.replace('\xff', ''), 'utf8'),
      Buffer.concat([Buffer.from('{"text": "bad '), Buffer.from([0xff, 0xfe]), Buffer.from(' byte"}\n')]),
      Buffer.from(`${doc('   \n\t ')}\n`),
      Buffer.from(`${doc('x'.repeat(5000))}\n`),
      Buffer.from('\n'),
      Buffer.from('{"text": "lone \\ud800 surrogate"}\n'),
      Buffer.from('[1, 2]\r\n'),
      Buffer.from(`${JSON.stringify({ text: 'no meta' })}\r\n`),
      Buffer.from(doc('last line without newline', 'ArXiv')),
    ]);
    const lines = await readAll(input);
    const summary = lines.map((l) => ('skip' in l ? `${l.line}:${l.skip}` : `${l.line}:${l.document.domain}`));
    expect(summary).toEqual([
      '1:Github',
      '2:malformed_json',
      '3:missing_text',
      '4:unknown',
      '5:invalid_utf8',
      '6:empty_text',
      '7:too_large',
      '8:blank_line',
      '9:invalid_utf8',
      '10:missing_text',
      '11:unknown',
      '12:ArXiv',
    ]);
    const first = lines[0]!;
    expect('document' in first && first.document).toEqual({
      line: 1,
      domain: 'Github',
      text: 'héllo wörld',
      byteLength: 13,
    });
  });

  it('discards a line over the limit while streaming and goes on with the next', async () => {
    const huge = `{"text": "${'y'.repeat(100_000)}"}`;
    const lines = await readAll(Buffer.from(`${huge}\n${doc('after')}\n`), { chunk: 4096 });
    expect(lines.map((l) => ('skip' in l ? l.skip : l.document.text))).toEqual(['too_large', 'after']);
  });

  it('reads zstd input and resumes after a given line', async () => {
    const text = [1, 2, 3, 4].map((i) => doc(`document ${i}`)).join('\n');
    const lines = await readAll(compress(Buffer.from(text)), { compressed: true, skip: 2 });
    expect(lines.map((l) => ('document' in l ? `${l.line}:${l.document.text}` : l.skip))).toEqual([
      '3:document 3',
      '4:document 4',
    ]);
  });

  it('reports a truncated zstd file as corrupt_file after the lines it could read', async () => {
    // Hashes do not compress: the first half of the file holds many whole 128 KiB blocks.
    const text = Array.from({ length: 20_000 }, (_, i) =>
      doc(createHash('sha256').update(String(i)).digest('hex')),
    ).join('\n');
    const packed = compress(Buffer.from(text));
    const lines = await readAll(packed.subarray(0, Math.floor(packed.length / 2)), { compressed: true, chunk: 1024 });
    const last = lines[lines.length - 1]!;
    expect('skip' in last && last.skip).toBe('corrupt_file');
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.length).toBeLessThan(20_000);
  });
});
