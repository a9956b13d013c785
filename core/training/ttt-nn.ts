import { embedTexts } from '../embed';
import type { CausalLM, Encoder } from '../models/modeling-utils';
import type { TextTokenizer } from '../tokenizers/tokenizer';
import { TTTTrainer, runDocument } from './ttt';

/**
 * TTT-NN in one process, for the demo and the sample bench: the language model takes one TTT step per chunk of
 * each neighbor, nearest first, from a fresh optimizer, with a reset after every test document. Bits per byte per
 * domain are sums of NLL over sums of bytes, as lm-evaluation-harness aggregates them. (Evaluations at scale are
 * the evaluation workflow's.)
 */
export interface CorpusDocument {
  text: string;
  domain: string;
}

export interface TttNnSettings {
  testsPerDomain: number;
  k: number;
  maxLength: number;
  lr: number;
  /** Test documents larger than this are not picked (a 2-core machine affords short ones). */
  maxTestBytes: number;
  /** Neighbors are cut to their first tokens (the reference trains on whole neighbors). */
  maxNeighborTokens: number;
}

export interface DomainResult {
  domain: string;
  docs: number;
  bitsPerByteBefore: number;
  bitsPerByteAfter: number;
}

export interface TttNnResult {
  domains: DomainResult[];
  steps: number;
  seconds: number;
}

/** A test document with its neighbors' texts, nearest first, as retrieval returned them. */
export interface TestWithNeighbors {
  id: string;
  text: string;
  domain: string;
  neighbors: { text: string; domain: string }[];
}

/**
 * TTT-NN over test documents whose neighbors are already retrieved: one TTT step per chunk of each neighbor
 * (cut to `maxNeighborTokens`), nearest first, from a fresh optimizer, bits/byte before and after, a reset after
 * every document; per domain, sums of NLL over sums of bytes.
 */
export function tttNnOnNeighbors(
  tests: readonly TestWithNeighbors[],
  lm: { model: CausalLM; tokenizer: TextTokenizer; prefixToken: number },
  s: Pick<TttNnSettings, 'maxLength' | 'lr' | 'maxNeighborTokens'>,
  log: (line: string) => void,
): TttNnResult {
  const trainer = new TTTTrainer(lm.model, { lr: s.lr });
  const tokens = (text: string) => lm.tokenizer.encode(text, { addSpecialTokens: false });
  const totals = new Map<string, { docs: number; before: number; after: number; bytes: number }>();
  let steps = 0;
  let seconds = 0;
  try {
    for (const test of tests) {
      const t0 = Date.now();
      const result = runDocument(
        trainer,
        test.text,
        tokens(test.text),
        test.neighbors.map((n) => tokens(n.text).slice(0, s.maxNeighborTokens)),
        { prefixToken: lm.prefixToken, maxLength: s.maxLength },
      );
      const took = (Date.now() - t0) / 1000;
      steps += result.steps;
      seconds += took;
      const total = totals.get(test.domain) ?? { docs: 0, before: 0, after: 0, bytes: 0 };
      total.docs += 1;
      total.before += result.nllNats[0]!;
      total.after += result.nllNats.at(-1)!;
      total.bytes += result.bytes;
      totals.set(test.domain, total);
      log(
        `${test.domain} ${test.id}: ${result.bitsPerByte.map((b) => b.toFixed(3)).join(' → ')} bits/byte, ` +
          `${result.steps} steps in ${took.toFixed(1)} s (neighbors from ${test.neighbors.map((n) => n.domain).join(', ')})`,
      );
    }
  } finally {
    trainer.dispose();
  }
  const domains = [...totals.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([domain, t]) => ({
      domain,
      docs: t.docs,
      bitsPerByteBefore: t.before / t.bytes / Math.LN2,
      bitsPerByteAfter: t.after / t.bytes / Math.LN2,
    }));
  return { domains, steps, seconds };
}

/** TTT-NN on a small corpus held in memory, before an index exists: exact cosine neighbors among its documents. */
export function tttNnOnCorpus(
  docs: CorpusDocument[],
  encoder: { model: Encoder; tokenizer: TextTokenizer },
  lm: { model: CausalLM; tokenizer: TextTokenizer; prefixToken: number },
  s: TttNnSettings,
  log: (line: string) => void,
): TttNnResult {
  const vectors = embedTexts(
    encoder.model,
    encoder.tokenizer,
    docs.map((d) => d.text),
    { normalize: true },
  );
  const tests: TestWithNeighbors[] = [];
  for (const domain of [...new Set(docs.map((d) => d.domain))].sort()) {
    const picked = docs
      .map((d, i) => ({ d, i }))
      .filter(({ d }) => d.domain === domain && Buffer.byteLength(d.text) <= s.maxTestBytes)
      .slice(0, s.testsPerDomain);
    for (const { d, i } of picked) {
      const query = vectors[i]!;
      const nearest = vectors
        .map((v, j) => ({ j, score: j === i ? -Infinity : v.reduce((sum, x, c) => sum + x * query[c]!, 0) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, s.k);
      tests.push({ id: `document ${i}`, text: d.text, domain, neighbors: nearest.map(({ j }) => docs[j]!) });
    }
  }
  return tttNnOnNeighbors(tests, lm, s, log);
}

export function formatTttNnTable(result: TttNnResult): string {
  const lines = ['domain            docs  bits/byte before  after   change'];
  for (const r of result.domains) {
    const change = ((r.bitsPerByteAfter - r.bitsPerByteBefore) / r.bitsPerByteBefore) * 100;
    lines.push(
      `${r.domain.padEnd(17)} ${String(r.docs).padStart(4)}  ${r.bitsPerByteBefore.toFixed(4).padStart(16)}  ` +
        `${r.bitsPerByteAfter.toFixed(4)}  ${change.toFixed(1)}%`,
    );
  }
  lines.push(
    `${result.steps} TTT steps; ${(result.seconds / Math.max(result.steps, 1)).toFixed(2)} s per step including evaluations`,
  );
  return lines.join('\n');
}
