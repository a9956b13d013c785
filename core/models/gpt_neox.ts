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
  type CausalLM,
  type Dropout,
} from './modeling-utils';

/**
 * GPT-NeoX / Pythia (transformers GPTNeoXForCausalLM): no position embeddings but rotary ones on the first
 * `partial_rotary_factor` of each head's dimensions, a fused query_key_value laid out per head as [q | k | v], and
 * (by default) parallel residuals: x + attn(ln1(x)) + mlp(ln2(x)). The LM head `embed_out` is untied.
 */

export interface GPTNeoXConfig {
  vocabSize: number;
  maxPositions: number;
  hiddenSize: number; // C
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  eps: number;
  activation: string;
  rotaryNdims: number;
  ropeTheta: number;
  parallelResidual: boolean;
  attentionBias: boolean;
  attentionDropout: number;
  hiddenDropout: number;
  tieWordEmbeddings: boolean;
}

export function gptNeoXConfig(c: HfConfig): GPTNeoXConfig {
  const hiddenSize = configNumber(c, 'hidden_size');
  const numHeads = configNumber(c, 'num_attention_heads');
  // transformers 5 writes rope_parameters; older checkpoints (Pythia) have rotary_pct and rotary_emb_base.
  const rope = (c.rope_parameters ?? {}) as { partial_rotary_factor?: number; rope_theta?: number; rope_type?: string };
  if (rope.rope_type !== undefined && rope.rope_type !== 'default') {
    throw new Error(`rope_type ${rope.rope_type} is not supported`);
  }
  const partial = rope.partial_rotary_factor ?? (typeof c.rotary_pct === 'number' ? c.rotary_pct : 1);
  const num = (key: string, fallback: number) => (typeof c[key] === 'number' ? c[key] : fallback);
  return {
    vocabSize: configNumber(c, 'vocab_size'),
    maxPositions: configNumber(c, 'max_position_embeddings'),
    hiddenSize,
    numLayers: configNumber(c, 'num_hidden_layers'),
    numHeads,
    intermediateSize: configNumber(c, 'intermediate_size'),
    eps: num('layer_norm_eps', 1e-5),
    activation: typeof c.hidden_act === 'string' ? c.hidden_act : 'gelu',
    rotaryNdims: Math.floor((hiddenSize / numHeads) * partial),
    ropeTheta: rope.rope_theta ?? num('rotary_emb_base', 10000),
    parallelResidual: c.use_parallel_residual !== false,
    attentionBias: c.attention_bias !== false,
    attentionDropout: num('attention_dropout', 0),
    hiddenDropout: num('hidden_dropout', 0),
    tieWordEmbeddings: c.tie_word_embeddings === true,
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** cos and sin tables (T, rotaryNdims): angle(t, i) = t * theta^(-2i/d), repeated for both halves. */
function rotaryTables(T: number, dims: number, theta: number): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const invFreq = tf.tensor1d(
      Array.from({ length: dims / 2 }, (_, i) => 1 / theta ** ((2 * i) / dims)),
      'float32',
    );
    const freqs = tf.outerProduct(tf.range(0, T, 1, 'float32'), invFreq); // (T, d/2)
    const emb = tf.concat([freqs, freqs], -1); // (T, d)
    return [tf.cos(emb), tf.sin(emb)];
  });
}

/** q*cos + rotate_half(q)*sin on the first `dims` channels of (B, nh, T, hs); the rest pass through. */
function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D, dims: number): tf.Tensor4D {
  const hs = x.shape[3];
  const [rot, pass] = tf.split(x, [dims, hs - dims], -1);
  const [x1, x2] = tf.split(rot as tf.Tensor, 2, -1);
  const rotated = tf.concat([tf.neg(x2 as tf.Tensor), x1 as tf.Tensor], -1); // rotate_half
  const embedded = (rot as tf.Tensor).mul(cos).add(rotated.mul(sin));
  return tf.concat<tf.Tensor4D>([embedded as tf.Tensor4D, pass as tf.Tensor4D], -1);
}

interface Dense {
  weight: tf.Variable; // (out, in)
  bias?: tf.Variable;
}
interface Norm {
  weight: tf.Variable;
  bias: tf.Variable;
}

class GPTNeoXLayer {
  constructor(
    readonly inputLayernorm: Norm,
    readonly postAttentionLayernorm: Norm,
    readonly queryKeyValue: Dense, // (3C, C)
    readonly dense: Dense, // (C, C)
    readonly up: Dense, // dense_h_to_4h (I, C)
    readonly down: Dense, // dense_4h_to_h (C, I)
    readonly cfg: GPTNeoXConfig,
    readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  attention(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor {
    const [B, T, C] = x.shape;
    const nh = this.cfg.numHeads;
    const hs = C / nh;
    const qkv = linear(x, this.queryKeyValue.weight, this.queryKeyValue.bias) // (B, T, 3C)
      .reshape([B, T, nh, 3 * hs])
      .transpose([0, 2, 1, 3]); // (B, nh, T, 3hs): per head [q | k | v]
    const [q, k, v] = tf.split(qkv, 3, -1) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]; // (B, nh, T, hs)
    const d = this.cfg.rotaryNdims;
    const y = attention(
      applyRotary(q, cos, sin, d),
      applyRotary(k, cos, sin, d),
      v,
      1 / Math.sqrt(hs),
      bias,
      drop,
      this.cfg.attentionDropout,
    );
    return linear(mergeHeads(y), this.dense.weight, this.dense.bias); // (B, T, C)
  }

  mlp(x: tf.Tensor): tf.Tensor {
    return linear(this.act(linear(x, this.up.weight, this.up.bias)), this.down.weight, this.down.bias);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor3D {
    const { eps, hiddenDropout } = this.cfg;
    const ln1 = layerNorm(x, this.inputLayernorm.weight, this.inputLayernorm.bias, eps) as tf.Tensor3D;
    const a = drop(this.attention(ln1, bias, cos, sin, drop), hiddenDropout);
    if (this.cfg.parallelResidual) {
      const m = drop(
        this.mlp(layerNorm(x, this.postAttentionLayernorm.weight, this.postAttentionLayernorm.bias, eps)),
        hiddenDropout,
      );
      return m.add(a).add(x); // x + attn(ln1(x)) + mlp(ln2(x))
    }
    const h = a.add(x);
    const m = drop(
      this.mlp(layerNorm(h, this.postAttentionLayernorm.weight, this.postAttentionLayernorm.bias, eps)),
      hiddenDropout,
    );
    return m.add(h);
  }
}

export class GPTNeoXForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: GPTNeoXConfig;
  readonly embedIn: tf.Variable; // (V, C)
  readonly layers: GPTNeoXLayer[] = [];
  readonly finalLayerNorm: Norm;
  readonly embedOut: tf.Variable; // (V, C)
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): GPTNeoXForCausalLM {
    return new GPTNeoXForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'gpt_neox.']);
    const cfg = (this.cfg = gptNeoXConfig(config));
    const C = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const norm = (name: string): Norm => ({
      weight: this.param(`${name}.weight`, [C]),
      bias: this.param(`${name}.bias`, [C]),
    });
    const dense = (name: string, out: number, inF: number, bias = true): Dense => ({
      weight: this.param(`${name}.weight`, [out, inF]),
      ...(bias ? { bias: this.param(`${name}.bias`, [out]) } : {}),
    });
    this.embedIn = this.param('embed_in.weight', [cfg.vocabSize, C]);
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `layers.${i}`;
      this.layers.push(
        new GPTNeoXLayer(
          norm(`${p}.input_layernorm`),
          norm(`${p}.post_attention_layernorm`),
          dense(`${p}.attention.query_key_value`, 3 * C, C, cfg.attentionBias),
          dense(`${p}.attention.dense`, C, C, cfg.attentionBias),
          dense(`${p}.mlp.dense_h_to_4h`, I, C),
          dense(`${p}.mlp.dense_4h_to_h`, C, I),
          cfg,
          activation(cfg.activation),
        ),
      );
    }
    this.finalLayerNorm = norm('final_layer_norm');
    this.embedOut = cfg.tieWordEmbeddings ? this.embedIn : this.param('embed_out.weight', [cfg.vocabSize, C]);
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
      let x = drop(embedding(this.embedIn, inputIds), this.cfg.hiddenDropout) as tf.Tensor3D; // (B, T, C)
      const bias = causalBias(T);
      const [cos, sin] = rotaryTables(T, this.cfg.rotaryNdims, this.cfg.ropeTheta); // (T, d)
      for (const layer of this.layers) x = layer.forward(x, bias, cos, sin, drop);
      x = layerNorm(x, this.finalLayerNorm.weight, this.finalLayerNorm.bias, this.cfg.eps) as tf.Tensor3D;
      return outputLogits(x, this.embedOut as tf.Tensor2D); // (B, T, V)
    });
  }
}
