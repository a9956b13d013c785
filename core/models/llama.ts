import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  applyRotary,
  attention,
  causalBias,
  type Dropout,
  dropoutFor,
  embedding,
  Linear,
  outputLogits,
  RMSNorm,
  rotaryTables,
  runBlocks,
  swiglu,
} from './layers';
import { configNumber, type ParamScope, PretrainedModel, type CausalLM } from './modeling-utils';

/**
 * Llama (transformers LlamaForCausalLM), e.g. SmolLM2: RMSNorm, rotary position embeddings on whole heads
 * (rotate_half convention), grouped-query attention (num_key_value_heads <= num_attention_heads), SwiGLU MLP,
 * no biases, optionally tied embeddings.
 */

export interface LlamaConfig {
  vocabSize: number;
  maxPositions: number;
  hiddenSize: number; // C
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  eps: number;
  ropeTheta: number;
  attentionDropout: number;
  tieWordEmbeddings: boolean;
}

export function llamaConfig(c: HfConfig): LlamaConfig {
  const hiddenSize = configNumber(c, 'hidden_size');
  const numHeads = configNumber(c, 'num_attention_heads');
  const rope = (c.rope_parameters ?? {}) as { rope_theta?: number; rope_type?: string };
  const scaling = c.rope_scaling as { rope_type?: string; type?: string } | null | undefined;
  const ropeType = rope.rope_type ?? scaling?.rope_type ?? scaling?.type ?? 'default';
  if (ropeType !== 'default') throw new Error(`rope_type ${ropeType} is not supported`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu')
    throw new Error(`hidden_act ${JSON.stringify(c.hidden_act)} is not supported`);
  if (c.attention_bias === true || c.mlp_bias === true)
    throw new Error('Llama checkpoints with biases are not supported');
  return {
    vocabSize: configNumber(c, 'vocab_size'),
    maxPositions: configNumber(c, 'max_position_embeddings'),
    hiddenSize,
    numLayers: configNumber(c, 'num_hidden_layers'),
    numHeads,
    numKvHeads: typeof c.num_key_value_heads === 'number' ? c.num_key_value_heads : numHeads,
    headDim: typeof c.head_dim === 'number' ? c.head_dim : hiddenSize / numHeads,
    intermediateSize: configNumber(c, 'intermediate_size'),
    eps: typeof c.rms_norm_eps === 'number' ? c.rms_norm_eps : 1e-6,
    ropeTheta: rope.rope_theta ?? (typeof c.rope_theta === 'number' ? c.rope_theta : 10000),
    attentionDropout: typeof c.attention_dropout === 'number' ? c.attention_dropout : 0,
    tieWordEmbeddings: c.tie_word_embeddings !== false,
  };
}

// ---------------------------------------------------------------------------------------------------------------

class LlamaAttention {
  readonly qProj: Linear; // (nh*hs, C)
  readonly kProj: Linear; // (nkv*hs, C)
  readonly vProj: Linear; // (nkv*hs, C)
  readonly oProj: Linear; // (C, nh*hs)

  constructor(
    p: ParamScope,
    readonly cfg: LlamaConfig,
  ) {
    const { hiddenSize: C, numHeads: nh, numKvHeads: nkv, headDim: hs } = cfg;
    this.qProj = new Linear(p.sub('q_proj'), C, nh * hs, false);
    this.kProj = new Linear(p.sub('k_proj'), C, nkv * hs, false);
    this.vProj = new Linear(p.sub('v_proj'), C, nkv * hs, false);
    this.oProj = new Linear(p.sub('o_proj'), nh * hs, C, false);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor {
    const [B, T] = x.shape;
    const { numHeads: nh, numKvHeads: nkv, headDim: hs } = this.cfg;
    const heads = (proj: Linear, n: number) =>
      proj.forward(x).reshape([B, T, n, hs]).transpose<tf.Tensor4D>([0, 2, 1, 3]);
    const q = applyRotary(heads(this.qProj, nh), cos, sin); // (B, nh, T, hs)
    const k = applyRotary(heads(this.kProj, nkv), cos, sin); // (B, nkv, T, hs)
    const v = heads(this.vProj, nkv); // (B, nkv, T, hs)
    // Grouped-query attention without copying k and v: query heads kv*rep .. kv*rep + rep - 1 share kv head kv, so
    // q viewed as (B, nkv, rep*T, hs) attends k (B, nkv, T, hs) directly, with the causal bias repeated rep times
    // (`bias` is (rep*T, T), tiled once per forward pass).
    const rep = nh / nkv;
    const qg = q.reshape<tf.Tensor4D>([B, nkv, rep * T, hs]);
    const y = attention(qg, k, v, 1 / Math.sqrt(hs), bias, drop, this.cfg.attentionDropout); // (B, nkv, rep*T, hs)
    const merged = y
      .reshape([B, nh, T, hs])
      .transpose([0, 2, 1, 3])
      .reshape([B, T, nh * hs]);
    return this.oProj.forward(merged); // (B, T, C)
  }
}

class LlamaMLP {
  readonly gateProj: Linear; // (I, C)
  readonly upProj: Linear; // (I, C)
  readonly downProj: Linear; // (C, I)

  constructor(p: ParamScope, cfg: LlamaConfig) {
    const { hiddenSize: C, intermediateSize: I } = cfg;
    this.gateProj = new Linear(p.sub('gate_proj'), C, I, false);
    this.upProj = new Linear(p.sub('up_proj'), C, I, false);
    this.downProj = new Linear(p.sub('down_proj'), I, C, false);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.downProj.forward(swiglu(this.gateProj.forward(x), this.upProj.forward(x))); // silu(gate) * up
  }
}

class LlamaDecoderLayer {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: LlamaAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: LlamaMLP;

  constructor(p: ParamScope, cfg: LlamaConfig) {
    this.inputLayernorm = new RMSNorm(p.sub('input_layernorm'), cfg.hiddenSize, cfg.eps);
    this.selfAttn = new LlamaAttention(p.sub('self_attn'), cfg);
    this.postAttentionLayernorm = new RMSNorm(p.sub('post_attention_layernorm'), cfg.hiddenSize, cfg.eps);
    this.mlp = new LlamaMLP(p.sub('mlp'), cfg);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor3D {
    const h = x.add(this.selfAttn.forward(this.inputLayernorm.forward(x) as tf.Tensor3D, bias, cos, sin, drop));
    return h.add(this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

export class LlamaForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: LlamaConfig;
  readonly embedTokens: tf.Variable; // (V, C)
  readonly layers: LlamaDecoderLayer[] = [];
  readonly norm: RMSNorm;
  readonly lmHead: tf.Variable;
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): LlamaForCausalLM {
    return new LlamaForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'model.']);
    const cfg = (this.cfg = llamaConfig(config));
    const p = this.scope();
    this.embedTokens = p.param('embed_tokens.weight', [cfg.vocabSize, cfg.hiddenSize]);
    for (let i = 0; i < cfg.numLayers; i++) this.layers.push(new LlamaDecoderLayer(p.sub(`layers.${i}`), cfg));
    this.norm = new RMSNorm(p.sub('norm'), cfg.hiddenSize, cfg.eps);
    const tied = cfg.tieWordEmbeddings;
    this.lmHead = tied ? this.embedTokens : p.param('lm_head.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.finishLoading([
      // The rotary frequencies, a buffer that older checkpoints saved per layer (or once).
      /^(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/,
      // A tied head is embed_tokens: transformers overwrites a stored lm_head.weight with it after loading.
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
      let x = embedding(this.embedTokens, inputIds) as tf.Tensor3D; // (B, T, C)
      const rep = this.cfg.numHeads / this.cfg.numKvHeads;
      const bias = rep === 1 ? causalBias(T) : tf.tile(causalBias(T), [rep, 1]); // see LlamaAttention
      const [cos, sin] = rotaryTables(T, this.cfg.headDim, this.cfg.ropeTheta); // (T, hs)
      x = runBlocks(x, this.layers, (layer, h) => layer.forward(h, bias, cos, sin, drop));
      x = this.norm.forward(x) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
