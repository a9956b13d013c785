import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import type { HfCheckpoint, HfConfig } from '../../../../core/checkpoints/hf-folder';
import { readSafetensorsFile } from '../../../../core/checkpoints/safetensors';
import { CAUSAL_LM_MODELS, ENCODER_MODELS } from '../../../../core/models/registry';
import { FIXTURES } from '../../../helpers/parity';

/**
 * Loading is key for key, as nanoGPT's from_pretrained asserts: a checkpoint tensor the model does not read fails
 * the load, naming it, unless it is one the family's checkpoints are known to carry (buffers, other tasks' heads).
 * Each case is a tiny fixture's own weights with one tensor added in memory.
 */
const CASES: { fixture: string; unknown: string; known: string[] }[] = [
  {
    fixture: 'tiny-gpt2',
    unknown: 'transformer.h.1.attn.q_proj.weight',
    known: ['transformer.h.0.attn.bias', 'transformer.h.1.attn.masked_bias'],
  },
  {
    fixture: 'tiny-gpt-neo',
    unknown: 'transformer.h.0.attn.attention.qkv_proj.weight',
    known: ['transformer.h.0.attn.attention.bias', 'transformer.h.0.attn.attention.masked_bias'],
  },
  {
    fixture: 'tiny-gpt-neox',
    unknown: 'gpt_neox.layers.0.attention.q_proj.weight',
    known: ['gpt_neox.layers.0.attention.bias', 'gpt_neox.layers.1.attention.rotary_emb.inv_freq'],
  },
  {
    fixture: 'tiny-llama',
    unknown: 'model.layers.0.self_attn.q_norm.weight',
    known: ['model.layers.0.self_attn.rotary_emb.inv_freq', 'model.rotary_emb.inv_freq'],
  },
  {
    fixture: 'tiny-bert',
    unknown: 'classifier.weight',
    known: ['embeddings.position_ids', 'pooler.dense.weight', 'pooler.dense.bias', 'cls.predictions.bias'],
  },
  {
    fixture: 'tiny-roberta',
    unknown: 'encoder.layer.0.attention.self.rel_pos.weight',
    known: ['embeddings.position_ids', 'lm_head.dense.weight'],
  },
];

async function checkpointWith(fixture: string, extra: string[]): Promise<HfCheckpoint> {
  const dir = path.join(FIXTURES, fixture);
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as HfConfig;
  const weightsFile = path.join(dir, 'model.safetensors');
  const weights = await readSafetensorsFile(weightsFile);
  for (const name of extra) weights.set(name, { shape: [2], dtype: 'F32', data: new Float32Array(2) });
  return { dir, config, weights, weightsFile };
}

function build(ckpt: HfCheckpoint): { dispose(): void; params: Map<string, tf.Variable> } {
  const cls = CAUSAL_LM_MODELS.get(ckpt.config.model_type) ?? ENCODER_MODELS.get(ckpt.config.model_type);
  if (!cls) throw new Error(`no model class for ${ckpt.config.model_type}`);
  return cls.fromCheckpoint(ckpt);
}

beforeAll(() => initBackend({ log: () => undefined }));

describe.each(CASES)('$fixture', ({ fixture, unknown, known }) => {
  it('fails on an unknown checkpoint tensor, naming it, and leaves no variables behind', async () => {
    const ckpt = await checkpointWith(fixture, [unknown]);
    const tensorsBefore = tf.memory().numTensors;
    expect(() => build(ckpt)).toThrow(
      `1 checkpoint tensor(s) not used by the ${ckpt.config.model_type} model: ${unknown}`,
    );
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it("loads with the buffers and heads the family's checkpoints carry, registering none of them", async () => {
    const ckpt = await checkpointWith(fixture, known);
    const stored = [...ckpt.weights.keys()];
    const model = build(ckpt);
    expect([...model.params.keys()].sort()).toEqual(stored.filter((name) => !known.includes(name)).sort());
    model.dispose();
  });
});
