import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  attention,
  causalBias,
  configNumber,
  dropoutFor,
  embedding,
  linear,
  outputLogits,
  PretrainedModel,
  type CausalLM,
  type Dropout,
} from './modeling-utils';

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

/** LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias). */
function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(weight);
}

/** cos and sin tables (T, hs): angle(t, i) = t * theta^(-2i/hs), the same for both halves of a head. */
function rotaryTables(T: number, dims: number, theta: number): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const invFreq = tf.tensor1d(
      Array.from({ length: dims / 2 }, (_, i) => 1 / theta ** ((2 * i) / dims)),
      'float32',
    );
    const freqs = tf.outerProduct(tf.range(0, T, 1, 'float32'), invFreq); // (T, hs/2)
    const emb = tf.concat([freqs, freqs], -1); // (T, hs)
    return [tf.cos(emb), tf.sin(emb)];
  });
}

/** x*cos + rotate_half(x)*sin for (B, heads, T, hs); rotate_half(x) = [-x2, x1]. */
function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, -1);
  const rotated = tf.concat([tf.neg(x2 as tf.Tensor), x1 as tf.Tensor], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

class LlamaDecoderLayer {
  constructor(
    readonly inputLayernorm: tf.Variable,
    readonly qProj: tf.Variable, // (nh*hs, C)
    readonly kProj: tf.Variable, // (nkv*hs, C)
    readonly vProj: tf.Variable, // (nkv*hs, C)
    readonly oProj: tf.Variable, // (C, nh*hs)
    readonly postAttentionLayernorm: tf.Variable,
    readonly gateProj: tf.Variable, // (I, C)
    readonly upProj: tf.Variable, // (I, C)
    readonly downProj: tf.Variable, // (C, I)
    readonly cfg: LlamaConfig,
  ) {}

  attention(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor {
    const [B, T] = x.shape;
    const { numHeads: nh, numKvHeads: nkv, headDim: hs } = this.cfg;
    const heads = (w: tf.Tensor, n: number) => linear(x, w).reshape([B, T, n, hs]).transpose<tf.Tensor4D>([0, 2, 1, 3]);
    const q = applyRotary(heads(this.qProj, nh), cos, sin); // (B, nh, T, hs)
    const k = applyRotary(heads(this.kProj, nkv), cos, sin); // (B, nkv, T, hs)
    const v = heads(this.vProj, nkv); // (B, nkv, T, hs)
    // Grouped-query attention without copying k and v: query heads kv*rep .. kv*rep + rep - 1 share kv head kv, so
    // q viewed as (B, nkv, rep*T, hs) attends k (B, nkv, T, hs) directly, with the causal bias repeated rep times.
    const rep = nh / nkv;
    const qg = q.reshape<tf.Tensor4D>([B, nkv, rep * T, hs]);
    const y = attention(
      qg,
      k,
      v,
      1 / Math.sqrt(hs),
      rep === 1 ? bias : tf.tile(bias, [rep, 1]),
      drop,
      this.cfg.attentionDropout,
    ); // (B, nkv, rep*T, hs)
    const merged = y
      .reshape([B, nh, T, hs])
      .transpose([0, 2, 1, 3])
      .reshape([B, T, nh * hs]);
    return linear(merged, this.oProj); // (B, T, C)
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor3D {
    const { eps } = this.cfg;
    const h = x.add(this.attention(rmsNorm(x, this.inputLayernorm, eps) as tf.Tensor3D, bias, cos, sin, drop));
    const m = rmsNorm(h, this.postAttentionLayernorm, eps);
    const gate = linear(m, this.gateProj); // (B, T, I)
    const swiglu = gate.mul(tf.sigmoid(gate)).mul(linear(m, this.upProj)); // silu(gate) * up
    return h.add(linear(swiglu, this.downProj));
  }
}

export class LlamaForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: LlamaConfig;
  readonly embedTokens: tf.Variable; // (V, C)
  readonly layers: LlamaDecoderLayer[] = [];
  readonly norm: tf.Variable;
  readonly lmHead: tf.Variable;
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): LlamaForCausalLM {
    return new LlamaForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'model.']);
    const cfg = (this.cfg = llamaConfig(config));
    const { hiddenSize: C, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: hs } = cfg;
    this.embedTokens = this.param('embed_tokens.weight', [cfg.vocabSize, C]);
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `layers.${i}`;
      this.layers.push(
        new LlamaDecoderLayer(
          this.param(`${p}.input_layernorm.weight`, [C]),
          this.param(`${p}.self_attn.q_proj.weight`, [nh * hs, C]),
          this.param(`${p}.self_attn.k_proj.weight`, [nkv * hs, C]),
          this.param(`${p}.self_attn.v_proj.weight`, [nkv * hs, C]),
          this.param(`${p}.self_attn.o_proj.weight`, [C, nh * hs]),
          this.param(`${p}.post_attention_layernorm.weight`, [C]),
          this.param(`${p}.mlp.gate_proj.weight`, [I, C]),
          this.param(`${p}.mlp.up_proj.weight`, [I, C]),
          this.param(`${p}.mlp.down_proj.weight`, [C, I]),
          cfg,
        ),
      );
    }
    this.norm = this.param('norm.weight', [C]);
    this.lmHead = cfg.tieWordEmbeddings ? this.embedTokens : this.param('lm_head.weight', [cfg.vocabSize, C]);
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
      let x = embedding(this.embedTokens, inputIds) as tf.Tensor3D; // (B, T, C)
      const bias = causalBias(T);
      const [cos, sin] = rotaryTables(T, this.cfg.headDim, this.cfg.ropeTheta); // (T, hs)
      for (const layer of this.layers) x = layer.forward(x, bias, cos, sin, drop);
      x = rmsNorm(x, this.norm, this.cfg.eps) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
