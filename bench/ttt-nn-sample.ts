import { promises as fs } from 'node:fs';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { SAMPLE_CORPUS_DIR } from '../cli/demo';
import { loadConfig } from '../core/config';
import { embedTexts } from '../core/embed';
import { loadCausalLM, loadEncoder } from '../core/models/registry';
import { TTTTrainer, runDocument } from '../core/training/ttt';
import { ensureMiniLM, ensureSmolLM2 } from '../infra/models';

/**
 * `npm run bench:ttt-nn-sample`: TTT-NN with the real models on the bundled sample corpus, before the index and
 * evaluation workflows exist. all-MiniLM-L6-v2 embeds every document, exact cosine search gives each test document
 * its k nearest other documents, and SmolLM2-135M takes one TTT step per chunk of each, nearest first.
 * Prints bits/byte per domain (sum of NLL / sum of bytes, as lm-evaluation-harness) before and after, and the
 * seconds per TTT step. Settings: BENCH_DOCS_PER_DOMAIN (default 2), BENCH_K (3), BENCH_MAX_TEST_BYTES (3000),
 * BENCH_MAX_NEIGHBOR_TOKENS (1024: neighbors are cut, unlike the reference, to fit a 2-core machine); max_length 512.
 */
const DOCS_PER_DOMAIN = Number(process.env.BENCH_DOCS_PER_DOMAIN ?? 2);
const K = Number(process.env.BENCH_K ?? 3);
const MAX_LENGTH = 512;
/** 2 cores afford short runs only: test documents up to this size, neighbors cut to their first tokens. */
const MAX_TEST_BYTES = Number(process.env.BENCH_MAX_TEST_BYTES ?? 3000);
const MAX_NEIGHBOR_TOKENS = Number(process.env.BENCH_MAX_NEIGHBOR_TOKENS ?? 1024);
const LR = 2e-5;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = (line: string) => console.error(line);
  const raw = decompress(await fs.readFile(path.join(SAMPLE_CORPUS_DIR, 'sample.jsonl.zst'))).toString('utf8');
  const docs = raw
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { text: string; meta: { pile_set_name: string } });

  const encoder = await loadEncoder(await ensureMiniLM(config.toolsDir, log), { log });
  const vectors = embedTexts(
    encoder.model,
    encoder.tokenizer,
    docs.map((d) => d.text),
    { normalize: true },
  );
  encoder.model.dispose();
  const { model, tokenizer } = await loadCausalLM(await ensureSmolLM2(config.toolsDir, log), { log });
  const eot = tokenizer.specialTokenId('eos_token')!;
  const trainer = new TTTTrainer(model, { lr: LR });

  const perDomain = new Map<string, { nllBefore: number; nllAfter: number; bytes: number; docs: number }>();
  let steps = 0;
  let trainSeconds = 0;
  const domains = [...new Set(docs.map((d) => d.meta.pile_set_name))].sort();
  for (const domain of domains) {
    const tests = docs
      .map((d, i) => ({ d, i }))
      .filter(({ d }) => d.meta.pile_set_name === domain && Buffer.byteLength(d.text) <= MAX_TEST_BYTES);
    for (const { d, i } of tests.slice(0, DOCS_PER_DOMAIN)) {
      const query = vectors[i]!;
      const neighbors = vectors
        .map((v, j) => ({ j, score: j === i ? -Infinity : v.reduce((s, x, c) => s + x * query[c]!, 0) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, K);
      const t0 = Date.now();
      const result = runDocument(
        trainer,
        d.text,
        tokenizer.encode(d.text, { addSpecialTokens: false }),
        neighbors.map(({ j }) =>
          tokenizer.encode(docs[j]!.text, { addSpecialTokens: false }).slice(0, MAX_NEIGHBOR_TOKENS),
        ),
        { eot, maxLength: MAX_LENGTH },
      );
      const seconds = (Date.now() - t0) / 1000;
      steps += result.steps;
      trainSeconds += seconds;
      const entry = perDomain.get(domain) ?? { nllBefore: 0, nllAfter: 0, bytes: 0, docs: 0 };
      entry.nllBefore += result.nllNats[0]!;
      entry.nllAfter += result.nllNats.at(-1)!;
      entry.bytes += result.bytes;
      entry.docs += 1;
      perDomain.set(domain, entry);
      log(
        `${domain} doc ${i}: ${result.bitsPerByte.map((b) => b.toFixed(3)).join(' → ')} bits/byte, ` +
          `${result.steps} steps, ${seconds.toFixed(1)} s (neighbors: ${neighbors.map((n) => docs[n.j]!.meta.pile_set_name).join(', ')})`,
      );
    }
  }
  console.log(
    `SmolLM2-135M, k=${K} MiniLM neighbors (first ${MAX_NEIGHBOR_TOKENS} tokens each), test documents ≤ ${MAX_TEST_BYTES} bytes, ` +
      `max_length ${MAX_LENGTH}, lr ${LR}, fresh AdamW per document`,
  );
  console.log('domain            docs  bits/byte before  after   change');
  for (const [domain, e] of perDomain) {
    const before = e.nllBefore / e.bytes / Math.LN2;
    const after = e.nllAfter / e.bytes / Math.LN2;
    console.log(
      `${domain.padEnd(17)} ${String(e.docs).padStart(4)}  ${before.toFixed(4).padStart(16)}  ${after.toFixed(4)}  ` +
        `${(((after - before) / before) * 100).toFixed(1)}%`,
    );
  }
  console.log(`${steps} TTT steps; ${(trainSeconds / Math.max(steps, 1)).toFixed(2)} s per step including evaluations`);
  trainer.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
