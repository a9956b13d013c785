import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { HfCheckpoint } from '../checkpoints/hf-folder';

/**
 * Tokenizers from a checkpoint's `tokenizer.json`, through npm @huggingface/tokenizers (the tokenizer code of
 * transformers.js, maintained by Hugging Face, pure JS, reads tokenizer.json as-is: BPE, WordPiece, Unigram and
 * the normalizers/pre-tokenizers/post-processors around them).
 *
 * The package is ESM with a CommonJS build in its exports map, so it loads both from tsc's output (a real dynamic
 * import) and under jest/@swc (import() becomes require(), no transformIgnorePatterns needed). TypeScript (module
 * node16) only allows an ESM package's types through a dynamic import, so construction is async; `HfTokenizer`
 * names the part of its `Tokenizer` class we use.
 */
interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  token_to_id(token: string): number | undefined;
}

export interface BatchEncoding {
  /** (B, T) token ids, right-padded with the pad id. */
  inputIds: number[][];
  /** (B, T) 1 for tokens, 0 for padding. */
  attentionMask: number[][];
}

export class TextTokenizer {
  private constructor(
    private readonly tok: HfTokenizer,
    readonly config: Record<string, unknown>,
    /** Where the tokenizer came from (its tokenizer.json or .gguf file), for error messages. */
    readonly source: string,
  ) {}

  static async fromJson(
    tokenizerJson: unknown,
    tokenizerConfig: Record<string, unknown> = {},
    source = 'tokenizer.json',
  ): Promise<TextTokenizer> {
    const { Tokenizer } = (await import('@huggingface/tokenizers')) as unknown as {
      Tokenizer: new (json: unknown, config: Record<string, unknown>) => HfTokenizer;
    };
    return new TextTokenizer(new Tokenizer(tokenizerJson, tokenizerConfig), tokenizerConfig, source);
  }

  static async fromCheckpoint(ckpt: HfCheckpoint): Promise<TextTokenizer> {
    const gguf = ckpt.weightsFile.endsWith('.gguf');
    const file = gguf ? ckpt.weightsFile : path.join(ckpt.dir, 'tokenizer.json');
    if (ckpt.tokenizer === undefined) throw new Error(`${file} ${gguf ? 'holds no tokenizer' : 'does not exist'}`);
    return TextTokenizer.fromJson(ckpt.tokenizer, ckpt.tokenizerConfig, file);
  }

  static async fromFolder(dir: string): Promise<TextTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    if (!existsSync(file)) throw new Error(`${file} does not exist`);
    const configFile = path.join(dir, 'tokenizer_config.json');
    const config = existsSync(configFile)
      ? (JSON.parse(await fs.readFile(configFile, 'utf8')) as Record<string, unknown>)
      : {};
    return TextTokenizer.fromJson(JSON.parse(await fs.readFile(file, 'utf8')), config, file);
  }

  /** Token ids of `text`. Language-model text is tokenized without special tokens, as TTT-NN does. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The id of a special token named in tokenizer_config.json (`eos_token`, `pad_token`, ...), if any. */
  specialTokenId(key: string): number | undefined {
    const value = this.config[key];
    const content = typeof value === 'string' ? value : (value as { content?: string } | undefined)?.content;
    return content === undefined ? undefined : this.tok.token_to_id(content);
  }

  /**
   * Encoder input: special tokens added, truncated to `maxLength` (keeping the closing special token, as
   * transformers' truncation does for single sequences), right-padded to the longest in the batch.
   */
  encodeBatch(texts: string[], maxLength: number): BatchEncoding {
    const pad = this.specialTokenId('pad_token') ?? 0;
    const encoded = texts.map((t) => {
      const ids = this.tok.encode(t, { add_special_tokens: true }).ids;
      if (ids.length <= maxLength) return ids;
      // Too long (so the text is not empty): keep the special tokens at both ends, cut the text tokens between.
      const plain = this.tok.encode(t, { add_special_tokens: false }).ids;
      const headLen = ids.indexOf(plain[0] as number);
      const tailLen = ids.length - plain.length - headLen;
      return [
        ...ids.slice(0, headLen),
        ...plain.slice(0, maxLength - headLen - tailLen),
        ...ids.slice(ids.length - tailLen),
      ];
    });
    const T = Math.max(...encoded.map((e) => e.length));
    return {
      inputIds: encoded.map((e) => [...e, ...new Array<number>(T - e.length).fill(pad)]),
      attentionMask: encoded.map((e) => [
        ...new Array<number>(e.length).fill(1),
        ...new Array<number>(T - e.length).fill(0),
      ]),
    };
  }
}
