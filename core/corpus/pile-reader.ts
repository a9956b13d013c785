import type { Readable } from 'node:stream';
import { DecompressStream } from 'zstd-napi';

/** Why a line of a Pile file did not become a document. Every skip is counted under one of these. */
export const SKIP_REASONS = [
  'malformed_json',
  'missing_text',
  'invalid_utf8',
  'empty_text',
  'too_large',
  'blank_line',
  'corrupt_file',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const UNKNOWN_DOMAIN = 'unknown';

export interface PileDocument {
  /** 1-based line number in the (decompressed) source file. */
  line: number;
  domain: string;
  text: string;
  /** UTF-8 byte length of the text. */
  byteLength: number;
}

export type PileLine = { line: number; document: PileDocument } | { line: number; skip: SkipReason; detail?: string };

export interface ReadPileOptions {
  compressed: boolean;
  maxDocumentBytes: number;
  /** Lines up to and including this one are passed over without parsing (resuming a file). */
  skipThroughLine?: number;
  /** Called with the number of raw (compressed) bytes consumed so far. */
  onRawBytes?: (bytes: number) => void;
}

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function isCompressedPileFile(name: string): boolean {
  return name.endsWith('.zst');
}

export function isPileFile(name: string): boolean {
  return /\.jsonl(\.zst)?$/.test(name);
}

/**
 * Streams a Pile-format file (`{"text": ..., "meta": {"pile_set_name": ...}}` per line) line by line,
 * never holding more than one line in memory; a line longer than maxDocumentBytes is discarded as it streams.
 * A corrupt or truncated compressed stream ends the file with a `corrupt_file` entry instead of throwing.
 */
export async function* readPileLines(source: Readable, options: ReadPileOptions): AsyncGenerator<PileLine> {
  let rawBytes = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      rawBytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  }
  const stream = options.compressed ? zstdDecompress(counted()) : counted();

  const skipThrough = options.skipThroughLine ?? 0;
  let line = 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overflow = false;

  const finishLine = (): PileLine | undefined => {
    const current = line++;
    const bytes = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    const wasOverflow = overflow;
    pending = [];
    pendingBytes = 0;
    overflow = false;
    if (current <= skipThrough) return undefined;
    if (wasOverflow) return { line: current, skip: 'too_large' };
    return parseLine(current, bytes, options.maxDocumentBytes);
  };

  try {
    for await (const chunk of stream) {
      let start = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
        append(chunk.subarray(start, nl));
        const result = finishLine();
        if (result) yield result;
        start = nl + 1;
      }
      append(chunk.subarray(start));
      options.onRawBytes?.(rawBytes);
    }
  } catch (err) {
    yield { line, skip: 'corrupt_file', detail: (err as Error).message };
    return;
  }
  if (pendingBytes > 0 || overflow) {
    const result = finishLine();
    if (result) yield result;
  }
  options.onRawBytes?.(rawBytes);

  function append(part: Buffer): void {
    if (part.length === 0 || overflow) return;
    if (pendingBytes + part.length > options.maxDocumentBytes + 1024) {
      // JSON framing adds little to the text; a line this long cannot hold a document under the limit.
      overflow = true;
      pending = [];
      pendingBytes = 0;
      return;
    }
    // The chunk's memory is reused by the stream: keep a copy of the part of the line it holds.
    pending.push(Buffer.from(part));
    pendingBytes += part.length;
  }
}

function parseLine(line: number, bytes: Buffer, maxDocumentBytes: number): PileLine {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
  let json: string;
  try {
    json = utf8.decode(bytes.subarray(0, end));
  } catch {
    return { line, skip: 'invalid_utf8' };
  }
  if (json.trim() === '') return { line, skip: 'blank_line' };
  let record: unknown;
  try {
    record = JSON.parse(json);
  } catch (err) {
    return { line, skip: 'malformed_json', detail: (err as Error).message };
  }
  const text = (record as { text?: unknown } | null)?.text;
  if (typeof record !== 'object' || record === null || typeof text !== 'string') return { line, skip: 'missing_text' };
  // JSON escapes can encode lone surrogates, which are not valid Unicode and cannot be written as UTF-8.
  if (!text.isWellFormed()) return { line, skip: 'invalid_utf8' };
  if (text.trim() === '') return { line, skip: 'empty_text' };
  const byteLength = Buffer.byteLength(text, 'utf8');
  if (byteLength > maxDocumentBytes) return { line, skip: 'too_large' };
  const meta = (record as { meta?: { pile_set_name?: unknown } }).meta;
  const domain =
    typeof meta?.pile_set_name === 'string' && meta.pile_set_name !== '' ? meta.pile_set_name : UNKNOWN_DOMAIN;
  return { line, document: { line, domain, text, byteLength } };
}

/**
 * Decompresses chunk by chunk, handing out every byte decoded before an error: a truncated file still yields
 * the documents before the damage (a piped stream would drop its buffered output when the error arrives).
 */
async function* zstdDecompress(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const decoder = new DecompressStream();
  const output: Buffer[] = [];
  let failure: Error | undefined;
  decoder.on('data', (chunk: Buffer) => output.push(chunk));
  decoder.on('error', (err) => (failure = err));
  const settled = (event: 'drain' | 'finish') =>
    new Promise<void>((resolve) => {
      decoder.once(event, resolve);
      decoder.once('error', () => resolve());
    });
  for await (const chunk of chunks) {
    if (!decoder.write(chunk)) await settled('drain');
    yield* output.splice(0);
    if (failure) throw failure;
  }
  const finished = settled('finish');
  decoder.end();
  await finished;
  yield* output.splice(0);
  if (failure) throw failure;
}
