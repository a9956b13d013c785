import path from 'node:path';
import { initBackend, type BackendChoice } from '../backend';
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

export interface ModelLoadOptions extends LoadOptions {
  /** Backend to compute on; the first load picks it (native TensorFlow when available) unless already chosen. */
  backend?: BackendChoice;
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
  await initBackend({ backend: opts.backend, log: opts.log });
  const ckpt = idOrDir.endsWith('.gguf')
    ? { dir: idOrDir, weightsFile: idOrDir, ...ggufToHfCheckpoint(await readGgufFile(idOrDir), idOrDir) }
    : await loadHfCheckpoint(idOrDir, opts);
  const cls = CAUSAL_LM_MODELS.get(ckpt.config.model_type);
  if (!cls) {
    throw new Error(
      `${path.join(ckpt.dir, 'config.json')}: unsupported causal LM model_type '${ckpt.config.model_type}' (supported: ${[...CAUSAL_LM_MODELS.keys()].join(', ')})`,
    );
  }
  return finish(ckpt, cls.fromCheckpoint(ckpt));
}

/** Loads an embedding encoder (BERT / MiniLM / RoBERTa) and its tokenizer. */
export async function loadEncoder(idOrDir: string, opts: ModelLoadOptions = {}): Promise<Loaded<Encoder>> {
  await initBackend({ backend: opts.backend, log: opts.log });
  const ckpt = await loadHfCheckpoint(idOrDir, opts);
  const cls = ENCODER_MODELS.get(ckpt.config.model_type);
  if (!cls) {
    throw new Error(
      `${path.join(ckpt.dir, 'config.json')}: unsupported encoder model_type '${ckpt.config.model_type}' (supported: ${[...ENCODER_MODELS.keys()].join(', ')})`,
    );
  }
  return finish(ckpt, cls.fromCheckpoint(ckpt));
}

async function finish<M>(ckpt: HfCheckpoint, model: M): Promise<Loaded<M>> {
  const tokenizer = await TextTokenizer.fromCheckpoint(ckpt);
  const { weights: _weights, ...rest } = ckpt;
  return { model, tokenizer, checkpoint: rest };
}
