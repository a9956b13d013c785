import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import {
  activation,
  attention,
  configNumber,
  layerNorm,
  linear,
  mergeHeads,
  PretrainedModel,
  splitHeads,
  type Encoder,
} from './modeling-utils';

/**
 * BERT-family encoders (transformers BertModel / RobertaModel): post-LayerNorm blocks, learned absolute positions,
 * token-type embeddings. Covers BERT, MiniLM (a BERT checkpoint) and RoBERTa, whose positions start after the
 * padding index (padding_idx + 1) and skip padding tokens. Linear weights are stored (out, in).
 */

export interface BertConfig {
  vocabSize: number;
  hiddenSize: number; // C
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  eps: number;
  activation: string;
  /** RoBERTa: position ids count non-padding tokens from padToken + 1. */
  robertaPositions: boolean;
  padTokenId: number;
}

export function bertConfig(c: HfConfig): BertConfig {
  const roberta = c.model_type === 'roberta' || c.model_type === 'xlm-roberta';
  if (c.position_embedding_type !== undefined && c.position_embedding_type !== 'absolute') {
    throw new Error(`position_embedding_type ${JSON.stringify(c.position_embedding_type)} is not supported`);
  }
  return {
    vocabSize: configNumber(c, 'vocab_size'),
    hiddenSize: configNumber(c, 'hidden_size'),
    numLayers: configNumber(c, 'num_hidden_layers'),
    numHeads: configNumber(c, 'num_attention_heads'),
    intermediateSize: configNumber(c, 'intermediate_size'),
    maxPositions: configNumber(c, 'max_position_embeddings'),
    typeVocabSize: configNumber(c, 'type_vocab_size'),
    eps: typeof c.layer_norm_eps === 'number' ? c.layer_norm_eps : 1e-12,
    activation: typeof c.hidden_act === 'string' ? c.hidden_act : 'gelu',
    robertaPositions: roberta,
    padTokenId: typeof c.pad_token_id === 'number' ? c.pad_token_id : roberta ? 1 : 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------

interface Dense {
  weight: tf.Variable; // (out, in)
  bias: tf.Variable;
}
interface Norm {
  weight: tf.Variable;
  bias: tf.Variable;
}

class BertLayer {
  constructor(
    readonly query: Dense,
    readonly key: Dense,
    readonly value: Dense,
    readonly attnOut: Dense,
    readonly attnNorm: Norm,
    readonly intermediate: Dense,
    readonly output: Dense,
    readonly outNorm: Norm,
    readonly cfg: BertConfig,
    readonly act: (x: tf.Tensor) => tf.Tensor,
  ) {}

  forward(x: tf.Tensor3D, maskBias: tf.Tensor): tf.Tensor3D {
    const { numHeads: nh, hiddenSize: C, eps } = this.cfg;
    const q = splitHeads(linear(x, this.query.weight, this.query.bias), nh); // (B, nh, T, hs)
    const k = splitHeads(linear(x, this.key.weight, this.key.bias), nh);
    const v = splitHeads(linear(x, this.value.weight, this.value.bias), nh);
    const y = mergeHeads(attention(q, k, v, 1 / Math.sqrt(C / nh), maskBias)); // (B, T, C)
    // Post-LN: the residual sum is normalised, unlike GPT-2.
    x = layerNorm(
      linear(y, this.attnOut.weight, this.attnOut.bias).add(x),
      this.attnNorm.weight,
      this.attnNorm.bias,
      eps,
    ) as tf.Tensor3D;
    const h = this.act(linear(x, this.intermediate.weight, this.intermediate.bias)); // (B, T, 4C)
    return layerNorm(
      linear(h, this.output.weight, this.output.bias).add(x),
      this.outNorm.weight,
      this.outNorm.bias,
      eps,
    ) as tf.Tensor3D;
  }
}

export class BertModel extends PretrainedModel implements Encoder {
  readonly cfg: BertConfig;
  readonly wordEmbeddings: tf.Variable; // (V, C)
  readonly positionEmbeddings: tf.Variable; // (P, C)
  readonly tokenTypeEmbeddings: tf.Variable; // (types, C)
  readonly embNorm: Norm;
  readonly layers: BertLayer[] = [];

  static fromCheckpoint(ckpt: HfCheckpoint): BertModel {
    return new BertModel(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    // Task heads (BertForMaskedLM, ...) save the encoder under `bert.` / `roberta.`; the heads themselves are unused.
    super(config, weights, source, ['', 'bert.', 'roberta.', 'model.']);
    const cfg = (this.cfg = bertConfig(config));
    const C = cfg.hiddenSize;
    const I = cfg.intermediateSize;
    const dense = (name: string, out: number, inF: number): Dense => ({
      weight: this.param(`${name}.weight`, [out, inF]),
      bias: this.param(`${name}.bias`, [out]),
    });
    const norm = (name: string): Norm => ({
      weight: this.param(`${name}.weight`, [C]),
      bias: this.param(`${name}.bias`, [C]),
    });

    this.wordEmbeddings = this.param('embeddings.word_embeddings.weight', [cfg.vocabSize, C]);
    this.positionEmbeddings = this.param('embeddings.position_embeddings.weight', [cfg.maxPositions, C]);
    this.tokenTypeEmbeddings = this.param('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, C]);
    this.embNorm = norm('embeddings.LayerNorm');
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `encoder.layer.${i}`;
      this.layers.push(
        new BertLayer(
          dense(`${p}.attention.self.query`, C, C),
          dense(`${p}.attention.self.key`, C, C),
          dense(`${p}.attention.self.value`, C, C),
          dense(`${p}.attention.output.dense`, C, C),
          norm(`${p}.attention.output.LayerNorm`),
          dense(`${p}.intermediate.dense`, I, C),
          dense(`${p}.output.dense`, C, I),
          norm(`${p}.output.LayerNorm`),
          cfg,
          activation(cfg.activation),
        ),
      );
    }
    this.releaseCheckpoint();
  }

  get hiddenSize(): number {
    return this.cfg.hiddenSize;
  }
  get maxPositions(): number {
    // RoBERTa reserves the first padding_idx + 1 positions.
    return this.cfg.robertaPositions ? this.cfg.maxPositions - this.cfg.padTokenId - 1 : this.cfg.maxPositions;
  }

  /** inputIds, attentionMask (1 = token, 0 = padding), tokenTypeIds: int32 (B, T). Returns (B, T, C). */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, tokenTypeIds?: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      if (T > this.maxPositions)
        throw new Error(`sequence length ${T} exceeds the encoder's ${this.maxPositions} positions`);
      let positions: tf.Tensor;
      if (this.cfg.robertaPositions) {
        // create_position_ids_from_input_ids: cumsum(mask) * mask + padding_idx over non-padding tokens.
        const notPad = tf.notEqual(inputIds, this.cfg.padTokenId).toInt();
        positions = tf.cumsum(notPad, 1).mul(notPad).add(tf.scalar(this.cfg.padTokenId, 'int32')); // (B, T)
      } else {
        positions = tf.range(0, T, 1, 'int32').expandDims(0); // (1, T)
      }
      const types = tokenTypeIds ?? tf.zeros([B, T], 'int32');
      let x = tf
        .gather(this.wordEmbeddings, inputIds)
        .add(tf.gather(this.positionEmbeddings, positions))
        .add(tf.gather(this.tokenTypeEmbeddings, types)); // (B, T, C)
      x = layerNorm(x, this.embNorm.weight, this.embNorm.bias, this.cfg.eps);
      // Padding keys get a large negative score; (B, 1, 1, T) broadcasts over heads and queries.
      const maskBias = tf.sub(1, attentionMask.toFloat()).mul(-1e9).reshape([B, 1, 1, T]);
      for (const layer of this.layers) x = layer.forward(x as tf.Tensor3D, maskBias);
      return x as tf.Tensor3D;
    });
  }
}

/**
 * Mean of the hidden states over non-padding tokens (sentence-transformers' mean pooling), optionally L2-normalised
 * as all-MiniLM-L6-v2's Normalize module does. hidden (B, T, C), mask (B, T) -> (B, C).
 */
export function meanPool(hidden: tf.Tensor3D, attentionMask: tf.Tensor2D, normalize = false): tf.Tensor2D {
  return tf.tidy(() => {
    const m = attentionMask.toFloat().expandDims(2); // (B, T, 1)
    const summed = hidden.mul(m).sum(1); // (B, C)
    const counts = m.sum(1).maximum(1e-9); // (B, 1), clamped as sentence-transformers does
    let pooled = summed.div<tf.Tensor2D>(counts);
    if (normalize) {
      // torch.nn.functional.normalize: x / max(||x||, 1e-12)
      pooled = pooled.div(pooled.norm('euclidean', 1, true).maximum(1e-12));
    }
    return pooled;
  });
}
