import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  activation,
  attention,
  causalBias,
  configNumber,
  conv1d,
  dropoutFor,
  embedding,
  layerNorm,
  mergeHeads,
  outputLogits,
  PretrainedModel,
  splitHeads,
  type CausalLM,
  type Dropout,
} from './modeling-utils';

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

class LayerNorm {
  constructor(
    readonly weight: tf.Variable,
    readonly bias: tf.Variable,
    readonly eps: number,
  ) {}
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

class CausalSelfAttention {
  constructor(
    readonly cAttnW: tf.Variable, // (C, 3C)
    readonly cAttnB: tf.Variable,
    readonly cProjW: tf.Variable, // (C, C)
    readonly cProjB: tf.Variable,
    readonly nHead: number,
    readonly scale: number,
    readonly cfg: GPT2Config,
  ) {}

  forward(x: tf.Tensor3D, bias: tf.Tensor, drop: Dropout): tf.Tensor3D {
    const [q, k, v] = tf.split(conv1d(x, this.cAttnW, this.cAttnB), 3, -1); // 3 x (B, T, C)
    const y = attention(
      splitHeads(q as tf.Tensor, this.nHead), // (B, nh, T, hs)
      splitHeads(k as tf.Tensor, this.nHead),
      splitHeads(v as tf.Tensor, this.nHead),
      this.scale,
      bias,
      drop,
      this.cfg.attnPdrop,
    );
    return drop(conv1d(mergeHeads(y), this.cProjW, this.cProjB), this.cfg.residPdrop) as tf.Tensor3D; // (B, T, C)
  }
}

class MLP {
  constructor(
    readonly cFcW: tf.Variable, // (C, 4C)
    readonly cFcB: tf.Variable,
    readonly cProjW: tf.Variable, // (4C, C)
    readonly cProjB: tf.Variable,
    readonly act: (x: tf.Tensor) => tf.Tensor,
    readonly residPdrop: number,
  ) {}
  forward(x: tf.Tensor, drop: Dropout): tf.Tensor {
    return drop(conv1d(this.act(conv1d(x, this.cFcW, this.cFcB)), this.cProjW, this.cProjB), this.residPdrop);
  }
}

class Block {
  constructor(
    readonly ln1: LayerNorm,
    readonly attn: CausalSelfAttention,
    readonly ln2: LayerNorm,
    readonly mlp: MLP,
  ) {}
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
    const C = cfg.nEmbd;
    const ln = (name: string) =>
      new LayerNorm(this.param(`${name}.weight`, [C]), this.param(`${name}.bias`, [C]), cfg.eps);
    this.wte = this.param('wte.weight', [cfg.vocabSize, C]);
    this.wpe = this.param('wpe.weight', [cfg.nPositions, C]);
    for (let i = 0; i < cfg.nLayer; i++) {
      const p = `h.${i}`;
      const attn = new CausalSelfAttention(
        this.param(`${p}.attn.c_attn.weight`, [C, 3 * C]),
        this.param(`${p}.attn.c_attn.bias`, [3 * C]),
        this.param(`${p}.attn.c_proj.weight`, [C, C]),
        this.param(`${p}.attn.c_proj.bias`, [C]),
        cfg.nHead,
        (cfg.scaleAttnWeights ? 1 / Math.sqrt(C / cfg.nHead) : 1) / (cfg.scaleAttnByInverseLayerIdx ? i + 1 : 1),
        cfg,
      );
      const mlp = new MLP(
        this.param(`${p}.mlp.c_fc.weight`, [C, cfg.nInner]),
        this.param(`${p}.mlp.c_fc.bias`, [cfg.nInner]),
        this.param(`${p}.mlp.c_proj.weight`, [cfg.nInner, C]),
        this.param(`${p}.mlp.c_proj.bias`, [C]),
        activation(cfg.activation),
        cfg.residPdrop,
      );
      this.h.push(new Block(ln(`${p}.ln_1`), attn, ln(`${p}.ln_2`), mlp));
    }
    this.lnF = ln('ln_f');
    // save_pretrained drops lm_head.weight when it is tied to wte (the default).
    this.lmHead = config.tie_word_embeddings === false ? this.param('lm_head.weight', [cfg.vocabSize, C]) : this.wte;
    this.releaseCheckpoint();
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
      for (const block of this.h) x = block.forward(x, bias, drop);
      x = this.lnF.forward(x) as tf.Tensor3D;
      return outputLogits(x, this.lmHead as tf.Tensor2D); // (B, T, V)
    });
  }
}
