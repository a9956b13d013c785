import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  getRollingTokenWindows,
  harnessPrefixToken,
  makeDisjointWindow,
  rollingWindows,
  utf8Bytes,
} from '../../../../core/metrics/bits-per-byte';
import { TextTokenizer } from '../../../../core/tokenizers/tokenizer';
import { FIXTURES } from '../../../helpers/parity';

describe('lm-evaluation-harness rolling windows', () => {
  // Gold from lm-evaluation-harness tests/test_utils.py (test_get_rolling_token_windows_v1).
  it('matches the harness for 34 tokens, max_seq_len 10, context_len 1', () => {
    const x = Array.from({ length: 34 }, (_, i) => i);
    expect(getRollingTokenWindows(x, -100, 10, 1)).toEqual([
      [
        [-100, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      ],
      [
        [9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      ],
      [
        [19, 20, 21, 22, 23, 24, 25, 26, 27, 28],
        [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
      ],
      [
        [23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
        [30, 31, 32, 33],
      ],
    ]);
  });

  it('makes windows disjoint and scores every token exactly once, in order', () => {
    expect(
      makeDisjointWindow([
        [23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
        [30, 31, 32, 33],
      ]),
    ).toEqual([
      [23, 24, 25, 26, 27, 28, 29],
      [30, 31, 32, 33],
    ]);
    for (const n of [1, 9, 10, 11, 20, 21, 57]) {
      const tokens = Array.from({ length: n }, (_, i) => 100 + i);
      const windows = rollingWindows(tokens, 7, 10);
      expect(windows.flatMap((w) => w.targets)).toEqual(tokens);
      for (const w of windows) {
        expect(w.input.length).toBeLessThanOrEqual(10);
        // Each scored token is predicted from the input position just before it.
        const first = w.input.length - w.targets.length;
        w.targets.forEach((t, j) => {
          const prev = j + first === 0 ? undefined : w.input[j + first];
          expect(prev === undefined || prev === t - 1 || (prev === 7 && t === 100)).toBe(true);
        });
      }
      // The first window starts with the prefix token; later ones are full maxLength windows.
      expect(windows[0]?.input[0]).toBe(7);
      expect(windows.slice(1).every((w) => w.input.length === 10)).toBe(true);
    }
    expect(rollingWindows([], 7, 10)).toEqual([]);
  });

  it('counts UTF-8 bytes, not UTF-16 code units', () => {
    expect(utf8Bytes('abc')).toBe(3);
    expect(utf8Bytes('é')).toBe(2);
    expect(utf8Bytes('日本')).toBe(6);
    expect(utf8Bytes('😀')).toBe(4);
  });
});

describe('harnessPrefixToken (HFLM prefix_token_id)', () => {
  // tiny-roberta's tokenizer names BOS <s> (0) and EOS </s> (2), as distinct tokens.
  const dir = path.join(FIXTURES, 'tiny-roberta');
  const withConfig = async (config: Record<string, unknown>) =>
    TextTokenizer.fromJson(JSON.parse(await fs.readFile(path.join(dir, 'tokenizer.json'), 'utf8')), config, 'tiny');

  it("is the tokenizer's BOS token when it has one", async () => {
    const tokenizer = await TextTokenizer.fromFolder(dir);
    expect([tokenizer.specialTokenId('bos_token'), tokenizer.specialTokenId('eos_token')]).toEqual([0, 2]);
    expect(harnessPrefixToken(tokenizer)).toBe(0);
    // tokenizer_config.json may spell a special token as an AddedToken object.
    expect(harnessPrefixToken(await withConfig({ bos_token: { content: '<s>' }, eos_token: '</s>' }))).toBe(0);
  });

  it('is the EOS token when the tokenizer has no BOS token', async () => {
    expect(harnessPrefixToken(await withConfig({ eos_token: '</s>', pad_token: '<pad>' }))).toBe(2);
  });

  it('is the override when one is given, whatever the tokenizer names', async () => {
    const tokenizer = await TextTokenizer.fromFolder(dir);
    expect(harnessPrefixToken(tokenizer, 4)).toBe(4);
    expect(harnessPrefixToken(tokenizer, 0)).toBe(0);
    expect(harnessPrefixToken(await withConfig({}), 3)).toBe(3);
    expect(() => harnessPrefixToken(tokenizer, -1)).toThrow('prefix token -1: expected a token id');
    expect(() => harnessPrefixToken(tokenizer, 1.5)).toThrow('prefix token 1.5: expected a token id');
  });

  it('names the tokenizer when it has neither BOS nor EOS', async () => {
    const bare = await withConfig({ pad_token: '<pad>' });
    expect(() => harnessPrefixToken(bare)).toThrow(
      /^tiny: the tokenizer names neither a bos_token nor an eos_token .*--prefix-token/,
    );
    const folder = await TextTokenizer.fromFolder(dir);
    expect(folder.source).toBe(path.join(dir, 'tokenizer.json'));
  });
});
