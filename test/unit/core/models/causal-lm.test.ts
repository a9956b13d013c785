import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import type { CausalLM } from '../../../../core/models/modeling-utils';
import { loadCausalLM } from '../../../../core/models/registry';
import type { TextTokenizer } from '../../../../core/tokenizers/tokenizer';
import { FIXTURES, loadFixture, type Fixture } from '../../../helpers/parity';
import {
  checkBitsPerByte,
  checkLogits,
  checkTttSteps,
  TINY_CAUSAL_LMS,
  type CausalMeta,
} from '../../../helpers/parity-checks';

it('starts on a tfjs engine of its own, untouched by backends.test.ts (WASM and JS) in the same worker', () => {
  expect(tf.engine().backendNames()).not.toContain('wasm');
  expect(tf.engine().backendName).toBeUndefined();
});

// The same checks for every causal-LM architecture: logits, tokenizer ids, bits per byte, three TTT steps.
// backends.test.ts runs the numeric ones again on the WASM and pure-JS backends.
describe.each(TINY_CAUSAL_LMS)('%s parity with transformers', (name) => {
  let fixture: Fixture<CausalMeta>;
  let model: CausalLM;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    await initBackend({ log: () => undefined });
    fixture = await loadFixture<CausalMeta>(name);
    ({ model, tokenizer } = await loadCausalLM(path.join(FIXTURES, name)));
  });
  afterAll(() => model.dispose());

  it('computes the same logits (max abs diff <= 1e-4)', () => checkLogits(name, model, fixture));

  it('tokenizes like the Python tokenizer (byte-level BPE, unicode, special token text)', () => {
    for (const { text, ids } of fixture.meta.tokenizer) expect(tokenizer.encode(text)).toEqual(ids);
    expect(tokenizer.encode(fixture.meta.document)).toEqual(fixture.meta.document_ids);
    expect(tokenizer.specialTokenId('eos_token')).toBe(fixture.meta.eot);
  });

  it('computes the same bits per byte under rolling windows (relative diff <= 1e-6), batched or not', () =>
    checkBitsPerByte(name, model, fixture));

  it('matches torch AdamW + clip_grad_norm_ after 3 TTT steps, then resets exactly', () =>
    checkTttSteps(name, model, fixture));
});
