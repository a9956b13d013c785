import { engineSettings } from '../core/backend';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config';
import { pushModel } from '../core/checkpoints/from-store';
import { bitsPerByte, harnessPrefixToken } from '../core/metrics/bits-per-byte';
import { openStore } from '../core/store/open-store';
import { loadCausalLM } from '../core/models/registry';
import { TTTTrainer, runDocument } from '../core/training/ttt';
import { NAMED_MODEL_DESCRIPTIONS, NAMED_MODELS, locateModel as locateModelIn } from '../infra/models';
import { ensureEngine } from '../infra/engine';

export interface LmOptions {
  model: string;
  maxLength: number;
  /** The token before the first evaluation window; default lm-evaluation-harness's (BOS, else EOS). */
  prefixToken?: number;
}

/** A model as `--model` names it, located on this machine (see infra/models.ts). */
export function locateModel(config: Config, model: string, log: (line: string) => void): Promise<string> {
  return locateModelIn(model, { toolsDir: config.toolsDir, openStore: (url) => openStore(url, config), log });
}

/**
 * `tttnn model push`: uploads a named model (fetched by setup), a `.gguf` file or an HF folder to the artifact store
 * as a model version, `<to>/<name>/<version>`, that workers and `--model` load (verified) from there.
 */
export async function pushModelCommand(
  config: Config,
  options: { model: string; to: string; name?: string },
  log: (line: string) => void,
): Promise<string> {
  if (!options.to.startsWith('s3://') && !options.to.startsWith('file://')) {
    throw new Error(`--to ${options.to}: expected an s3:// or file:// location`);
  }
  const local = await locateModel(config, options.model, log);
  const name =
    options.name ?? (NAMED_MODELS[options.model] ? options.model : path.basename(local).replace(/\.gguf$/, ''));
  const store = openStore(options.to, config);
  const { key, uploaded } = await pushModel(store, name, local, log);
  const url = `${options.to.replace(/\/+$/, '')}/${key}`;
  log(`${uploaded ? 'pushed' : 'already pushed'}: model version ${url} (use it with --model ${url})`);
  return url;
}

async function load(config: Config, options: LmOptions & { training: boolean }, log: (line: string) => void) {
  await ensureEngine(config, log);
  const location = await locateModel(config, options.model, log);
  // A named model's name alone does not say which variant it is (smollm2-135m: Instruct, quantised).
  const named = NAMED_MODEL_DESCRIPTIONS[options.model];
  if (named) log(`${options.model}: ${named}`);
  const loaded = await loadCausalLM(location, { ...engineSettings(config), log, training: options.training });
  const prefixToken = harnessPrefixToken(loaded.tokenizer, options.prefixToken);
  if (prefixToken >= loaded.model.vocabSize) {
    throw new Error(`--prefix-token ${prefixToken}: ${location} has a vocabulary of ${loaded.model.vocabSize} tokens`);
  }
  return { ...loaded, prefixToken, location };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A document as UTF-8 text; bytes that are not UTF-8 are refused (as ingest skips them: `invalid_utf8`). */
async function readText(file: string): Promise<string> {
  const bytes = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    // Replacing them would score characters that are not in the file, over a byte count that is not its size.
    throw new Error(`${file} is not valid UTF-8 text (${invalidUtf8Offset(bytes)}); convert it to UTF-8 first`);
  }
  if (text.trim() === '') throw new Error(`${file} is empty: bits per byte needs at least one byte of text`);
  return text;
}

/** "first invalid byte at offset N": where lenient decoding put its first replacement character for bad bytes. */
function invalidUtf8Offset(bytes: Buffer): string {
  const lenient = bytes.toString('utf8');
  for (let i = lenient.indexOf('\uFFFD'); i !== -1; i = lenient.indexOf('\uFFFD', i + 1)) {
    const offset = Buffer.byteLength(lenient.slice(0, i));
    // A U+FFFD written in the file itself (EF BF BD) is valid text.
    if (!bytes.subarray(offset, offset + 3).equals(Buffer.from([0xef, 0xbf, 0xbd]))) {
      return `first invalid byte at offset ${offset}`;
    }
  }
  return 'invalid bytes';
}

/** `tttnn lm bpb`: bits per byte of a document, scored with lm-evaluation-harness's rolling windows. */
export async function lmBitsPerByte(
  config: Config,
  options: LmOptions & { file: string },
  log: (line: string) => void,
): Promise<void> {
  const text = await readText(options.file);
  const { model, tokenizer, prefixToken } = await load(config, { ...options, training: false }, log);
  const tokens = tokenizer.encode(text, { addSpecialTokens: false });
  const result = bitsPerByte(model, text, tokens, { prefixToken, maxLength: options.maxLength });
  log(
    `${options.file}: ${result.bitsPerByte.toFixed(4)} bits/byte (${result.tokens} tokens, ${result.bytes} bytes, ` +
      `max_length ${options.maxLength}, prefix token ${prefixToken})`,
  );
}

/** `tttnn lm ttt`: TTT-NN on one document: bits/byte before and after training on each neighbor, nearest first. */
export async function lmTestTimeTraining(
  config: Config,
  options: LmOptions & { doc: string; neighbors: string[]; lr: number },
  log: (line: string) => void,
): Promise<void> {
  const text = await readText(options.doc);
  const neighborTexts = await Promise.all(options.neighbors.map(readText));
  const { model, tokenizer, prefixToken } = await load(config, { ...options, training: true }, log);
  const trainer = new TTTTrainer(model, { lr: options.lr });
  const started = Date.now();
  const result = runDocument(
    trainer,
    text,
    tokenizer.encode(text, { addSpecialTokens: false }),
    neighborTexts.map((t) => tokenizer.encode(t, { addSpecialTokens: false })),
    {
      prefixToken,
      maxLength: options.maxLength,
      onNeighbor: (k, bpb) => log(`after neighbor ${k} (${options.neighbors[k - 1]}): ${bpb.toFixed(4)} bits/byte`),
    },
  );
  const seconds = (Date.now() - started) / 1000;
  log(
    `${options.doc}: ${result.bitsPerByte[0]!.toFixed(4)} → ${result.bitsPerByte.at(-1)!.toFixed(4)} bits/byte ` +
      `after ${result.steps} TTT steps on ${options.neighbors.length} neighbors (${seconds.toFixed(1)} s); weights reset`,
  );
  trainer.dispose();
}
