import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../core/backend';
import { bitsPerByte } from '../../../core/metrics/bits-per-byte';
import type { CausalLM } from '../../../core/models/modeling-utils';
import { loadCausalLM } from '../../../core/models/registry';
import type { TextTokenizer } from '../../../core/tokenizers/tokenizer';
import { TTTTrainer } from '../../../core/training/ttt';
import {
  FIXTURES,
  fixtureTensor,
  idsTensor,
  loadFixture,
  maxAbs,
  maxAbsDiff,
  report,
  type Fixture,
} from '../../helpers/parity';

interface CausalMeta {
  tokenizer: { text: string; ids: number[] }[];
  document: string;
  document_ids: number[];
  eot: number;
  max_length: number;
  bpb: { nll_nats: number; bytes: number; bits_per_byte: number };
  ttt: { lr: number; chunks: number[][]; losses: number[] };
}

// The same checks for every causal-LM architecture: logits, tokenizer ids, bits per byte, three TTT steps.
describe.each(['tiny-gpt2', 'tiny-gpt-neo'])('%s parity with transformers', (name) => {
  let fixture: Fixture<CausalMeta>;
  let model: CausalLM;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    await initBackend({ log: () => undefined });
    fixture = await loadFixture<CausalMeta>(name);
    ({ model, tokenizer } = await loadCausalLM(path.join(FIXTURES, name)));
  });
  afterAll(() => model.dispose());

  it('computes the same logits (max abs diff <= 1e-4)', () => {
    const ids = idsTensor(fixture, 'input_ids');
    const logits = model.forward(ids);
    const expected = fixtureTensor(fixture, 'logits');
    expect(logits.shape).toEqual(expected.shape);
    const diff = maxAbsDiff(logits.dataSync(), expected.data);
    report(`${name} logits`, { maxAbsDiff: diff, maxAbsLogit: maxAbs(expected.data) });
    expect(diff).toBeLessThanOrEqual(1e-4);
    tf.dispose([ids, logits]);
  });

  it('tokenizes like the Python tokenizer (byte-level BPE, unicode, special token text)', () => {
    for (const { text, ids } of fixture.meta.tokenizer) expect(tokenizer.encode(text)).toEqual(ids);
    expect(tokenizer.encode(fixture.meta.document)).toEqual(fixture.meta.document_ids);
    expect(tokenizer.specialTokenId('eos_token')).toBe(fixture.meta.eot);
  });

  it('computes the same bits per byte under rolling windows (relative diff <= 1e-6), batched or not', () => {
    const { document, document_ids, eot, max_length, bpb } = fixture.meta;
    for (const batchSize of [1, 3]) {
      const got = bitsPerByte(model, document, document_ids, { eot, maxLength: max_length, batchSize });
      const rel = Math.abs(got.bitsPerByte - bpb.bits_per_byte) / bpb.bits_per_byte;
      report(`${name} bpb batch ${batchSize}`, { relDiff: rel });
      expect(got.bytes).toBe(bpb.bytes);
      expect(rel).toBeLessThanOrEqual(1e-6);
    }
  });

  it('matches torch AdamW + clip_grad_norm_ after 3 TTT steps, then resets exactly', () => {
    const trainer = new TTTTrainer(model, { lr: fixture.meta.ttt.lr });
    const before = new Map([...model.params].map(([k, v]) => [k, v.dataSync().slice()]));
    const losses = fixture.meta.ttt.chunks.map((chunk) => trainer.step(chunk));
    expect(maxAbsDiff(losses, fixture.meta.ttt.losses)).toBeLessThanOrEqual(1e-5);

    let worstRel = 0;
    let worstAbs = 0;
    let keyBiasAbs = 0;
    for (const [key, v] of model.params) {
      const expected = fixtureTensor(fixture, `ttt.${key}`).data;
      let got = v.dataSync() as Float32Array;
      // The key bias of GPT-2's fused c_attn adds q.b_k to a whole row of scores, which softmax ignores: its true
      // gradient is 0, its computed one is float noise, and Adam turns noise into steps of up to lr either way.
      // Compare that slice only against that bound; everything else to 1e-5.
      let want = expected;
      if (key.endsWith('attn.c_attn.bias')) {
        const C = got.length / 3;
        keyBiasAbs = Math.max(keyBiasAbs, maxAbsDiff(got.subarray(C, 2 * C), expected.subarray(C, 2 * C)));
        got = Float32Array.from([...got.subarray(0, C), ...got.subarray(2 * C)]);
        want = Float32Array.from([...expected.subarray(0, C), ...expected.subarray(2 * C)]);
      }
      const abs = maxAbsDiff(got, want);
      worstAbs = Math.max(worstAbs, abs);
      worstRel = Math.max(worstRel, abs / maxAbs(want));
      // The steps must have moved every tensor, or the comparison would prove nothing.
      expect(maxAbsDiff(v.dataSync(), before.get(key) as Float32Array)).toBeGreaterThan(1e-4);
    }
    expect(keyBiasAbs).toBeLessThanOrEqual(3 * fixture.meta.ttt.lr);
    report(`${name} ttt 3 steps`, { maxAbsDiff: worstAbs, maxRelDiff: worstRel, keyBiasAbsDiff: keyBiasAbs });
    expect(worstRel).toBeLessThanOrEqual(1e-5);

    trainer.reset();
    for (const [key, v] of model.params) expect(maxAbsDiff(v.dataSync(), before.get(key) as Float32Array)).toBe(0);
    expect(trainer.steps).toBe(0);
    trainer.dispose();
  });
});
