import { promises as fs } from 'node:fs';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { SAMPLE_CORPUS_DIR } from '../cli/demo';
import { loadConfig } from '../core/config';
import { harnessPrefixToken } from '../core/metrics/bits-per-byte';
import { loadCausalLM, loadEncoder } from '../core/models/registry';
import { formatTttNnTable, tttNnOnCorpus, type TttNnSettings } from '../core/training/ttt-nn';
import { ensureMiniLM, ensureSmolLM2 } from '../infra/models';

/**
 * `npm run bench:ttt-nn-sample`: TTT-NN with the real models (all-MiniLM-L6-v2 neighbors, SmolLM2-135M) on the
 * bundled sample corpus, bits/byte per domain before and after, and seconds per TTT step. Settings:
 * BENCH_DOCS_PER_DOMAIN (default 2), BENCH_K (3), BENCH_MAX_TEST_BYTES (3000), BENCH_MAX_NEIGHBOR_TOKENS (1024:
 * neighbors are cut, unlike the reference, to fit a 2-core machine); max_length 512, lr 2e-5.
 */
const SETTINGS: TttNnSettings = {
  testsPerDomain: Number(process.env.BENCH_DOCS_PER_DOMAIN ?? 2),
  k: Number(process.env.BENCH_K ?? 3),
  maxLength: 512,
  lr: 2e-5,
  maxTestBytes: Number(process.env.BENCH_MAX_TEST_BYTES ?? 3000),
  maxNeighborTokens: Number(process.env.BENCH_MAX_NEIGHBOR_TOKENS ?? 1024),
};

async function main(): Promise<void> {
  const config = loadConfig();
  const log = (line: string) => console.error(line);
  const raw = decompress(await fs.readFile(path.join(SAMPLE_CORPUS_DIR, 'sample.jsonl.zst'))).toString('utf8');
  const docs = raw
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { text: string; meta: { pile_set_name: string } })
    .map((d) => ({ text: d.text, domain: d.meta.pile_set_name }));
  const encoder = await loadEncoder(await ensureMiniLM(config.toolsDir, log), { log });
  const lm = await loadCausalLM(await ensureSmolLM2(config.toolsDir, log), { log });
  const prefixToken = harnessPrefixToken(lm.tokenizer);
  const result = tttNnOnCorpus(docs, encoder, { ...lm, prefixToken }, SETTINGS, log);
  console.log(
    `SmolLM2-135M, k=${SETTINGS.k} MiniLM neighbors (first ${SETTINGS.maxNeighborTokens} tokens each), test documents ` +
      `≤ ${SETTINGS.maxTestBytes} bytes, max_length ${SETTINGS.maxLength}, lr ${SETTINGS.lr}, fresh AdamW per document`,
  );
  console.log(formatTttNnTable(result));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
