import { embedTexts } from '../embed';
import type { CausalLM, Encoder } from '../models/modeling-utils';
import type { TextTokenizer } from '../tokenizers/tokenizer';
import { TTTTrainer, runDocument } from './ttt';

/**
 * TTT-NN over a small corpus held in memory, before an index exists: the encoder embeds every document
 * (mean-pooled, L2-normalised), exact cosine search gives each test document its k nearest other documents, and
 * the language model takes one TTT step per chunk of each neighbor, nearest first, from a fresh optimizer, with a
 * reset after every test document. Bits per byte per domain are sums of NLL over sums of bytes, as
 * lm-evaluation-harness aggregates them.
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

export function tttNnOnCorpus(
  docs: CorpusDocument[],
  encoder: { model: Encoder; tokenizer: TextTokenizer },
  lm: { model: CausalLM; tokenizer: TextTokenizer; eot: number },
  s: TttNnSettings,
  log: (line: string) => void,
): TttNnResult {
  const vectors = embedTexts(
    encoder.model,
    encoder.tokenizer,
    docs.map((d) => d.text),
    { normalize: true },
  );
  const trainer = new TTTTrainer(lm.model, { lr: s.lr });
  const tokens = (text: string) => lm.tokenizer.encode(text, { addSpecialTokens: false });
  const domains: DomainResult[] = [];
  let steps = 0;
  let seconds = 0;
  try {
    for (const domain of [...new Set(docs.map((d) => d.domain))].sort()) {
      const tests = docs
        .map((d, i) => ({ d, i }))
        .filter(({ d }) => d.domain === domain && Buffer.byteLength(d.text) <= s.maxTestBytes)
        .slice(0, s.testsPerDomain);
      let nllBefore = 0;
      let nllAfter = 0;
      let bytes = 0;
      for (const { d, i } of tests) {
        const query = vectors[i] as Float32Array;
        const neighbors = vectors
          .map((v, j) => ({
            j,
            score: j === i ? -Infinity : v.reduce((sum, x, c) => sum + x * (query[c] as number), 0),
          }))
          .sort((a, b) => b.score - a.score)
          .slice(0, s.k);
        const t0 = Date.now();
        const result = runDocument(
          trainer,
          d.text,
          tokens(d.text),
          neighbors.map(({ j }) => tokens((docs[j] as CorpusDocument).text).slice(0, s.maxNeighborTokens)),
          { eot: lm.eot, maxLength: s.maxLength },
        );
        const took = (Date.now() - t0) / 1000;
        steps += result.steps;
        seconds += took;
        nllBefore += result.nllNats[0] as number;
        nllAfter += result.nllNats.at(-1) as number;
        bytes += result.bytes;
        log(
          `${domain} document ${i}: ${result.bitsPerByte.map((b) => b.toFixed(3)).join(' → ')} bits/byte, ` +
            `${result.steps} steps in ${took.toFixed(1)} s (neighbors from ${neighbors.map((n) => (docs[n.j] as CorpusDocument).domain).join(', ')})`,
        );
      }
      if (tests.length > 0) {
        domains.push({
          domain,
          docs: tests.length,
          bitsPerByteBefore: nllBefore / bytes / Math.LN2,
          bitsPerByteAfter: nllAfter / bytes / Math.LN2,
        });
      }
    }
  } finally {
    trainer.dispose();
  }
  return { domains, steps, seconds };
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
