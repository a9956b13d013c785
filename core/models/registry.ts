import path from 'node:path';
import { type BackendInfo, type EngineSettings, initBackend } from '../backend';
import { ggufToHfCheckpoint, readGgufFile } from '../checkpoints/gguf';
import { loadHfCheckpoint, type HfCheckpoint, type LoadOptions } from '../checkpoints/hf-folder';
import { TextTokenizer } from '../tokenizers/tokenizer';
import { BertModel } from './bert';
import { GPT2LMHeadModel } from './gpt2';
import { GPTNeoForCausalLM } from './gpt_neo';
import { GPTNeoXForCausalLM } from './gpt_neox';
import { LlamaForCausalLM } from './llama';
import type { CausalLM, CausalLMClass, Encoder, EncoderClass } from './modeling-utils';

/** config.json `model_type` to the class that implements it (transformers.js's registry.js, one Map per task). */
export const CAUSAL_LM_MODELS = new Map<string, CausalLMClass>([
  ['gpt2', GPT2LMHeadModel],
  ['gpt_neo', GPTNeoForCausalLM],
  ['gpt_neox', GPTNeoXForCausalLM],
  ['llama', LlamaForCausalLM],
]);

export const ENCODER_MODELS = new Map<string, EncoderClass>([
  ['bert', BertModel],
  ['roberta', BertModel],
  ['xlm-roberta', BertModel],
]);

/** The engine settings (engineSettings): the first load picks backend and matmul precision unless already chosen. */
export interface ModelLoadOptions extends LoadOptions, EngineSettings {
  /** The model will be fine-tuned (TTT): weights, their reset copy, Adam's two moments and the gradients. */
  training?: boolean;
}

/**
 * What the WASM backend can hold. Its heap is 32-bit; a 2.5 GB TTT state (GPT-2 124M) was measured to abort with
 * "memory access out of bounds" minutes into a run, so we refuse before loading anything past 2 GiB.
 */
const WASM_HEAP_BYTES = 2 ** 31;

/** Fails with one line, before any weight reaches the backend, when the WASM backend cannot hold the model. */
function checkFits(backend: BackendInfo, ckpt: Pick<HfCheckpoint, 'weights' | 'weightsFile'>, training: boolean) {
  if (backend.name !== 'wasm') return;
  let parameters = 0;
  for (const tensor of ckpt.weights.values()) parameters += tensor.data.length;
  checkWasmFits(parameters, ckpt.weightsFile, training);
}

export function checkWasmFits(parameters: number, file: string, training: boolean): void {
  const bytes = parameters * 4 * (training ? 5 : 1.5);
  if (bytes > WASM_HEAP_BYTES) {
    throw new Error(
      `${file}: ${(parameters / 1e6).toFixed(0)}M parameters need ~${(bytes / 2 ** 30).toFixed(1)} GiB ` +
        `${training ? 'for test-time training' : 'to run'}, more than the WASM backend holds (2 GiB); ` +
        "run 'tttnn setup' to build native TensorFlow, or use a smaller model",
    );
  }
}

export interface Loaded<M> {
  model: M;
  tokenizer: TextTokenizer;
  checkpoint: Omit<HfCheckpoint, 'weights'>;
}

/**
 * Loads a causal LM and its tokenizer from a local HF folder, a Hub id (through the cache) or a `.gguf` file
 * (Llama architecture, dequantized to float32).
 */
export async function loadCausalLM(idOrDir: string, opts: ModelLoadOptions = {}): Promise<Loaded<CausalLM>> {
  const backend = await initBackend({ backend: opts.backend, matmulPrecision: opts.matmulPrecision, log: opts.log });
  const ckpt = idOrDir.endsWith('.gguf')
    ? { dir: idOrDir, weightsFile: idOrDir, ...ggufToHfCheckpoint(await readGgufFile(idOrDir), idOrDir) }
    : await loadHfCheckpoint(idOrDir, opts);
  checkFits(backend, ckpt, opts.training === true);
  const cls = CAUSAL_LM_MODELS.get(ckpt.config.model_type);
  if (!cls) {
    throw new Error(
      `${path.join(ckpt.dir, 'config.json')}: unsupported causal LM model_type '${ckpt.config.model_type}' (supported: ${[...CAUSAL_LM_MODELS.keys()].join(', ')})`,
    );
  }
  const stored = storedDtypes(ckpt);
  return finish(ckpt, cls.fromCheckpoint(ckpt), stored, opts.log);
}

/** Loads an embedding encoder (BERT / MiniLM / RoBERTa) and its tokenizer. */
export async function loadEncoder(idOrDir: string, opts: ModelLoadOptions = {}): Promise<Loaded<Encoder>> {
  const backend = await initBackend({ backend: opts.backend, matmulPrecision: opts.matmulPrecision, log: opts.log });
  const ckpt = await loadHfCheckpoint(idOrDir, opts);
  checkFits(backend, ckpt, false);
  const cls = ENCODER_MODELS.get(ckpt.config.model_type);
  if (!cls) {
    throw new Error(
      `${path.join(ckpt.dir, 'config.json')}: unsupported encoder model_type '${ckpt.config.model_type}' (supported: ${[...ENCODER_MODELS.keys()].join(', ')})`,
    );
  }
  const stored = storedDtypes(ckpt);
  return finish(ckpt, cls.fromCheckpoint(ckpt), stored, opts.log);
}

/**
 * How the checkpoint stores its tensors, e.g. `Q4_1 x 210, F32 x 61, Q8_0 x 1`: read before the model takes the
 * weights (it frees them), so that the load line can say when the weights are quantised rather than the originals.
 */
function storedDtypes(ckpt: Pick<HfCheckpoint, 'weights'>): string {
  const counts = new Map<string, number>();
  for (const tensor of ckpt.weights.values()) counts.set(tensor.dtype, (counts.get(tensor.dtype) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([dtype, n]) => `${dtype} x ${n}`)
    .join(', ');
}

async function finish<M extends CausalLM | Encoder>(
  ckpt: HfCheckpoint,
  model: M,
  stored: string,
  log: ((line: string) => void) | undefined,
): Promise<Loaded<M>> {
  const tokenizer = await TextTokenizer.fromCheckpoint(ckpt);
  // Tied weights count once, as the trainer holds them.
  const parameters = [...new Set(model.params.values())].reduce((sum, v) => sum + v.size, 0);
  const count = parameters >= 1e6 ? `${(parameters / 1e6).toFixed(1)}M` : String(parameters);
  log?.(
    `loaded ${ckpt.weightsFile}: ${ckpt.config.model_type}, ${count} parameters, stored as ${stored}, ` +
      'computed in float32',
  );
  const { weights: _weights, ...rest } = ckpt;
  return { model, tokenizer, checkpoint: rest };
}
