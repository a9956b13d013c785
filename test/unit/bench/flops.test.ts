import path from 'node:path';
import { forwardFlops, matmulWeights, shapeFromConfig, trainStepFlops } from '../../../bench/flops';
import { loadCausalLM, loadEncoder } from '../../../core/models/registry';
import { FIXTURES } from '../../helpers/parity';

describe('bench FLOP counts', () => {
  test('GPT-2 124M: 12 layers of 12·C² plus the LM head', () => {
    const shape = shapeFromConfig({ model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, vocab_size: 50257 });
    expect(matmulWeights(shape)).toBe(12 * 12 * 768 ** 2 + 768 * 50257);
    const T = 1024;
    expect(forwardFlops(shape, T)).toBe(2 * matmulWeights(shape) * T + 4 * 12 * T * T * 768);
    expect(trainStepFlops(shape, T)).toBe(3 * forwardFlops(shape, T));
  });

  // The formula's W must be exactly the weights the models multiply activations by: every 2-D parameter except
  // the embedding tables, plus the LM head when it is tied to the token embedding.
  test.each([
    ['tiny-gpt2', 'causal'],
    ['tiny-llama', 'causal'],
    ['tiny-bert', 'encoder'],
    ['tiny-roberta', 'encoder'],
  ])('%s: matmulWeights equals the checkpoint’s matmul parameters', async (name, kind) => {
    const dir = path.join(FIXTURES, name);
    const { model } = kind === 'causal' ? await loadCausalLM(dir) : await loadEncoder(dir);
    try {
      const shape = shapeFromConfig(model.config);
      const counted = [...model.params]
        .filter(([key, v]) => v.shape.length === 2 && !/embed|wte|wpe/.test(key))
        .reduce((sum, [, v]) => sum + v.size, 0);
      const tiedHead =
        shape.lmHeadVocab > 0 && !model.params.has('lm_head.weight') ? shape.hidden * shape.lmHeadVocab : 0;
      expect(matmulWeights(shape)).toBe(counted + tiedHead);
    } finally {
      model.dispose();
    }
  });
});
