import type { LoadedLanguageModel } from '../core/eval/document';
import { type EngineSettings, describeBackend, initBackend } from '../core/backend';
import { modelDigest } from '../core/checkpoints/from-store';
import { harnessPrefixToken } from '../core/metrics/bits-per-byte';
import { loadCausalLM } from '../core/models/registry';
import { TTTTrainer } from '../core/training/ttt';

/**
 * The language models a worker process holds: each loaded once with its trainer (which keeps the pretrained copy
 * to reset to), kept between documents, and used by one document at a time (the weights are shared state). One copy
 * per model and process, on purpose: tfjs runs every op from the process's one JavaScript thread, so a second copy
 * would double the memory without running beside the first. Documents run in parallel on more worker processes
 * (`tttnn worker --queues gpu` per GPU or per few cores), each with its own copy; `eval.concurrency` spreads them.
 */
export function languageModelPool(deps: {
  locate(spec: string): Promise<string>;
  engine: EngineSettings;
  log: (line: string) => void;
}) {
  interface Slot {
    loaded: Awaited<ReturnType<typeof loadCausalLM>>;
    digest: string;
    backend: string;
    trainer?: { lr: number; trainer: TTTTrainer };
    /** The tail of this model's queue: each document waits for the one before it. */
    tail: Promise<unknown>;
  }
  const slots = new Map<string, Promise<Slot>>();
  const slotOf = (spec: string) => {
    let slot = slots.get(spec);
    if (!slot) {
      slot = (async () => {
        const local = await deps.locate(spec);
        const loaded = await loadCausalLM(local, { ...deps.engine, log: deps.log, training: true });
        const backend = describeBackend(await initBackend(deps.engine));
        return { loaded, digest: (await modelDigest(local)).version, backend, tail: Promise.resolve() };
      })();
      slots.set(spec, slot);
      slot.catch(() => slots.delete(spec));
    }
    return slot;
  };

  return async function withLanguageModel<T>(
    spec: string,
    options: { lr: number; prefixToken?: number },
    work: (lm: LoadedLanguageModel) => Promise<T>,
  ): Promise<T> {
    const slot = await slotOf(spec);
    const run = async () => {
      if (slot.trainer?.lr !== options.lr) {
        slot.trainer?.trainer.dispose();
        slot.trainer = { lr: options.lr, trainer: new TTTTrainer(slot.loaded.model, { lr: options.lr }) };
      }
      const { tokenizer } = slot.loaded;
      return work({
        trainer: slot.trainer.trainer,
        tokenizer,
        prefixToken: harnessPrefixToken(tokenizer, options.prefixToken),
        backend: slot.backend,
        digest: slot.digest,
      });
    };
    const result = slot.tail.then(run, run);
    slot.tail = result.catch(() => undefined);
    return result;
  };
}
