import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';
import { type Activation, activation, attention, LayerNorm, Linear, mergeHeads, runBlocks, splitHeads } from './layers';
import { configNumber, type ParamScope, PretrainedModel, type Encoder } from './modeling-utils';

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

/** BertAttention: self-attention (`self.query`, ...) and its output projection with the post-LayerNorm. */
class BertAttention {
  readonly query: Linear; // (C, C)
  readonly key: Linear;
  readonly value: Linear;
  readonly outputDense: Linear;
  readonly outputLayerNorm: LayerNorm;

  constructor(
    p: ParamScope,
    readonly cfg: BertConfig,
  ) {
    const C = cfg.hiddenSize;
    this.query = new Linear(p.sub('self.query'), C, C);
    this.key = new Linear(p.sub('self.key'), C, C);
    this.value = new Linear(p.sub('self.value'), C, C);
    this.outputDense = new Linear(p.sub('output.dense'), C, C);
    this.outputLayerNorm = new LayerNorm(p.sub('output.LayerNorm'), C, cfg.eps);
  }

  forward(x: tf.Tensor3D, maskBias: tf.Tensor): tf.Tensor3D {
    const { numHeads: nh, hiddenSize: C } = this.cfg;
    const q = splitHeads(this.query.forward(x), nh); // (B, nh, T, hs)
    const k = splitHeads(this.key.forward(x), nh);
    const v = splitHeads(this.value.forward(x), nh);
    const y = mergeHeads(attention(q, k, v, 1 / Math.sqrt(C / nh), maskBias)); // (B, T, C)
    // Post-LN: the residual sum is normalised, unlike GPT-2.
    return this.outputLayerNorm.forward(this.outputDense.forward(y).add(x)) as tf.Tensor3D;
  }
}

class BertLayer {
  readonly attention: BertAttention;
  readonly intermediateDense: Linear; // (I, C)
  readonly outputDense: Linear; // (C, I)
  readonly outputLayerNorm: LayerNorm;
  readonly act: Activation;

  constructor(p: ParamScope, cfg: BertConfig) {
    const { hiddenSize: C, intermediateSize: I } = cfg;
    this.attention = new BertAttention(p.sub('attention'), cfg);
    this.intermediateDense = new Linear(p.sub('intermediate.dense'), C, I);
    this.outputDense = new Linear(p.sub('output.dense'), I, C);
    this.outputLayerNorm = new LayerNorm(p.sub('output.LayerNorm'), C, cfg.eps);
    this.act = activation(cfg.activation);
  }

  forward(x: tf.Tensor3D, maskBias: tf.Tensor): tf.Tensor3D {
    x = this.attention.forward(x, maskBias);
    const h = this.intermediateDense.forward(x, this.act); // (B, T, I)
    return this.outputLayerNorm.forward(this.outputDense.forward(h).add(x)) as tf.Tensor3D;
  }
}

export class BertModel extends PretrainedModel implements Encoder {
  readonly cfg: BertConfig;
  readonly wordEmbeddings: tf.Variable; // (V, C)
  readonly positionEmbeddings: tf.Variable; // (P, C)
  readonly tokenTypeEmbeddings: tf.Variable; // (types, C)
  readonly embeddingsLayerNorm: LayerNorm;
  readonly layers: BertLayer[] = [];

  static fromCheckpoint(ckpt: HfCheckpoint): BertModel {
    return new BertModel(ckpt.config, ckpt.weights, ckpt.weightsFile);
  }

  constructor(config: HfConfig, weights: TensorMap, source: string) {
    // Task heads (BertForMaskedLM, ...) save the encoder under `bert.` / `roberta.`.
    super(config, weights, source, ['', 'bert.', 'roberta.', 'model.']);
    const cfg = (this.cfg = bertConfig(config));
    const C = cfg.hiddenSize;
    const p = this.scope();
    this.wordEmbeddings = p.param('embeddings.word_embeddings.weight', [cfg.vocabSize, C]);
    this.positionEmbeddings = p.param('embeddings.position_embeddings.weight', [cfg.maxPositions, C]);
    this.tokenTypeEmbeddings = p.param('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, C]);
    this.embeddingsLayerNorm = new LayerNorm(p.sub('embeddings.LayerNorm'), C, cfg.eps);
    for (let i = 0; i < cfg.numLayers; i++) this.layers.push(new BertLayer(p.sub(`encoder.layer.${i}`), cfg));
    this.finishLoading([
      // Buffers: position ids 0..P-1 and zero token types, which forward() makes itself.
      /^embeddings\.(position_ids|token_type_ids)$/,
      // The pooler (a tanh layer over [CLS]) and other tasks' heads: mean pooling reads the last hidden state only.
      /^pooler\.dense\.(weight|bias)$/,
      /^cls\.(predictions|seq_relationship)\./,
      /^lm_head\./,
    ]);
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
      x = this.embeddingsLayerNorm.forward(x);
      // Padding keys get a large negative score; (B, 1, 1, T) broadcasts over heads and queries.
      const maskBias = tf.sub(1, attentionMask.toFloat()).mul(-1e9).reshape([B, 1, 1, T]);
      x = runBlocks(x as tf.Tensor3D, this.layers, (layer, h) => layer.forward(h, maskBias));
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
