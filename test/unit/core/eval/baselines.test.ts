import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import {
  dynamicEvaluation,
  inContextNll,
  referenceSplitPoint,
  secondHalfNll,
  splitDocument,
} from '../../../../core/eval/baselines';
import { tokenNlls } from '../../../../core/metrics/bits-per-byte';
import type { CausalLM } from '../../../../core/models/modeling-utils';
import { loadCausalLM, type Loaded } from '../../../../core/models/registry';
import { TTTTrainer } from '../../../../core/training/ttt';
import { FIXTURES } from '../../../helpers/parity';

const L = 16; // evaluation window and training chunk; the fixtures allow 64 positions

/** The harness's rolling NLL per token (bits-per-byte.ts, checked against lm-evaluation-harness there). */
function plainNlls(model: CausalLM, tokens: readonly number[], prefixToken: number): number[] {
  return Array.from(tokenNlls(model, tokens, { prefixToken, maxLength: L }));
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Independent of the windowing under test: one forward pass over context + continuation (minus its last token),
 * log-softmax, and the sum of -log p(continuation[i] | everything before it).
 */
function directNll(model: CausalLM, context: readonly number[], continuation: readonly number[]): number {
  const input = [...context, ...continuation].slice(0, -1);
  const logProbs = tf.tidy(
    () => tf.logSoftmax(model.forward(tf.tensor2d([input], [1, input.length], 'int32'))).arraySync()[0] as number[][],
  );
  return sum(continuation.map((t, i) => -(logProbs[context.length - 1 + i] as number[])[t]!));
}

/** Float32 forward passes of different shapes agree to rounding, not bit for bit. */
function expectClose(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThan(1e-4 * Math.max(1, Math.abs(expected)));
}

beforeAll(async () => {
  await initBackend({ log: () => undefined });
});

describe('splitDocument', () => {
  it('splits where the reference does (1024 tokens from 2048 on, else half)', () => {
    expect([0, 1, 2, 3, 2047, 2048, 5000].map((n) => referenceSplitPoint(n))).toEqual([
      0,
      0,
      1,
      1,
      Math.floor(2047 / 2),
      1024,
      1024,
    ]);
    expect(referenceSplitPoint(9, 4)).toBe(4);
    expect(referenceSplitPoint(7, 4)).toBe(3);
  });

  it.each(['tiny-gpt2', 'tiny-llama'])(
    '%s: halves that are the document, token for token and byte for byte',
    async (name) => {
      const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, name));
      const text = 'Dynamic evaluation trains on the first half of a document and scores the second half.';
      const tokens = tokenizer.encode(text);
      for (const maxPrefixTokens of [1024, 5]) {
        const split = splitDocument(text, tokens, tokenizer, { maxPrefixTokens });
        expect(split.referenceSplit).toBe(referenceSplitPoint(tokens.length, maxPrefixTokens));
        expect(split.firstTokens).toHaveLength(split.referenceSplit); // ASCII: every token boundary qualifies
        expect([...split.firstTokens, ...split.secondTokens]).toEqual(tokens);
        expect(split.firstText + split.secondText).toBe(text);
        expect(split.firstText).toBe(tokenizer.decode(split.firstTokens));
        expect(split.secondBytes).toBe(Buffer.byteLength(split.secondText, 'utf8'));
        expect(split.exact).toBe(true);
      }
      const empty = splitDocument('', [], tokenizer);
      expect(empty).toMatchObject({ firstTokens: [], secondTokens: [], secondText: '', secondBytes: 0 });
      model.dispose();
    },
  );

  it('moves a split that falls inside a multi-byte character to the nearest character boundary', async () => {
    const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt2'));
    // Find a padding that puts the reference's split inside a character (its prefix decodes to U+FFFD).
    let found = false;
    for (let pad = 0; pad < 24 && !found; pad++) {
      const text = `${'a'.repeat(pad)} 日本語のテキスト, emoji 🎉🎉 and café.`;
      const tokens = tokenizer.encode(text);
      const naive = tokenizer.decode(tokens.slice(0, referenceSplitPoint(tokens.length)));
      if (text.startsWith(naive)) continue;
      found = true;
      const split = splitDocument(text, tokens, tokenizer);
      expect(split.firstTokens.length).not.toBe(split.referenceSplit);
      expect(Math.abs(split.firstTokens.length - split.referenceSplit)).toBeLessThanOrEqual(3);
      expect([...split.firstTokens, ...split.secondTokens]).toEqual(tokens);
      expect(split.firstText + split.secondText).toBe(text);
      expect(split.firstText).toBe(tokenizer.decode(split.firstTokens));
      expect(split.secondText).toBe(tokenizer.decode(split.secondTokens));
      expect(split.firstText + split.secondText).not.toContain('\uFFFD');
      expect(Buffer.byteLength(split.firstText) + split.secondBytes).toBe(Buffer.byteLength(text));
    }
    expect(found).toBe(true);
    model.dispose();
  });

  it('cuts the decoded document when the tokenizer does not give the text back', () => {
    const letters = { decode: (ids: number[]) => ids.map((i) => String.fromCharCode(97 + i)).join('') };
    const split = splitDocument('not what the ids spell', [0, 1, 2, 3, 4], letters);
    expect(split).toMatchObject({ exact: false, firstText: 'ab', secondText: 'cde', secondBytes: 3 });
    expect(split.secondTokens).toEqual([2, 3, 4]);
  });
});

describe.each(['tiny-gpt2', 'tiny-llama'])('%s scoring', (name) => {
  let lm: Loaded<CausalLM>;
  let prefixToken: number;
  let first: number[];
  let second: number[];
  beforeAll(async () => {
    lm = await loadCausalLM(path.join(FIXTURES, name));
    prefixToken = lm.tokenizer.specialTokenId('eos_token')!;
    first = lm.tokenizer.encode('Retrieval augments a language model with the text of nearby documents. ');
    second = lm.tokenizer.encode('Test-time training fine-tunes it on them instead, one step per neighbor.');
    expect(first.length).toBeGreaterThan(L + 2);
    expect(second.length).toBeGreaterThan(L + 2); // several windows
  });
  afterAll(() => lm.model.dispose());

  it('secondHalfNll with an empty first half is the half scored on its own after the prefix token', () => {
    const { model } = lm;
    for (const half of [second, second.slice(0, 5)]) {
      expectClose(
        secondHalfNll(model, [], half, { prefixToken, maxLength: L }),
        sum(plainNlls(model, half, prefixToken)),
      );
    }
  });

  it('secondHalfNll with a first half is the whole document scored over the second half, as far as context fits', () => {
    const { model } = lm;
    const opts = { prefixToken, maxLength: L };
    // Both halves in one window: the whole document's rolling NLL restricted to the second half's positions.
    const [a, b] = [first.slice(0, 6), second.slice(0, 7)];
    expectClose(secondHalfNll(model, a, b, opts), sum(plainNlls(model, [...a, ...b], prefixToken).slice(a.length)));
    // A long first half: its last L + 1 - 7 tokens (the prefix token no longer fits) are the context.
    expectClose(secondHalfNll(model, first, b, opts), directNll(model, first.slice(-(L + 1 - b.length)), b));
    // A second half of several windows: the first is conditioned on one token of the first half, the rest are the
    // half's own windows.
    const own = plainNlls(model, second, prefixToken);
    const expected = directNll(model, first.slice(-1), second.slice(0, L)) + sum(own.slice(L));
    expectClose(secondHalfNll(model, first, second, opts), expected);
    expect(Math.abs(secondHalfNll(model, first, second, opts) - sum(own))).toBeGreaterThan(1e-3);
  });

  it('inContextNll: no neighbors is plain rolling NLL; neighbors fill the window before a one-window document', () => {
    const { model } = lm;
    const opts = { prefixToken, maxLength: L };
    const doc = second.slice(0, 6);
    const room = L + 1 - doc.length;
    const plain = sum(plainNlls(model, doc, prefixToken));
    for (const neighbors of [[], [[]], [[], []]]) {
      const r = inContextNll(model, doc, neighbors, opts);
      expect(r.contextTokens).toBe(0);
      expectClose(r.nllNats, plain);
    }

    // Neighbors longer than the room: nearest first takes the head of their concatenation, the reference the tail.
    const neighbors = [first.slice(0, 7), second.slice(6, 12), first.slice(7, 15)];
    const all = neighbors.flat();
    expect(all.length).toBeGreaterThan(room);
    const nearest = inContextNll(model, doc, neighbors, opts);
    expect(nearest.contextTokens).toBe(room);
    expectClose(nearest.nllNats, directNll(model, all.slice(0, room), doc));
    const reference = inContextNll(model, doc, neighbors, { ...opts, fill: 'reference' });
    expect(reference.contextTokens).toBe(room);
    expectClose(reference.nllNats, directNll(model, all.slice(-room), doc));
    expect(Math.abs(nearest.nllNats - reference.nllNats)).toBeGreaterThan(1e-4);

    // Neighbors shorter than the room: all of them, nearest first, in both modes.
    const few = [first.slice(0, 3), second.slice(8, 10)];
    for (const fill of ['nearest-first', 'reference'] as const) {
      const r = inContextNll(model, doc, few, { ...opts, fill });
      expect(r.contextTokens).toBe(5);
      expectClose(r.nllNats, directNll(model, few.flat(), doc));
    }

    // A document that fills the window has room for one token, where the prefix token was.
    const full = second.slice(0, L);
    const one = inContextNll(model, full, neighbors, opts);
    expect(one.contextTokens).toBe(1);
    expectClose(one.nllNats, directNll(model, all.slice(0, 1), full));
  });

  it('inContextNll scores a document of several windows exactly as without neighbors', () => {
    const { model } = lm;
    for (const fill of ['nearest-first', 'reference'] as const) {
      const r = inContextNll(model, second, [first, first], { prefixToken, maxLength: L, fill });
      expect(r.contextTokens).toBe(0);
      expectClose(r.nllNats, sum(plainNlls(model, second, prefixToken)));
    }
  });
});

describe('dynamicEvaluation', () => {
  it('trains on the first half, lowers the second half NLL of a repetitive document, and restores the weights', async () => {
    const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt2'));
    const prefixToken = tokenizer.specialTokenId('eos_token')!;
    const text = 'The cat sat on the mat and looked at the hat. '.repeat(5);
    const split = splitDocument(text, tokenizer.encode(text), tokenizer);
    const f = split.firstTokens.length;
    const chunks = Math.ceil(f / L) - (f % L === 1 ? 1 : 0); // a last chunk of one token is no step
    expect(Math.ceil(f / L)).toBeGreaterThan(1);
    const opts = { prefixToken, maxLength: L };

    const ids = tf.tensor2d([split.secondTokens.slice(0, L)], undefined, 'int32');
    const logits = () => tf.tidy(() => Array.from(model.forward(ids).dataSync()));
    const pretrained = logits();
    const alone = secondHalfNll(model, [], split.secondTokens, opts);
    const conditioned = secondHalfNll(model, split.firstTokens, split.secondTokens, opts);

    const trainer = new TTTTrainer(model, { lr: 1e-3, dropout: false });
    trainer.trainOnTokens(tokenizer.encode('Something else entirely, to leave the weights trained.'), L);
    expect(logits()).not.toEqual(pretrained);
    const memory = tf.memory().numTensors;

    const result = dynamicEvaluation(trainer, split, opts);
    expect(result.nllBefore).toBe(alone); // reset first; the reference scores the half on its own
    expect(result.steps).toBe(chunks * 7);
    expect(result.nllAfter).toBeLessThan(result.nllBefore - 0.5);
    expect(result.nllByPass).toBeUndefined();
    expect(logits()).toEqual(pretrained); // reset after: the weights exactly as loaded
    expect(tf.memory().numTensors).toBeLessThanOrEqual(memory); // the optimizer's moments are gone too

    const curve = dynamicEvaluation(trainer, split, { ...opts, iterations: 3, scoreEachPass: true });
    expect(curve.steps).toBe(chunks * 3);
    expect(curve.nllByPass).toHaveLength(4);
    expect(curve.nllByPass?.[0]).toBe(curve.nllBefore);
    expect(curve.nllByPass?.[3]).toBe(curve.nllAfter);
    expect(curve.nllBefore).toBe(alone);
    expect(logits()).toEqual(pretrained);

    const withContext = dynamicEvaluation(trainer, split, { ...opts, iterations: 2, conditionOnFirstHalf: true });
    expect(withContext.nllBefore).toBe(conditioned);
    expect(withContext.nllAfter).toBeLessThan(withContext.nllBefore);

    const none = dynamicEvaluation(trainer, split, { ...opts, iterations: 0 });
    expect(none).toEqual({ nllBefore: alone, nllAfter: alone, steps: 0 });
    expect(logits()).toEqual(pretrained);

    trainer.dispose();
    ids.dispose();
    model.dispose();
  });
});
