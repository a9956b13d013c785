import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeBackend, initBackend } from '../core/backend';
import { loadConfig } from '../core/config';
import { embedTexts } from '../core/embed';
import { loadEncoder } from '../core/models/registry';
import { ensureMiniLM } from '../infra/models';
import { achieved, forwardFlops, measurePeaks, shapeFromConfig } from './flops';
import { machineLine, runPythonJson } from './harness';
import { readSampleTexts } from './sample-texts';

/**
 * `npm run bench:embed`: embedding throughput of all-MiniLM-L6-v2 (the index's encoder) in tfjs (`embedTexts`)
 * and in sentence-transformers on the same machine in the same run, on the same texts (the bundled sample corpus),
 * with the same max length (256), batch size, mean pooling and L2 normalisation, from the same local folder.
 * Both time text in, vectors out (tokenization included), and the embeddings are compared, so that the figures
 * are of the same work. Both sort texts by length before batching (tttnn by tokens, sentence-transformers by
 * characters), so their padding differs slightly; FLOPs count the real tokens only.
 * Settings: BENCH_TEXTS (all 180 documents of the sample), BENCH_BATCH (32, sentence-transformers' default),
 * BENCH_REPS (1 pass over the texts after a warm-up batch), BENCH_PYTHON (python3), BENCH_PEAK_N (2048).
 */
const MAX_LENGTH = 256;
const BATCH = Number(process.env.BENCH_BATCH ?? 32);
const REPS = Number(process.env.BENCH_REPS ?? 1);
const TEXTS = process.env.BENCH_TEXTS === undefined ? Infinity : Number(process.env.BENCH_TEXTS);

interface TorchResult {
  torch: string;
  sentence_transformers: string;
  threads: number;
  seconds: number;
  tokens: number;
  dim: number;
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(machineLine());
  const { peaks, torch: noTorch } = await measurePeaks();

  const texts = await readSampleTexts(TEXTS);
  const folder = await ensureMiniLM(loadConfig().toolsDir, (line) => console.error(line));
  const { model, tokenizer } = await loadEncoder(folder);
  // Real tokens per text (special tokens included, truncated as transformers does): the work both sides do.
  const tok0 = performance.now();
  const lengths = texts.map((t) => (tokenizer.encodeBatch([t], MAX_LENGTH).inputIds[0] as number[]).length);
  const tokenizeS = (performance.now() - tok0) / 1000;
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const shape = shapeFromConfig(model.config);
  const flops = lengths.reduce((sum, t) => sum + forwardFlops(shape, t), 0);
  console.log(
    `all-MiniLM-L6-v2 on ${texts.length} sample texts, ${tokens} tokens (max_length ${MAX_LENGTH}, ` +
      `${lengths.filter((t) => t === MAX_LENGTH).length} truncated), batch ${BATCH}, mean pooling + L2 norm: ` +
      `${(flops / 1e12).toFixed(3)} TFLOP; tokenizing them alone takes ${tokenizeS.toFixed(2)} s in tttnn`,
  );

  const opts = { maxLength: MAX_LENGTH, normalize: true, batchSize: BATCH };
  let vectors: Float32Array[] = [];
  // The warm-up batch builds kernels; then REPS passes over all the texts.
  embedTexts(model, tokenizer, texts.slice(0, BATCH), opts);
  const t0 = performance.now();
  for (let i = 0; i < REPS; i++) vectors = embedTexts(model, tokenizer, texts, opts);
  const tfjsS = (performance.now() - t0) / REPS / 1000;
  model.dispose();
  const tfjs = `tfjs ${describeBackend(backend)}`;
  console.log(
    `${tfjs}: ${(texts.length / tfjsS).toFixed(1)} texts/s, ${(tokens / tfjsS).toFixed(0)} tokens/s ` +
      `(${tfjsS.toFixed(2)} s; ${achieved(flops, tfjsS, peaks)})`,
  );

  if (noTorch !== undefined) {
    console.log(noTorch);
    return;
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-bench-embed-'));
  try {
    const textsFile = path.join(dir, 'texts.json');
    const outFile = path.join(dir, 'embeddings.f32');
    await fs.writeFile(textsFile, JSON.stringify(texts));
    const torch = await runPythonJson<TorchResult>('embed_torch.py', [
      folder,
      textsFile,
      outFile,
      String(MAX_LENGTH),
      String(BATCH),
      String(REPS),
    ]);
    if (typeof torch === 'string') {
      console.log(torch);
      return;
    }
    console.log(
      `PyTorch ${torch.torch}, sentence-transformers ${torch.sentence_transformers} (${torch.threads} threads): ` +
        `${(texts.length / torch.seconds).toFixed(1)} texts/s, ${(tokens / torch.seconds).toFixed(0)} tokens/s ` +
        `(${torch.seconds.toFixed(2)} s; ${achieved(flops, torch.seconds, peaks)})`,
    );
    if (torch.tokens !== tokens) console.log(`warning: sentence-transformers counted ${torch.tokens} tokens`);
    const buf = await fs.readFile(outFile);
    const reference = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    console.log(`embeddings agree: ${agreement(vectors, reference, torch.dim)}`);
    console.log(`ratio tfjs/PyTorch time: ${(tfjsS / torch.seconds).toFixed(2)}x`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Max abs difference and lowest cosine between our vectors and the reference's (row-major, `dim` wide). */
function agreement(ours: Float32Array[], reference: Float32Array, dim: number): string {
  if (reference.length !== ours.length * dim || ours[0]?.length !== dim) {
    return `no: ${ours.length} x ${ours[0]?.length} vs ${reference.length / dim} x ${dim}`;
  }
  let maxAbs = 0;
  let minCos = Infinity;
  ours.forEach((v, i) => {
    let dot = 0;
    let nv = 0;
    let nr = 0;
    for (let c = 0; c < dim; c++) {
      const r = reference[i * dim + c] as number;
      const x = v[c] as number;
      maxAbs = Math.max(maxAbs, Math.abs(x - r));
      dot += x * r;
      nv += x * x;
      nr += r * r;
    }
    minCos = Math.min(minCos, dot / Math.sqrt(nv * nr));
  });
  return `max abs difference ${maxAbs.toExponential(1)}, lowest cosine ${minCos.toFixed(7)} over ${ours.length} texts`;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
