import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  type Activation,
  activation,
  attention,
  causalBias,
  Conv1D,
  type Dropout,
  dropoutFor,
  embedding,
  LayerNorm,
  mergeHeads,
  outputLogits,
  runBlocks,
  splitHeads,
} from './layers';
import { configNumber, type ParamScope, PretrainedModel, type CausalLM } from './modeling-utils';

/**
 * GPT-2 (transformers GPT2LMHeadModel), pre-LayerNorm decoder with learned positions and a tied LM head.
 * Linear layers are "Conv1D" in the checkpoint: weights stored (in, out), so no transposes.
 */

export interface GPT2Config {
  vocabSize: number; // n_vocab
  nPositions: number; // max sequence length
  nEmbd: number; // C
  nLayer: number;
  nHead: number;
  nInner: number; // MLP width, 4C unless set
  eps: number;
  activation: string;
  scaleAttnWeights: boolean;
  /** Divide attention logits further by (layer index + 1). */
  scaleAttnByInverseLayerIdx: boolean;
  embdPdrop: number;
  attnPdrop: number;
  residPdrop: number;
}

export function gpt2Config(c: HfConfig): GPT2Config {
  const nEmbd = configNumber(c, 'n_embd', 'hidden_size');
  return {
    vocabSize: configNumber(c, 'vocab_size'),
    nPositions: configNumber(c, 'n_positions', 'max_position_embeddings'),
    nEmbd,
    nLayer: configNumber(c, 'n_layer', 'num_hidden_layers'),
    nHead: configNumber(c, 'n_head', 'num_attention_heads'),
    nInner: typeof c.n_inner === 'number' ? c.n_inner : 4 * nEmbd,
    eps: typeof c.layer_norm_epsilon === 'number' ? c.layer_norm_epsilon : 1e-5,
    activation: typeof c.activation_function === 'string' ? c.activation_function : 'gelu_new',
    scaleAttnWeights: c.scale_attn_weights !== false,
    scaleAttnByInverseLayerIdx: c.scale_attn_by_inverse_layer_idx === true,
    embdPdrop: typeof c.embd_pdrop === 'number' ? c.embd_pdrop : 0.1,
    attnPdrop: typeof c.attn_pdrop === 'number' ? c.attn_pdrop : 0.1,
    residPdrop: typeof c.resid_pdrop === 'number' ? c.resid_pdrop : 0.1,
  };
}

// ---------------------------------------------------------------------------------------------------------------

class CausalSelfAttention {
  readonly cAttn: Conv1D; // (C, 3C): q, k, v side by side
  readonly cProj: Conv1D; // (C, C)
  readonly scale: number;

  constructor(
    p: ParamScope,
    readonly cfg: GPT2Config,
    layerIdx: number,
  ) {
    const C = cfg.nEmbd;
    this.cAttn = new Conv1D(p.sub('c_attn'), C, 3 * C);
    this.cProj = new Conv1D(p.sub('c_proj'), C, C);
    this.scale =
      (cfg.scaleAttnWeights ? 1 / Math.sqrt(C / cfg.nHead) : 1) / (cfg.scaleAttnByInverseLayerIdx ? layerIdx + 1 : 1);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, drop: Dropout): tf.Tensor3D {
    const nh = this.cfg.nHead;
    const [q, k, v] = tf.split(this.cAttn.forward(x), 3, -1); // 3 x (B, T, C)
    const y = attention(
      splitHeads(q as tf.Tensor, nh), // (B, nh, T, hs)
      splitHeads(k as tf.Tensor, nh),
      splitHeads(v as tf.Tensor, nh),
      this.scale,
      bias,
      drop,
      this.cfg.attnPdrop,
    );
    return drop(this.cProj.forward(mergeHeads(y)), this.cfg.residPdrop) as tf.Tensor3D; // (B, T, C)
  }
}

class MLP {
  readonly cFc: Conv1D; // (C, 4C)
  readonly cProj: Conv1D; // (4C, C)
  readonly act: Activation;

  constructor(
    p: ParamScope,
    readonly cfg: GPT2Config,
  ) {
    this.cFc = new Conv1D(p.sub('c_fc'), cfg.nEmbd, cfg.nInner);
    this.cProj = new Conv1D(p.sub('c_proj'), cfg.nInner, cfg.nEmbd);
    this.act = activation(cfg.activation);
  }

  forward(x: tf.Tensor, drop: Dropout): tf.Tensor {
    return drop(this.cProj.forward(this.cFc.forward(x, this.act)), this.cfg.residPdrop);
  }
}

class Block {
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;

  constructor(p: ParamScope, cfg: GPT2Config, layerIdx: number) {
    // Registered attn, mlp, then the norms: the order model.params has always had (the trainer follows it).
    this.attn = new CausalSelfAttention(p.sub('attn'), cfg, layerIdx);
    this.mlp = new MLP(p.sub('mlp'), cfg);
    this.ln1 = new LayerNorm(p.sub('ln_1'), cfg.nEmbd, cfg.eps);
    this.ln2 = new LayerNorm(p.sub('ln_2'), cfg.nEmbd, cfg.eps);
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor, drop: Dropout): tf.Tensor3D {
    x = x.add(this.attn.forward(this.ln1.forward(x) as tf.Tensor3D, bias, drop));
    return x.add(this.mlp.forward(this.ln2.forward(x), drop));
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class GPT2LMHeadModel extends PretrainedModel implements CausalLM {
  readonly cfg: GPT2Config;
  readonly wte: tf.Variable; // (V, C), also the LM head
  readonly wpe: tf.Variable; // (P, C)
  readonly h: Block[] = [];
  readonly lnF: LayerNorm;
  readonly lmHead: tf.Variable;
  training = false;

  static fromCheckpoint(ckpt: HfCheckpoint): GPT2LMHeadModel {
    return new GPT2LMHeadModel(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    super(config, weights, source, ['', 'transformer.']);
    const cfg = (this.cfg = gpt2Config(config));
    const p = this.scope();
    this.wte = p.param('wte.weight', [cfg.vocabSize, cfg.nEmbd]);
    this.wpe = p.param('wpe.weight', [cfg.nPositions, cfg.nEmbd]);
    for (let i = 0; i < cfg.nLayer; i++) this.h.push(new Block(p.sub(`h.${i}`), cfg, i));
    this.lnF = new LayerNorm(p.sub('ln_f'), cfg.nEmbd, cfg.eps);
    // save_pretrained drops lm_head.weight when it is tied to wte (the default).
    const tied = config.tie_word_embeddings !== false;
    this.lmHead = tied ? this.wte : p.param('lm_head.weight', [cfg.vocabSize, cfg.nEmbd]);
    this.finishLoading([
      // The causal mask and its fill value, buffers that older checkpoints saved.
      /^h\.\d+\.attn\.(masked_)?bias$/,
      // A tied head is wte: transformers overwrites a stored lm_head.weight with it after loading.
      ...(tied ? [/^lm_head\.weight$/] : []),
    ]);
  }

  get vocabSize(): number {
    return this.cfg.vocabSize;
  }
  get maxPositions(): number {
    return this.cfg.nPositions;
  }

  forward(inputIds: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const T = inputIds.shape[1];
      if (T > this.cfg.nPositions) throw new Error(`sequence length ${T} exceeds n_positions ${this.cfg.nPositions}`);
      const pos = tf.range(0, T, 1, 'int32');
      const drop = dropoutFor(this.training);
      let x = drop(embedding(this.wte, inputIds).add(embedding(this.wpe, pos)), this.cfg.embdPdrop) as tf.Tensor3D; // (B, T, C)
      const bias = causalBias(T); // (T, T)
      x = runBlocks(x, this.h, (block, h) => block.forward(h, bias, drop));
      x = this.lnF.forward(x) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
