import { createHash } from 'node:crypto';
import type { NeighborText } from '../index/retrieve';
import { dropoutState, seedDropout } from '../models/layers';
import type { TextTokenizer } from '../tokenizers/tokenizer';
import { type DocumentProgress, type DocumentResult, type TTTTrainer, documentSteps } from '../training/ttt';
import type { DocumentCheckpoint } from './checkpoint';
import { dynamicEvaluation, inContextNll, secondHalfNll, splitDocument } from './baselines';
import { type EvalResultRow, skippedRow } from './results';
import { type EvalSettings, hash32 } from './run-layout';

/**
 * One test document of an evaluation, end to end on a loaded model: bits/byte before, TTT-NN over its neighbors
 * (nearest first, the curve over k), the random-neighbor control, SIFT's picks and the baselines the run asks for; the weights
 * are the pretrained ones again when it returns. Deterministic: dropout masks are seeded from the run's seed and the
 * document's index, and every document starts from a fresh optimizer.
 */
export interface LoadedLanguageModel {
  trainer: TTTTrainer;
  tokenizer: TextTokenizer;
  prefixToken: number;
  backend: string;
  digest: string;
}

export interface DocumentToEvaluate {
  index: number;
  docId: string;
  domain: string;
  text: string;
  neighbors: readonly NeighborText[];
  /** The random control's draws (as many are used as there are neighbors). */
  random: readonly NeighborText[];
  /** The SIFT baseline's picks, in pick order (repeats included), and where adaptive SIFT stops (-1: no α). */
  sift?: { picks: readonly NeighborText[]; stop: number };
}

export type EvaluationStage = 'ttt-nn' | 'random' | 'sift' | 'dynamic' | 'in-context';
/** After each neighbor of each stage: heartbeats and progress. */
export type OnNeighbor = (stage: EvaluationStage, k: number, of: number) => void;

/** Checkpoints of the training loops (see checkpoint.ts): taken every `every` neighbors, never after a loop's last. */
export interface Checkpointing {
  every: number;
  save(checkpoint: DocumentCheckpoint): Promise<void>;
  /** Where an earlier attempt at this document left off. */
  resume?: DocumentCheckpoint;
}

export async function evaluateDocument(
  lm: LoadedLanguageModel,
  doc: DocumentToEvaluate,
  run: EvalSettings & { buildId: string },
  onNeighbor: OnNeighbor = () => undefined,
  /** Aborts between neighbors (a cancelled activity, a worker shutting down); the weights are reset first. */
  signal?: AbortSignal,
  checkpointing?: Checkpointing,
): Promise<EvalResultRow> {
  const t0 = performance.now();
  const encode = (text: string) => lm.tokenizer.encode(text, { addSpecialTokens: false });
  const bytes = Buffer.byteLength(doc.text, 'utf8');
  const meta = { backend: lm.backend, model_digest: lm.digest, index_build: run.buildId };
  const base = { doc_index: doc.index, doc_id: doc.docId, domain: doc.domain, bytes, ...meta };
  if (bytes > run.maxDocumentBytes) return skippedRow({ ...base, tokens: 0, skip_reason: 'over_size_limit' });
  const tokens = encode(doc.text);
  if (tokens.length === 0) return skippedRow({ ...base, tokens: 0, skip_reason: 'empty_after_tokenizing' });

  // Test-set contamination: neighbors whose text is the document's, byte for byte.
  const digest = sha256(doc.text);
  const isCopy = doc.neighbors.map((n) => sha256(n.text) === digest);
  const exactCopies = isCopy.filter(Boolean).length;
  const neighbors = run.excludeExactCopies ? doc.neighbors.filter((_, i) => !isCopy[i]) : doc.neighbors;
  const tokensOf = (list: readonly NeighborText[]) =>
    list.map((n) => {
      const ids = encode(n.text);
      return run.maxNeighborTokens > 0 ? ids.slice(0, run.maxNeighborTokens) : ids;
    });
  const neighborTokens = tokensOf(neighbors);
  const options = { prefixToken: lm.prefixToken, maxLength: run.maxLength };
  const score = { prefixToken: lm.prefixToken, maxLength: run.maxLength };
  // Dynamic evaluation scores the second half on its own, as the reference does; TTT-NN is scored on it too.
  const split = run.baselines.includes('dynamic') ? splitDocument(doc.text, tokens, lm.tokenizer) : undefined;
  let splitNllTtt = NaN;

  const resume = checkpointing?.resume;
  // A training loop from its start (its own dropout seed) or from the checkpoint taken in it.
  const startLoop = (stage: DocumentCheckpoint['stage']) => {
    const from = resume?.stage === stage ? resume : undefined;
    seedDropout(from ? from.dropout : hash32(`${run.seed}/${doc.index}/${stage}`));
    return from && { result: from.result, state: from.trainer };
  };
  // After each neighbor: a checkpoint every `every` neighbors while some remain, then progress (which therefore
  // never runs ahead of what is saved).
  const afterNeighbor =
    (stage: DocumentCheckpoint['stage'], of: number, done: Pick<DocumentCheckpoint, 'tttNn' | 'random'> = {}) =>
    async ({ k, result }: DocumentProgress) => {
      if (checkpointing && k % checkpointing.every === 0 && k < of) {
        const trainer = lm.trainer.exportState();
        await checkpointing.save({ stage, k, result, trainer, dropout: dropoutState(), ...done });
      }
      onNeighbor(stage, k, of);
    };

  let ttt: DocumentResult;
  if (resume?.tttNn) {
    ({ result: ttt, splitNllTtt } = resume.tttNn); // the checkpoint was taken after TTT-NN, in a baseline's loop
  } else {
    const from = startLoop('ttt-nn');
    ttt = await stepThrough(
      documentSteps(lm.trainer, doc.text, tokens, neighborTokens, {
        ...options,
        ...(from && { resume: from }),
        ...(split && {
          onTrained: () => (splitNllTtt = secondHalfNll(lm.trainer.model, [], split.secondTokens, score)),
        }),
      }),
      afterNeighbor('ttt-nn', neighbors.length),
      signal,
    );
  }
  let training = ttt.seconds.training;
  let evaluation = ttt.seconds.evaluation;

  const row: EvalResultRow = {
    ...skippedRow({ ...base, tokens: tokens.length, skip_reason: '' }),
    bits_per_byte: ttt.bitsPerByte,
    nll: ttt.nllNats,
    neighbor_ids: neighbors.map((n) => n.docId),
    neighbor_distances: neighbors.map((n) => n.distance),
    neighbor_domains: neighbors.map((n) => n.domain),
    neighbor_losses: ttt.neighborLosses,
    exact_copies: exactCopies,
    excluded_copies: run.excludeExactCopies ? exactCopies : 0,
    steps: ttt.steps,
  };

  let control: DocumentResult | undefined;
  if (run.baselines.includes('random')) {
    if (resume?.random) {
      control = resume.random; // the checkpoint was taken after the random control, in SIFT's loop
    } else {
      // As many documents as the document has neighbors, drawn uniformly from the index: what retrieval adds.
      const drawn = doc.random.slice(0, neighbors.length);
      const from = startLoop('random');
      control = await stepThrough(
        documentSteps(lm.trainer, doc.text, tokens, tokensOf(drawn), { ...options, ...(from && { resume: from }) }),
        afterNeighbor('random', drawn.length, { tttNn: { result: ttt, splitNllTtt } }),
        signal,
      );
    }
    Object.assign(row, { random_bits_per_byte: control.bitsPerByte, random_nll: control.nllNats });
    row.random_steps = control.steps;
    training += control.seconds.training;
    evaluation += control.seconds.evaluation;
  }

  if (run.baselines.includes('sift') && doc.sift) {
    // SIFT's picks from the nearest neighbors, in pick order, in the same loop: a repeated pick is trained on again.
    const { picks, stop } = doc.sift;
    const from = startLoop('sift');
    const sift = await stepThrough(
      documentSteps(lm.trainer, doc.text, tokens, tokensOf(picks), { ...options, ...(from && { resume: from }) }),
      afterNeighbor('sift', picks.length, { tttNn: { result: ttt, splitNllTtt }, ...(control && { random: control }) }),
      signal,
    );
    Object.assign(row, { sift_bits_per_byte: sift.bitsPerByte, sift_nll: sift.nllNats, sift_stop: stop });
    row.sift_steps = sift.steps;
    row.sift_neighbor_ids = picks.map((n) => n.docId);
    training += sift.seconds.training;
    evaluation += sift.seconds.evaluation;
  }

  if (split) {
    // Training on the document's own first half, `dynamicIterations` passes (the paper reports 7).
    seedDropout(hash32(`${run.seed}/${doc.index}/dynamic`));
    onNeighbor('dynamic', 0, run.dynamicIterations);
    const t1 = performance.now();
    const dynamic = dynamicEvaluation(lm.trainer, split, { ...score, iterations: run.dynamicIterations });
    training += (performance.now() - t1) / 1000;
    Object.assign(row, {
      split_bytes: split.secondBytes,
      split_tokens: split.secondTokens.length,
      split_nll_before: dynamic.nllBefore,
      split_nll_dynamic: dynamic.nllAfter,
      split_nll_ttt: splitNllTtt,
      dynamic_steps: dynamic.steps,
    });
  }

  if (run.baselines.includes('in-context')) {
    // The pretrained model with the neighbors, nearest first, filling the context before the document.
    onNeighbor('in-context', 0, neighbors.length);
    const t1 = performance.now();
    row.in_context_nll = inContextNll(lm.trainer.model, tokens, neighborTokens, score).nllNats;
    evaluation += (performance.now() - t1) / 1000;
  }

  row.seconds_training = training;
  row.seconds_evaluation = evaluation;
  row.seconds_total = (performance.now() - t0) / 1000;
  return row;
}

/** Runs a document's steps, letting the event loop turn after each neighbor (so that heartbeats go out). */
async function stepThrough(
  steps: Generator<DocumentProgress, DocumentResult>,
  onStep: (progress: DocumentProgress) => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<DocumentResult> {
  try {
    for (let next = steps.next(); ; next = steps.next()) {
      if (next.done === true) return next.value;
      await onStep(next.value);
      await new Promise((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
    }
  } finally {
    steps.return(undefined as never); // resets the weights when aborted; a no-op once finished
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
