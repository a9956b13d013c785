import { checkWasmFits } from '../../../../core/models/registry';

describe('checkWasmFits', () => {
  it('refuses, naming the file and the command, a model whose training state overflows the WASM heap', () => {
    // SmolLM2-135M: the demo's model, which WASM aborted on minutes into a run before this check.
    expect(() => checkWasmFits(134.5e6, 'smollm2.gguf', true)).toThrow(
      "smollm2.gguf: 135M parameters need ~2.5 GiB for test-time training, more than the WASM backend holds (2 GiB); run 'tttnn setup' to build native TensorFlow, or use a smaller model",
    );
    // The same model only scored fits; tiny test models train.
    expect(() => checkWasmFits(134.5e6, 'smollm2.gguf', false)).not.toThrow();
    expect(() => checkWasmFits(1e6, 'tiny', true)).not.toThrow();
    expect(() => checkWasmFits(400e6, 'big', false)).toThrow(/big: 400M parameters need ~2\.2 GiB to run/);
  });
});
