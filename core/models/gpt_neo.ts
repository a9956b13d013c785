import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  activation,
  attention,
  causalBias,
  configNumber,
  dropoutFor,
  embedding,
  layerNorm,
  linear,
  mergeHeads,
  outputLogits,
  PretrainedModel,
  splitHeads,
  type CausalLM,
  type Dropout,
} from './modeling-utils';

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

interface Norm {
  weight: tf.Variable;
  bias: tf.Variable;
}

class GPTNeoBlock {
  constructor(
    readonly ln1: Norm,
    readonly qProj: tf.Variable, // (C, C), no bias
    readonly kProj: tf.Variable,
    readonly vProj: tf.Variable,
    readonly outProjW: tf.Variable,
    readonly outProjB: tf.Variable,
    readonly ln2: Norm,
    readonly cFcW: tf.Variable, // (I, C)
    readonly cFcB: tf.Variable,
    readonly cProjW: tf.Variable, // (C, I)
    readonly cProjB: tf.Variable,
    readonly local: boolean,
    readonly cfg: GPTNeoConfig,
    readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  forward(x: tf.Tensor3D, globalBias: tf.Tensor, localBias: tf.Tensor, drop: Dropout): tf.Tensor3D {
    const { numHeads: nh, eps, attentionDropout, residDropout } = this.cfg;
    const h = layerNorm(x, this.ln1.weight, this.ln1.bias, eps);
    const q = splitHeads(linear(h, this.qProj), nh); // (B, nh, T, hs)
    const k = splitHeads(linear(h, this.kProj), nh);
    const v = splitHeads(linear(h, this.vProj), nh);
    const bias = this.local ? localBias : globalBias;
    const y = mergeHeads(attention(q, k, v, 1, bias, drop, attentionDropout)); // (B, T, C), unscaled
    x = x.add(drop(linear(y, this.outProjW, this.outProjB), residDropout));
    const m = layerNorm(x, this.ln2.weight, this.ln2.bias, eps);
    return x.add(drop(linear(this.act(linear(m, this.cFcW, this.cFcB)), this.cProjW, this.cProjB), residDropout));
  }
}

export class GPTNeoForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: GPTNeoConfig;
  readonly wte: tf.Variable; // (V, C)
  readonly wpe: tf.Variable; // (P, C)
  readonly h: GPTNeoBlock[] = [];
  readonly lnF: Norm;
  readonly lmHead: tf.Variable;
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): GPTNeoForCausalLM {
    return new GPTNeoForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'transformer.']);
    const cfg = (this.cfg = gptNeoConfig(config));
    const C = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const norm = (name: string): Norm => ({
      weight: this.param(`${name}.weight`, [C]),
      bias: this.param(`${name}.bias`, [C]),
    });
    this.wte = this.param('wte.weight', [cfg.vocabSize, C]);
    this.wpe = this.param('wpe.weight', [cfg.maxPositions, C]);
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `h.${i}`;
      const a = `${p}.attn.attention`;
      this.h.push(
        new GPTNeoBlock(
          norm(`${p}.ln_1`),
          this.param(`${a}.q_proj.weight`, [C, C]),
          this.param(`${a}.k_proj.weight`, [C, C]),
          this.param(`${a}.v_proj.weight`, [C, C]),
          this.param(`${a}.out_proj.weight`, [C, C]),
          this.param(`${a}.out_proj.bias`, [C]),
          norm(`${p}.ln_2`),
          this.param(`${p}.mlp.c_fc.weight`, [I, C]),
          this.param(`${p}.mlp.c_fc.bias`, [I]),
          this.param(`${p}.mlp.c_proj.weight`, [C, I]),
          this.param(`${p}.mlp.c_proj.bias`, [C]),
          cfg.attentionLayers[i] === 'local',
          cfg,
          activation(cfg.activation),
        ),
      );
    }
    this.lnF = norm('ln_f');
    this.lmHead = config.tie_word_embeddings === false ? this.param('lm_head.weight', [cfg.vocabSize, C]) : this.wte;
    this.releaseCheckpoint();
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
      for (const block of this.h) x = block.forward(x, globalBias, localBias, drop);
      x = layerNorm(x, this.lnF.weight, this.lnF.bias, this.cfg.eps) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
