import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../../../core/backend';
import { type DocumentCheckpoint, readCheckpointFile, writeCheckpointFile } from '../../../../core/eval/checkpoint';
import {
  type DocumentToEvaluate,
  type EvaluationStage,
  type LoadedLanguageModel,
  evaluateDocument,
} from '../../../../core/eval/document';
import type { EvalResultRow } from '../../../../core/eval/results';
import type { EvalSettings } from '../../../../core/eval/run-layout';
import { loadCausalLM } from '../../../../core/models/registry';
import { TTTTrainer } from '../../../../core/training/ttt';
import { FIXTURES } from '../../../helpers/parity';

/**
 * Checkpoints in the middle of a document's training: a run stopped after a checkpoint and resumed from it gives
 * the uninterrupted run's row bit for bit, without training on or scoring the neighbors before the checkpoint again.
 * The model is tiny-gpt2 with dropout switched on, so that the dropout generator's state must come back too.
 */
const RUN: EvalSettings & { buildId: string } = {
  runId: 'r',
  testManifestUrl: 'file:///t/manifest.json',
  selection: { perDomain: 1, seed: 3 },
  maxDocumentBytes: 100_000,
  indexRoot: 'file:///i',
  build: 'b',
  buildId: 'b',
  model: 'tiny-gpt2',
  encoder: 'e',
  encoderMaxLength: 16,
  k: 4,
  lr: 1e-3,
  maxLength: 16,
  maxDistance: 4,
  maxNeighborTokens: 0,
  neighbors: 'nn',
  baselines: ['random', 'sift', 'dynamic'],
  excludeExactCopies: false,
  dynamicIterations: 2,
  seed: 5,
};

const text = (seed: number, words: number) =>
  Array.from({ length: words }, (_, i) => ['the', 'model', 'reads', 'a', 'neighbor', 'text'][(i * 7 + seed) % 6]).join(
    ' ',
  );
const neighbor = (rank: number, seed: number) => ({
  rank,
  distance: rank / 10,
  docId: `n${seed}`,
  corpusShard: 's',
  shardRow: seed,
  domain: 'D',
  text: text(seed, 20 + seed * 3),
});
const DOC: DocumentToEvaluate = {
  index: 0,
  docId: 'doc',
  domain: 'D',
  text: text(1, 40),
  neighbors: [1, 2, 3, 4].map((r) => neighbor(r, r)),
  random: [1, 2, 3, 4].map((r) => neighbor(r, 10 + r)),
  // SIFT repeats a pick: the second copy of n2 is trained on again.
  sift: { picks: [2, 1, 2, 3].map((seed, t) => neighbor(t + 1, seed)), stop: 2 },
};

let lm: LoadedLanguageModel;
let scratch: string;

beforeAll(async () => {
  await initBackend({ log: () => undefined });
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-checkpoint-'));
  const dir = path.join(scratch, 'tiny-gpt2-dropout');
  await fs.cp(path.join(FIXTURES, 'tiny-gpt2'), dir, { recursive: true });
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, resid_pdrop: 0.1, attn_pdrop: 0.1 }));
  const { model, tokenizer } = await loadCausalLM(dir);
  lm = { trainer: new TTTTrainer(model, { lr: RUN.lr }), tokenizer, prefixToken: 0, backend: 'test', digest: 'd' };
});

afterAll(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

/** Rows agree on everything but wall-clock seconds. */
const withoutSeconds = (row: EvalResultRow) =>
  Object.fromEntries(Object.entries(row).filter(([name]) => !name.startsWith('seconds_')));

/** Evaluates DOC, checkpointing after every neighbor, and stops (like a killed worker) after `stopAt`'s checkpoint. */
async function interrupted(stopAt: { stage: EvaluationStage; k: number }): Promise<DocumentCheckpoint> {
  const saved: DocumentCheckpoint[] = [];
  const stop = new AbortController();
  await expect(
    evaluateDocument(lm, DOC, RUN, () => undefined, stop.signal, {
      every: 1,
      save: async (checkpoint) => {
        // As the activity does: the checkpoint goes through its file format.
        const file = path.join(scratch, 'saved.ckpt');
        await writeCheckpointFile(file, checkpoint);
        saved.push(await readCheckpointFile(file));
        if (checkpoint.stage === stopAt.stage && checkpoint.k === stopAt.k) stop.abort();
      },
    }),
  ).rejects.toThrow();
  return saved.at(-1)!;
}

async function resumed(from: DocumentCheckpoint): Promise<{ row: EvalResultRow; work: string[] }> {
  const work: string[] = [];
  const row = await evaluateDocument(lm, DOC, RUN, (stage, k) => work.push(`${stage} ${k}`), undefined, {
    every: 2,
    save: () => Promise.resolve(),
    resume: from,
  });
  return { row, work };
}

describe('document checkpoints', () => {
  let undisturbed: EvalResultRow;

  beforeAll(async () => {
    undisturbed = await evaluateDocument(lm, DOC, RUN);
    expect(undisturbed.steps).toBeGreaterThan(4); // several chunks per neighbor at max_length 16
  });

  it('resumed in the TTT-NN loop: the same row, and the first neighbors are not trained on again', async () => {
    const checkpoint = await interrupted({ stage: 'ttt-nn', k: 2 });
    expect([checkpoint.stage, checkpoint.k, checkpoint.result.bitsPerByte.length]).toEqual(['ttt-nn', 2, 3]);
    const { row, work } = await resumed(checkpoint);
    expect(withoutSeconds(row)).toEqual(withoutSeconds(undisturbed));
    expect(work.filter((w) => w.startsWith('ttt-nn'))).toEqual(['ttt-nn 3', 'ttt-nn 4']);
    expect(work.filter((w) => w.startsWith('random'))).toEqual(['random 1', 'random 2', 'random 3', 'random 4']);
  });

  it('resumed in the random control: the same row, and TTT-NN is not run again at all', async () => {
    const checkpoint = await interrupted({ stage: 'random', k: 3 });
    expect(checkpoint.tttNn?.result.bitsPerByte).toEqual(undisturbed.bits_per_byte);
    const { row, work } = await resumed(checkpoint);
    expect(withoutSeconds(row)).toEqual(withoutSeconds(undisturbed));
    expect(work.filter((w) => w.startsWith('ttt-nn'))).toEqual([]);
    expect(work.filter((w) => w.startsWith('random'))).toEqual(['random 4']);
  });

  it("resumed in SIFT's loop: the same row, and neither TTT-NN nor the random control is run again", async () => {
    expect(undisturbed.sift_neighbor_ids).toEqual(['n2', 'n1', 'n2', 'n3']);
    expect([undisturbed.sift_bits_per_byte.length, undisturbed.sift_stop]).toEqual([5, 2]);
    const checkpoint = await interrupted({ stage: 'sift', k: 2 });
    expect(checkpoint.random?.bitsPerByte).toEqual(undisturbed.random_bits_per_byte);
    const { row, work } = await resumed(checkpoint);
    expect(withoutSeconds(row)).toEqual(withoutSeconds(undisturbed));
    expect(work.filter((w) => /^(ttt-nn|random)/.test(w))).toEqual([]);
    expect(work.filter((w) => w.startsWith('sift'))).toEqual(['sift 3', 'sift 4']);
  });

  it('without the dropout state the resumed curve would differ (the state matters)', async () => {
    const checkpoint = await interrupted({ stage: 'ttt-nn', k: 2 });
    const { row } = await resumed({ ...checkpoint, dropout: checkpoint.dropout + 1 });
    expect(row.bits_per_byte.slice(0, 3)).toEqual(undisturbed.bits_per_byte.slice(0, 3));
    expect(row.bits_per_byte[3]).not.toBe(undisturbed.bits_per_byte[3]);
  });

  it('a checkpoint file keeps every value, NaN included', async () => {
    const checkpoint = await interrupted({ stage: 'ttt-nn', k: 1 });
    const withNaN = { ...checkpoint, result: { ...checkpoint.result, neighborLosses: [NaN] } };
    const file = path.join(scratch, 'nan.ckpt');
    await writeCheckpointFile(file, withNaN);
    expect(await readCheckpointFile(file)).toEqual(withNaN);
  });
});
