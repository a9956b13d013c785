import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import type { CausalLM } from '../../../../core/models/modeling-utils';
import { loadCausalLM, loadEncoder } from '../../../../core/models/registry';
import { FIXTURES, loadFixture, type Fixture } from '../../../helpers/parity';
import {
  checkBitsPerByte,
  checkEncoderEmbeddings,
  checkLogits,
  checkTttSteps,
  TINY_CAUSAL_LMS,
  TINY_ENCODERS,
  type CausalMeta,
  type EncoderMeta,
} from '../../../helpers/parity-checks';

/**
 * The engine is written against the TensorFlow.js op API so that it also runs where native TensorFlow does not:
 * the same parity checks as causal-lm.test.ts and encoder.test.ts, against the same fixtures and tolerances, on
 * the WASM and pure-JS backends. jest gives every test file its own globals, so the backend chosen here (tfjs keeps
 * its engine on the global object) does not reach the other files, which run on native TensorFlow.
 */

it('starts on a tfjs engine of its own: no backend chosen, native TensorFlow never loaded in this file', () => {
  // tfjs-node registers 'tensorflow' on the engine it finds on the global object. Other test files load it in the
  // same worker process; seeing it here would mean that their engine (and backend choice) is shared with this one.
  expect(tf.engine().backendNames()).not.toContain('tensorflow');
  expect(tf.engine().backendName).toBeUndefined();
});

describe.each(['wasm', 'cpu'] as const)('on the %s backend', (backend) => {
  beforeAll(async () => {
    const info = await initBackend({ backend, log: () => undefined });
    expect(info.name).toBe(backend);
  });

  describe.each(TINY_CAUSAL_LMS)('%s', (name) => {
    let fixture: Fixture<CausalMeta>;
    let model: CausalLM;
    const label = `${name} on ${backend}`;

    beforeAll(async () => {
      fixture = await loadFixture<CausalMeta>(name);
      ({ model } = await loadCausalLM(path.join(FIXTURES, name), { backend, log: () => undefined }));
    });
    afterAll(() => model.dispose());

    it('computes the same logits (max abs diff <= 1e-4)', () => {
      expect(tf.getBackend()).toBe(backend);
      checkLogits(label, model, fixture);
    });
    // Batched windows only: one window a batch is the same arithmetic in more, smaller calls (checked natively),
    // and on the JS backend it would triple this file's time.
    it('computes the same bits per byte, 3 windows a batch (relative diff <= 1e-6)', () =>
      checkBitsPerByte(label, model, fixture, [3]));
    it('matches torch after 3 TTT steps (weights <= 1e-5 relative), then resets exactly', () =>
      checkTttSteps(label, model, fixture));
  });

  describe.each(TINY_ENCODERS)('%s', (name) => {
    it('computes the same hidden states and embeddings (<= 1e-5)', async () => {
      const fixture = await loadFixture<EncoderMeta>(name);
      const { model } = await loadEncoder(path.join(FIXTURES, name), { backend, log: () => undefined });
      expect(tf.getBackend()).toBe(backend);
      checkEncoderEmbeddings(`${name} on ${backend}`, model, fixture);
      model.dispose();
    });
  });
});
