import { promises as fs } from 'node:fs';
import type { DocumentResult, TrainerState } from '../training/ttt';

/**
 * A document's progress in the middle of a training loop, for long documents with big models: resuming from it
 * skips the neighbors already trained on instead of replaying their steps. What it saves is what the next step
 * depends on (weights, Adam's moments and step count, the dropout generator) and the curve so far, so that the
 * resumed result equals an uninterrupted one bit for bit. Off by default (`eval.checkpointEvery` 0): for SmolLM2 on
 * 2 cores a checkpoint (1.5 GiB) costs about 4 replayed steps to write (`npm run bench:checkpoint`).
 */
export interface DocumentCheckpoint {
  /** The training loop it was taken in: TTT-NN over the neighbors, the random-neighbor control or SIFT's picks. */
  stage: 'ttt-nn' | 'random' | 'sift';
  /** Neighbors of that loop trained on so far. */
  k: number;
  /** That loop's result so far (the curve up to k). */
  result: DocumentResult;
  trainer: TrainerState;
  dropout: number;
  /** TTT-NN's finished result and its second-half NLL, once a baseline's loop is under way. */
  tttNn?: { result: DocumentResult; splitNllTtt: number };
  /** The random control's finished result, once SIFT's loop is under way (when the run has both). */
  random?: DocumentResult;
}

/**
 * One file: a 4-byte little-endian header length, the header (JSON, everything but the tensors; non-finite
 * numbers spelled out, as JSON has none), then the tensors' float32 values back to back. Written and read one
 * tensor at a time: a big model's state never sits in memory twice.
 */
export async function writeCheckpointFile(file: string, checkpoint: DocumentCheckpoint): Promise<void> {
  const { trainer, ...rest } = checkpoint;
  const header = Buffer.from(
    JSON.stringify({ ...rest, steps: trainer.steps, lengths: trainer.tensors.map((t) => t.length) }, (_, v: unknown) =>
      typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
    ),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const handle = await fs.open(file, 'w');
  try {
    await handle.write(length);
    await handle.write(header);
    for (const t of trainer.tensors) await handle.write(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  } finally {
    await handle.close();
  }
}

export async function readCheckpointFile(file: string): Promise<DocumentCheckpoint> {
  const handle = await fs.open(file, 'r');
  try {
    const read = async (bytes: number, at: number) => {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await handle.read(buffer, 0, bytes, at);
      if (bytesRead !== bytes) throw new Error(`checkpoint ${file} is truncated`);
      return buffer;
    };
    const headerLength = (await read(4, 0)).readUInt32LE();
    const header = JSON.parse((await read(headerLength, 4)).toString('utf8'), (_, v: unknown) =>
      v === 'NaN' || v === 'Infinity' || v === '-Infinity' ? Number(v) : v,
    ) as Omit<DocumentCheckpoint, 'trainer'> & { steps: number; lengths: number[] };
    const { steps, lengths, ...rest } = header;
    let at = 4 + headerLength;
    const tensors: Float32Array[] = [];
    for (const n of lengths) {
      const bytes = await read(4 * n, at);
      tensors.push(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      at += 4 * n;
    }
    return { ...rest, trainer: { steps, tensors } };
  } finally {
    await handle.close();
  }
}
