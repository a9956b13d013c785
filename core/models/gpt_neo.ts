import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  type Activation,
  activation,
  attention,
  causalBias,
  type Dropout,
  dropoutFor,
  embedding,
  LayerNorm,
  Linear,
  mergeHeads,
  outputLogits,
  runBlocks,
  splitHeads,
} from './layers';
import { configNumber, type ParamScope, PretrainedModel, type CausalLM } from './modeling-utils';

/**
 * GPT-Neo (transformers GPTNeoForCausalLM): GPT-2's layout with torch Linear layers (weights (out, in)), bias-free
 * q/k/v projections, attention logits NOT scaled by 1/sqrt(hs), and layers alternating between global and local
 * attention (a causal window of `window_size` tokens), as listed by `attention_types`.
 */

export interface GPTNeoConfig {
  vocabSize: number;
  maxPositions: number;
  hiddenSize: number; // C
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  eps: number;
  activation: string;
  /** Per layer: 'global' or 'local'. */
  attentionLayers: string[];
  windowSize: number;
  embedDropout: number;
  attentionDropout: number;
  residDropout: number;
}

export function gptNeoConfig(c: HfConfig): GPTNeoConfig {
  const hiddenSize = configNumber(c, 'hidden_size');
  const numLayers = configNumber(c, 'num_layers', 'num_hidden_layers');
  // attention_types: [[["global", "local"], 12]] expands to global, local, global, local, ... (24 layers).
  const types = (c.attention_types as [string[], number][] | undefined) ?? [[['global'], numLayers]];
  const attentionLayers = types.flatMap(([kinds, repeat]) => Array.from({ length: repeat }, () => kinds).flat());
  if (attentionLayers.length !== numLayers) {
    throw new Error(`attention_types lists ${attentionLayers.length} layers but num_layers is ${numLayers}`);
  }
  return {
    vocabSize: configNumber(c, 'vocab_size'),
    maxPositions: configNumber(c, 'max_position_embeddings'),
    hiddenSize,
    numLayers,
    numHeads: configNumber(c, 'num_heads', 'num_attention_heads'),
    intermediateSize: typeof c.intermediate_size === 'number' ? c.intermediate_size : 4 * hiddenSize,
    eps: typeof c.layer_norm_epsilon === 'number' ? c.layer_norm_epsilon : 1e-5,
    activation: typeof c.activation_function === 'string' ? c.activation_function : 'gelu_new',
    attentionLayers,
    windowSize: typeof c.window_size === 'number' ? c.window_size : 256,
    embedDropout: typeof c.embed_dropout === 'number' ? c.embed_dropout : 0,
    attentionDropout: typeof c.attention_dropout === 'number' ? c.attention_dropout : 0,
    residDropout: typeof c.resid_dropout === 'number' ? c.resid_dropout : 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------

class GPTNeoSelfAttention {
  readonly qProj: Linear; // (C, C), no bias
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear; // (C, C)

  constructor(
    p: ParamScope,
    readonly cfg: GPTNeoConfig,
    /** Attends a causal window of `window_size` tokens rather than the whole prefix. */
    readonly local: boolean,
  ) {
    const C = cfg.hiddenSize;
    this.qProj = new Linear(p.sub('q_proj'), C, C, false);
    this.kProj = new Linear(p.sub('k_proj'), C, C, false);
    this.vProj = new Linear(p.sub('v_proj'), C, C, false);
    this.outProj = new Linear(p.sub('out_proj'), C, C);
  }

  forward(x: tf.Tensor, globalBias: tf.Tensor, localBias: tf.Tensor, drop: Dropout): tf.Tensor {
    const nh = this.cfg.numHeads;
    const q = splitHeads(this.qProj.forward(x), nh); // (B, nh, T, hs)
    const k = splitHeads(this.kProj.forward(x), nh);
    const v = splitHeads(this.vProj.forward(x), nh);
    const bias = this.local ? localBias : globalBias;
    const y = mergeHeads(attention(q, k, v, 1, bias, drop, this.cfg.attentionDropout)); // (B, T, C), unscaled
    return drop(this.outProj.forward(y), this.cfg.residDropout);
  }
}

class GPTNeoMLP {
  readonly cFc: Linear; // (I, C)
  readonly cProj: Linear; // (C, I)
  readonly act: Activation;

  constructor(
    p: ParamScope,
    readonly cfg: GPTNeoConfig,
  ) {
    this.cFc = new Linear(p.sub('c_fc'), cfg.hiddenSize, cfg.intermediateSize);
    this.cProj = new Linear(p.sub('c_proj'), cfg.intermediateSize, cfg.hiddenSize);
    this.act = activation(cfg.activation);
  }

  forward(x: tf.Tensor, drop: Dropout): tf.Tensor {
    return drop(this.cProj.forward(this.cFc.forward(x, this.act)), this.cfg.residDropout);
  }
}

class GPTNeoBlock {
  readonly ln1: LayerNorm;
  readonly attn: GPTNeoSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: GPTNeoMLP;

  constructor(p: ParamScope, cfg: GPTNeoConfig, layerIdx: number) {
    const local = cfg.attentionLayers[layerIdx] === 'local';
    this.ln1 = new LayerNorm(p.sub('ln_1'), cfg.hiddenSize, cfg.eps);
    // transformers' GPTNeoAttention only wraps the global or local self-attention, hence `attn.attention`.
    this.attn = new GPTNeoSelfAttention(p.sub('attn.attention'), cfg, local);
    this.ln2 = new LayerNorm(p.sub('ln_2'), cfg.hiddenSize, cfg.eps);
    this.mlp = new GPTNeoMLP(p.sub('mlp'), cfg);
  }

  forward(x: tf.Tensor3D, globalBias: tf.Tensor, localBias: tf.Tensor, drop: Dropout): tf.Tensor3D {
    x = x.add(this.attn.forward(this.ln1.forward(x), globalBias, localBias, drop));
    return x.add(this.mlp.forward(this.ln2.forward(x), drop));
  }
}

export class GPTNeoForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: GPTNeoConfig;
  readonly wte: tf.Variable; // (V, C)
  readonly wpe: tf.Variable; // (P, C)
  readonly h: GPTNeoBlock[] = [];
  readonly lnF: LayerNorm;
  readonly lmHead: tf.Variable;
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): GPTNeoForCausalLM {
    return new GPTNeoForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'transformer.']);
    const cfg = (this.cfg = gptNeoConfig(config));
    const p = this.scope();
    this.wte = p.param('wte.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.wpe = p.param('wpe.weight', [cfg.maxPositions, cfg.hiddenSize]);
    for (let i = 0; i < cfg.numLayers; i++) this.h.push(new GPTNeoBlock(p.sub(`h.${i}`), cfg, i));
    this.lnF = new LayerNorm(p.sub('ln_f'), cfg.hiddenSize, cfg.eps);
    const tied = config.tie_word_embeddings !== false;
    this.lmHead = tied ? this.wte : p.param('lm_head.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.finishLoading([
      // The causal (or local) mask and its fill value, buffers that EleutherAI's checkpoints saved.
      /^h\.\d+\.attn\.attention\.(masked_)?bias$/,
      // A tied head is wte: transformers overwrites a stored lm_head.weight with it after loading.
      ...(tied ? [/^lm_head\.weight$/] : []),
    ]);
  }

  get vocabSize(): number {
    return this.cfg.vocabSize;
  }
  get maxPositions(): number {
    return this.cfg.maxPositions;
  }

  forward(inputIds: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const T = inputIds.shape[1];
      if (T > this.cfg.maxPositions) throw new Error(`sequence length ${T} exceeds ${this.cfg.maxPositions} positions`);
      const drop = dropoutFor(this.training);
      const emb = embedding(this.wte, inputIds).add(embedding(this.wpe, tf.range(0, T, 1, 'int32')));
      let x = drop(emb, this.cfg.embedDropout) as tf.Tensor3D; // (B, T, C)
      const globalBias = causalBias(T);
      const localBias = causalBias(T, this.cfg.windowSize);
      x = runBlocks(x, this.h, (block, h) => block.forward(h, globalBias, localBias, drop));
      x = this.lnF.forward(x) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
