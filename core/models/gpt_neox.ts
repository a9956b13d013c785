import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  type Activation,
  activation,
  applyRotary,
  attention,
  causalBias,
  type Dropout,
  dropoutFor,
  embedding,
  LayerNorm,
  Linear,
  mergeHeads,
  outputLogits,
  rotaryTables,
  runBlocks,
} from './layers';
import { configNumber, type ParamScope, PretrainedModel, type CausalLM } from './modeling-utils';

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

class GPTNeoXAttention {
  readonly queryKeyValue: Linear; // (3C, C), per head [q | k | v]
  readonly dense: Linear; // (C, C)

  constructor(
    p: ParamScope,
    readonly cfg: GPTNeoXConfig,
  ) {
    const C = cfg.hiddenSize;
    this.queryKeyValue = new Linear(p.sub('query_key_value'), C, 3 * C, cfg.attentionBias);
    this.dense = new Linear(p.sub('dense'), C, C, cfg.attentionBias);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor {
    const [B, T, C] = x.shape;
    const nh = this.cfg.numHeads;
    const hs = C / nh;
    const qkv = this.queryKeyValue
      .forward(x) // (B, T, 3C)
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
    return this.dense.forward(mergeHeads(y)); // (B, T, C)
  }
}

class GPTNeoXMLP {
  readonly denseHTo4h: Linear; // (I, C)
  readonly dense4hToH: Linear; // (C, I)
  readonly act: Activation;

  constructor(p: ParamScope, cfg: GPTNeoXConfig) {
    this.denseHTo4h = new Linear(p.sub('dense_h_to_4h'), cfg.hiddenSize, cfg.intermediateSize);
    this.dense4hToH = new Linear(p.sub('dense_4h_to_h'), cfg.intermediateSize, cfg.hiddenSize);
    this.act = activation(cfg.activation);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.dense4hToH.forward(this.denseHTo4h.forward(x, this.act));
  }
}

class GPTNeoXLayer {
  readonly inputLayernorm: LayerNorm;
  readonly postAttentionLayernorm: LayerNorm;
  readonly attention: GPTNeoXAttention;
  readonly mlp: GPTNeoXMLP;

  constructor(
    p: ParamScope,
    readonly cfg: GPTNeoXConfig,
  ) {
    // Both norms first, as transformers declares them: the order model.params has always had (the trainer follows it).
    this.inputLayernorm = new LayerNorm(p.sub('input_layernorm'), cfg.hiddenSize, cfg.eps);
    this.postAttentionLayernorm = new LayerNorm(p.sub('post_attention_layernorm'), cfg.hiddenSize, cfg.eps);
    this.attention = new GPTNeoXAttention(p.sub('attention'), cfg);
    this.mlp = new GPTNeoXMLP(p.sub('mlp'), cfg);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, drop: Dropout): tf.Tensor3D {
    const { hiddenDropout } = this.cfg;
    const ln1 = this.inputLayernorm.forward(x) as tf.Tensor3D;
    const a = drop(this.attention.forward(ln1, bias, cos, sin, drop), hiddenDropout);
    if (this.cfg.parallelResidual) {
      const m = drop(this.mlp.forward(this.postAttentionLayernorm.forward(x)), hiddenDropout);
      return m.add(a).add(x); // x + attn(ln1(x)) + mlp(ln2(x))
    }
    const h = a.add(x);
    const m = drop(this.mlp.forward(this.postAttentionLayernorm.forward(h)), hiddenDropout);
    return m.add(h);
  }
}

export class GPTNeoXForCausalLM extends PretrainedModel implements CausalLM {
  readonly cfg: GPTNeoXConfig;
  readonly embedIn: tf.Variable; // (V, C)
  readonly layers: GPTNeoXLayer[] = [];
  readonly finalLayerNorm: LayerNorm;
  readonly embedOut: tf.Variable; // (V, C)
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): GPTNeoXForCausalLM {
    return new GPTNeoXForCausalLM(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'gpt_neox.']);
    const cfg = (this.cfg = gptNeoXConfig(config));
    const p = this.scope();
    this.embedIn = p.param('embed_in.weight', [cfg.vocabSize, cfg.hiddenSize]);
    for (let i = 0; i < cfg.numLayers; i++) this.layers.push(new GPTNeoXLayer(p.sub(`layers.${i}`), cfg));
    this.finalLayerNorm = new LayerNorm(p.sub('final_layer_norm'), cfg.hiddenSize, cfg.eps);
    const tied = cfg.tieWordEmbeddings;
    this.embedOut = tied ? this.embedIn : p.param('embed_out.weight', [cfg.vocabSize, cfg.hiddenSize]);
    this.finishLoading([
      // Buffers of older checkpoints (Pythia): the causal mask, its fill value, the rotary frequencies.
      /^layers\.\d+\.attention\.(masked_)?bias$/,
      /^(layers\.\d+\.attention\.)?rotary_emb\.inv_freq$/,
      // A tied head is embed_in: transformers overwrites a stored embed_out.weight with it after loading.
      ...(tied ? [/^embed_out\.weight$/] : []),
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
      let x = drop(embedding(this.embedIn, inputIds), this.cfg.hiddenDropout) as tf.Tensor3D; // (B, T, C)
      const bias = causalBias(T);
      const [cos, sin] = rotaryTables(T, this.cfg.rotaryNdims, this.cfg.ropeTheta); // (T, d)
      x = runBlocks(x, this.layers, (layer, h) => layer.forward(h, bias, cos, sin, drop));
      x = this.finalLayerNorm.forward(x) as tf.Tensor3D;
      return outputLogits(x, this.embedOut as tf.Tensor2D); // (B, T, V)
    });
  }
}
