import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEMO_CORPUS_DIR } from '../cli/demo';
import { describeBackend, engineSettings, initBackend } from '../core/backend';
import { loadConfig } from '../core/config';
import { isCompressedPileFile, isPileFile, type PileDocument, readPileLines } from '../core/corpus/pile-reader';
import { exactSearch } from '../core/index/flat';
import { harnessPrefixToken, rollingWindows } from '../core/metrics/bits-per-byte';
import { loadCausalLM } from '../core/models/registry';
import { runDocument, trainingChunks, TTTTrainer } from '../core/training/ttt';
import { SMOLLM2_DESCRIPTION, ensureSmolLM2 } from '../infra/models';
import { machineLine, runPythonJson } from './harness';
import { cachedMiniLmVectors } from './minilm-vectors';

/**
 * `npm run bench:ttt-nn`: the work an evaluation does, side by side with PyTorch in one run. Test documents of the
 * demo corpus (samples/corpus/test, one per domain in turn), their k nearest train documents by all-MiniLM-L6-v2
 * (first 256 tokens, cosine, exact search; exact copies left out), whole neighbors as the reference trains on
 * them. Per document, the TTT-NN loop (bits/byte before, one AdamW step per chunk of max_length tokens, bits/byte
 * after each neighbor, reset) runs in tfjs and in PyTorch + transformers (bench/ttt_nn_torch.py) on the same GGUF
 * file, the same token ids and the same evaluation windows. Prints per document the seconds on each side and their
 * ratio, the split into training / evaluation / other, the largest bits/byte difference, and each side's peak RSS.
 * Settings: BENCH_DOCS (3), BENCH_K (10), BENCH_MAX_LENGTH (512), BENCH_MAX_TEST_BYTES (4000: test documents
 * larger than this are passed over), BENCH_MAX_NEIGHBOR_TOKENS (0: whole neighbors), BENCH_PYTHON (python3, with
 * torch, transformers and gguf). The config's `matmulPrecision` (TTTNN_MATMUL_PRECISION) applies to both sides, as
 * `torch.set_float32_matmul_precision` on PyTorch's. Run it on an otherwise idle machine.
 */
const DOCS = Number(process.env.BENCH_DOCS ?? 3);
const K = Number(process.env.BENCH_K ?? 10);
const MAX_LENGTH = Number(process.env.BENCH_MAX_LENGTH ?? 512);
const MAX_TEST_BYTES = Number(process.env.BENCH_MAX_TEST_BYTES ?? 4000);
const MAX_NEIGHBOR_TOKENS = Number(process.env.BENCH_MAX_NEIGHBOR_TOKENS ?? 0);
const LR = 2e-5;
/** Evaluation windows per forward pass, tttnn's default (`tokenNlls`). */
const EVAL_BATCH = 2;

const log = (line: string) => console.error(line);

/** Every document of the demo corpus's train or test part, in file order. */
async function readPart(part: 'train' | 'test'): Promise<PileDocument[]> {
  const dir = path.join(DEMO_CORPUS_DIR, part);
  const docs: PileDocument[] = [];
  for (const file of (await fs.readdir(dir)).filter(isPileFile).sort()) {
    const source = createReadStream(path.join(dir, file));
    for await (const line of readPileLines(source, {
      compressed: isCompressedPileFile(file),
      maxDocumentBytes: 1 << 26,
    })) {
      if ('document' in line) docs.push(line.document);
    }
  }
  return docs;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** One test document per domain in turn (domains sorted, documents in corpus order), at most MAX_TEST_BYTES each. */
function pickTestDocuments(test: PileDocument[]): PileDocument[] {
  const byDomain = new Map<string, PileDocument[]>();
  for (const doc of test) {
    if (doc.byteLength > MAX_TEST_BYTES) continue;
    byDomain.set(doc.domain, [...(byDomain.get(doc.domain) ?? []), doc]);
  }
  const domains = [...byDomain.keys()].sort();
  const picked: PileDocument[] = [];
  for (let round = 0; picked.length < DOCS && domains.some((d) => byDomain.get(d)!.length > round); round++) {
    for (const d of domains) {
      const doc = byDomain.get(d)![round];
      if (doc && picked.length < DOCS) picked.push(doc);
    }
  }
  return picked;
}

interface JobDoc {
  id: string;
  domain: string;
  bytes: number;
  text: string;
  tokens: number[];
  neighbors: number[][];
  windows: { input: number[]; targets: number[] }[];
}

interface TorchDoc {
  id: string;
  seconds: number;
  split: { training: number; evaluation: number };
  steps: number;
  bpb: number[];
}

interface TorchResult {
  torch: string;
  threads: number;
  matmul_precision: string;
  attn: string;
  load_s: number;
  rss_loaded: number;
  peak_rss: number;
  docs: TorchDoc[];
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
const s1 = (s: number) => `${s.toFixed(1)} s`;

async function main(): Promise<void> {
  const config = loadConfig();
  const engine = engineSettings(config);
  const backend = await initBackend({ ...engine, log });
  console.log(machineLine());
  const [train, test] = [await readPart('train'), await readPart('test')];
  const docs = pickTestDocuments(test);

  // Neighbors: MiniLM over each document's first 256 tokens, L2-normalised, cosine, as the demo's index.
  const { vectors, dimensions } = await cachedMiniLmVectors(
    'demo-train',
    train.map((d) => d.text),
  );
  const { vectors: queries } = await cachedMiniLmVectors(
    'ttt-nn-queries',
    docs.map((d) => d.text),
  );
  const found = exactSearch(vectors, dimensions, queries, K + 5, 'cos');

  const smollm2 = await ensureSmolLM2(config.toolsDir, log);
  const lm = await loadCausalLM(smollm2, { ...engine, log, training: true });
  const prefixToken = harnessPrefixToken(lm.tokenizer);
  const encode = (text: string) => lm.tokenizer.encode(text, { addSpecialTokens: false });
  const job: JobDoc[] = docs.map((doc, q) => {
    const digest = sha256(doc.text);
    const neighbors: number[][] = [];
    for (let j = 0; j < K + 5 && neighbors.length < K; j++) {
      const neighbor = train[found.rows[q * (K + 5) + j]!]!;
      if (sha256(neighbor.text) === digest) continue; // an exact copy: the evaluation leaves it out too
      const ids = encode(neighbor.text);
      neighbors.push(MAX_NEIGHBOR_TOKENS > 0 ? ids.slice(0, MAX_NEIGHBOR_TOKENS) : ids);
    }
    const tokens = encode(doc.text);
    return {
      id: `${doc.domain}#${test.indexOf(doc)}`,
      domain: doc.domain,
      bytes: doc.byteLength,
      text: doc.text,
      tokens,
      neighbors,
      windows: rollingWindows(tokens, prefixToken, MAX_LENGTH),
    };
  });
  console.log(
    `${SMOLLM2_DESCRIPTION}; k=${K} MiniLM neighbors (${MAX_NEIGHBOR_TOKENS > 0 ? `first ${MAX_NEIGHBOR_TOKENS} tokens` : 'whole'}), ` +
      `max_length ${MAX_LENGTH}, lr ${LR}, AdamW wd 0.01, clip 1.0, bits/byte after every neighbor (${EVAL_BATCH} windows per forward)`,
  );
  for (const d of job) {
    console.log(
      `  ${d.id}: ${d.bytes} bytes, ${d.tokens.length} tokens (${d.windows.length} windows); neighbors ` +
        `${d.neighbors.map((n) => n.length).join(', ')} tokens -> ${d.neighbors.reduce((a, n) => a + trainingChunks(n, MAX_LENGTH).length, 0)} steps`,
    );
  }

  // PyTorch first: after a TTT step native TensorFlow's arena is too large to fork a child (spawn ENOMEM).
  const jobFile = path.join(os.tmpdir(), `tttnn-bench-ttt-nn-${process.pid}.json`);
  await fs.writeFile(
    jobFile,
    JSON.stringify({
      max_length: MAX_LENGTH,
      lr: LR,
      eval_batch_size: EVAL_BATCH,
      matmul_precision: config.matmulPrecision,
      docs: job.map(({ text: _, ...d }) => d),
    }),
  );
  log('PyTorch side ...');
  const torch = await runPythonJson<TorchResult>('ttt_nn_torch.py', [smollm2, jobFile], {
    name: 'PyTorch',
    needs: 'torch, transformers and gguf',
  });
  await fs.rm(jobFile, { force: true });

  log('tfjs side ...');
  const rssLoaded = process.resourceUsage().maxRSS * 1024;
  const trainer = new TTTTrainer(lm.model, { lr: LR });
  const ours = job.map((d) => {
    const t0 = performance.now();
    const result = runDocument(trainer, d.text, d.tokens, d.neighbors, { maxLength: MAX_LENGTH, prefixToken });
    const seconds = (performance.now() - t0) / 1000;
    log(`  ${d.id}: ${s1(seconds)}`);
    return { seconds, result };
  });
  const peakRss = process.resourceUsage().maxRSS * 1024;
  trainer.dispose();

  const tfjs = `tfjs ${describeBackend(backend)}`;
  console.log(`\nper document: seconds (training / evaluation / other), ${tfjs} vs PyTorch`);
  const split = (total: number, p: { training: number; evaluation: number }) =>
    `${s1(total)} (${s1(p.training)} / ${s1(p.evaluation)} / ${s1(total - p.training - p.evaluation)})`;
  let maxRelDiff = 0;
  let sumOurs = 0;
  let sumTorch = 0;
  job.forEach((d, i) => {
    const mine = ours[i]!;
    const theirs = typeof torch === 'string' ? undefined : torch.docs[i];
    let line = `  ${d.id.padEnd(26)} ${String(mine.result.steps).padStart(3)} steps  tfjs ${split(mine.seconds, mine.result.seconds)}`;
    if (theirs) {
      const diff = Math.max(
        ...mine.result.bitsPerByte.map((b, k) => Math.abs(b - theirs.bpb[k]!) / Math.abs(theirs.bpb[k]!)),
      );
      maxRelDiff = Math.max(maxRelDiff, diff);
      sumOurs += mine.seconds;
      sumTorch += theirs.seconds;
      line +=
        `  PyTorch ${split(theirs.seconds, theirs.split)}  ratio ${(mine.seconds / theirs.seconds).toFixed(2)}x` +
        `  bits/byte ${mine.result.bitsPerByte[0]!.toFixed(4)} -> ${mine.result.bitsPerByte.at(-1)!.toFixed(4)}` +
        ` (max rel. diff ${diff.toExponential(1)})`;
      if (theirs.steps !== mine.result.steps) line += `  STEPS DIFFER: PyTorch ${theirs.steps}`;
    }
    console.log(line);
  });
  if (typeof torch === 'string') {
    console.log(torch);
  } else {
    console.log(
      `  all ${job.length} documents: tfjs ${s1(sumOurs)}, PyTorch ${s1(sumTorch)} (${torch.torch}, ${torch.threads} threads, ` +
        `${torch.attn} attention, matmul precision ${torch.matmul_precision}): ratio ${(sumOurs / sumTorch).toFixed(2)}x; largest bits/byte difference ${maxRelDiff.toExponential(2)} relative`,
    );
    console.log(
      `peak RSS: tfjs ${gib(peakRss)} (after loading ${gib(rssLoaded)}), PyTorch ${gib(torch.peak_rss)} ` +
        `(after loading ${gib(torch.rss_loaded)}): ${(peakRss / torch.peak_rss).toFixed(2)}x`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
