import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../core/backend';
import { bitsPerByte } from '../../../../core/metrics/bits-per-byte';
import { dropoutMask } from '../../../../core/models/layers';
import { loadCausalLM } from '../../../../core/models/registry';
import { liveNativeOptimizerVariables } from '../../../../core/training/adamw';
import { causalLmLoss, runDocument, TTTTrainer } from '../../../../core/training/ttt';
import { FIXTURES } from '../../../helpers/parity';

describe('TTTTrainer', () => {
  beforeAll(async () => {
    await initBackend({ log: () => undefined });
  });

  it('leaks no tensors or bytes over 200 steps, across documents and resets, and training lowers the loss', async () => {
    const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt2'));
    const tokens = tokenizer.encode('The quick brown fox jumps over the lazy dog. '.repeat(6));
    const trainer = new TTTTrainer(model, { lr: 1e-3 });
    const ids = tf.tensor2d([tokens.slice(0, 32)], undefined, 'int32');
    const lossOf = () => tf.tidy(() => causalLmLoss(model, ids).dataSync()[0] as number);
    // Adam's moments live in tfjs tensors (portable build) or in TensorFlow resource variables (native build).
    const memory = () => {
      const { numTensors, numDataBuffers, numBytes } = tf.memory();
      return { numTensors, numDataBuffers, numBytes, resources: liveNativeOptimizerVariables() };
    };
    const initial = lossOf();
    const idle = memory(); // weights and their pretrained copy, no optimizer state

    // One document of 100 steps on the same chunk: the first step allocates Adam's moments, the others nothing.
    trainer.step(tokens.slice(0, 32));
    const training = memory();
    const variables = new Set(model.params.values()).size;
    if (training.resources > 0) expect(training.resources).toBe(2 * variables);
    else expect(training.numBytes).toBeGreaterThan(idle.numBytes);
    for (let i = 1; i < 100; i++) {
      trainer.step(tokens.slice(0, 32));
      expect(memory()).toEqual(training);
    }
    expect(trainer.steps).toBe(100);
    expect(lossOf()).toBeLessThan(initial - 1);
    trainer.reset();
    expect(lossOf()).toBe(initial);
    expect(memory()).toEqual(idle); // moments freed, weights restored in place

    // 20 documents of 5 steps each (200 steps in all), chunks of 8 to 32 tokens: every reset returns to the same
    // tensors and bytes, and nothing accumulates while a document trains.
    for (let doc = 0; doc < 20; doc++) {
      const length = 8 + 8 * (doc % 4);
      for (let i = 0; i < 5; i++) {
        trainer.step(tokens.slice(i * length, (i + 1) * length));
        expect(memory()).toEqual(training);
      }
      expect(trainer.steps).toBe(5);
      trainer.reset();
      expect(memory()).toEqual(idle);
    }
    expect(lossOf()).toBe(initial);
    // Evaluation (bits per byte over several batched windows) leaves nothing behind.
    bitsPerByte(model, 'The quick brown fox.', tokens, { prefixToken: 0, maxLength: 16, batchSize: 3 });
    expect(memory()).toEqual(idle);
    trainer.dispose();
    ids.dispose();
    model.dispose();
  });

  it('starts each document from a fresh optimizer (same result after another document) unless carryOptimizer is set', async () => {
    const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt-neo'));
    const neighbor = tokenizer.encode('Nearest neighbors are retrieved by embedding distance. '.repeat(4));
    const other = tokenizer.encode('Completely different text about cooking pasta and tomatoes. '.repeat(4));
    const doc = 'Neighbors retrieved by distance.';
    const docTokens = tokenizer.encode(doc);
    const trainer = new TTTTrainer(model, { lr: 1e-3 });
    const bpb = () => bitsPerByte(model, doc, docTokens, { prefixToken: 0, maxLength: 16 }).bitsPerByte;

    const before = bpb();
    trainer.trainOnTokens(neighbor, 16);
    const first = bpb();
    trainer.reset();
    expect(bpb()).toBe(before);

    trainer.trainOnTokens(other, 16);
    trainer.reset();
    trainer.trainOnTokens(neighbor, 16);
    expect(bpb()).toBe(first);
    expect(first).not.toBe(before);
    trainer.reset();
    trainer.dispose();

    // The reference's behaviour, kept for side-by-side checks: moments carry over, so order matters.
    const carry = new TTTTrainer(model, { lr: 1e-3, carryOptimizer: true });
    carry.trainOnTokens(other, 16);
    const carried = carry.steps;
    carry.reset();
    expect(bpb()).toBe(before);
    expect(carry.steps).toBe(carried);
    carry.trainOnTokens(neighbor, 16);
    expect(bpb()).not.toBe(first);
    carry.dispose();
    model.dispose();
  });

  it('applies the checkpoint dropout only inside TTT steps, as torch train()/eval() does', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-dropout-'));
    await fs.cp(path.join(FIXTURES, 'tiny-gpt2'), dir, { recursive: true });
    const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await fs.writeFile(
      path.join(dir, 'config.json'),
      JSON.stringify({ ...config, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 }),
    );
    const { model } = await loadCausalLM(dir);
    const ids = tf.tensor2d([[5, 17, 42, 99, 7, 3, 250, 11]], undefined, 'int32');
    const logits = () => tf.tidy(() => Array.from(model.forward(ids).dataSync()));

    const evalA = logits();
    expect(logits()).toEqual(evalA); // eval mode is deterministic
    model.training = true;
    const trainA = logits();
    const trainB = logits();
    expect(trainA).not.toEqual(evalA);
    expect(trainA).not.toEqual(trainB);
    model.training = false;

    const withDropout = new TTTTrainer(model, { lr: 1e-3 });
    withDropout.step([5, 17, 42, 99, 7, 3, 250, 11]);
    expect(model.training).toBe(false);
    withDropout.reset();
    expect(logits()).toEqual(evalA);
    withDropout.dispose();

    // Without dropout two identical steps from the same start agree exactly.
    const plain = new TTTTrainer(model, { lr: 1e-3, dropout: false });
    plain.step([5, 17, 42, 99, 7, 3, 250, 11]);
    const once = logits();
    plain.reset();
    plain.step([5, 17, 42, 99, 7, 3, 250, 11]);
    expect(logits()).toEqual(once);
    plain.dispose();
    ids.dispose();
    model.dispose();
    await fs.rm(dir, { recursive: true });
  });

  it('runs one TTT-NN document: bpb before and after each neighbor, then restores the model', async () => {
    const { model, tokenizer } = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt2'));
    const doc = 'Nearest neighbors are retrieved by embedding distance.';
    const tokens = tokenizer.encode(doc);
    const neighbors = [doc.repeat(3), 'Retrieved by distance, the nearest neighbors.', 'x'].map((t) =>
      tokenizer.encode(t),
    );
    const trainer = new TTTTrainer(model, { lr: 1e-3, dropout: false });
    const seen: number[] = [];
    const result = runDocument(trainer, doc, tokens, neighbors, {
      maxLength: 16,
      prefixToken: 0,
      onNeighbor: (k) => seen.push(k),
    });

    expect(seen).toEqual([1, 2, 3]);
    expect(result.bitsPerByte).toHaveLength(4);
    expect(result.bytes).toBe(Buffer.byteLength(doc));
    // Training on the document's own text three times over must lower its bits per byte.
    expect(result.bitsPerByte[1]).toBeLessThan((result.bitsPerByte[0] as number) - 0.05);
    // A one-token neighbor has nothing to predict: no step, NaN loss, unchanged score.
    expect(result.neighborLosses[2]).toBeNaN();
    expect(result.bitsPerByte[3]).toBe(result.bitsPerByte[2]);
    expect(result.steps).toBe(
      Math.ceil((neighbors[0] as number[]).length / 16) + Math.ceil((neighbors[1] as number[]).length / 16),
    );
    // Restored: scoring again gives the before-TTT figure exactly.
    expect(bitsPerByte(model, doc, tokens, { prefixToken: 0, maxLength: 16 }).bitsPerByte).toBe(result.bitsPerByte[0]);
    trainer.dispose();
    model.dispose();
  });
});

describe('dropoutMask', () => {
  it('zeroes a `rate` fraction and scales the rest by 1 / (1 - rate), differently on each call', () => {
    const a = dropoutMask([1000, 100], 0.1);
    const b = dropoutMask([1000, 100], 0.1);
    const values = a.dataSync();
    const zeros = values.filter((v) => v === 0).length / values.length;
    expect(zeros).toBeGreaterThan(0.095);
    expect(zeros).toBeLessThan(0.105);
    expect(new Set(values)).toEqual(new Set([0, Math.fround(1 / 0.9)]));
    expect(Array.from(b.dataSync())).not.toEqual(Array.from(values));
    tf.dispose([a, b]);
  });
});
