import { ServiceError } from '@temporalio/client';

/**
 * Waits for a workflow's result while `draw` refreshes its progress display: one draw at a time, a second apart
 * (a slow answer never lets an older frame overwrite a newer one), then one last draw once the result is in (a
 * short run can end before the first frame), then `finish` (close the bar), whether the workflow succeeded or not.
 * Without `draw` (progress off) it only waits.
 */
export async function followWorkflow<T>(
  handle: { result(): Promise<T> },
  progress: { draw: () => Promise<void>; finish: () => void; intervalMs?: number } | undefined,
): Promise<T> {
  const result = workflowResult(handle);
  if (!progress) return result;
  const draw = () => progress.draw().catch(() => undefined); // a query fails until a worker has the workflow
  let finished = false;
  let wake = () => {};
  const polling = (async () => {
    while (!finished) {
      await draw();
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, progress.intervalMs ?? 1000);
      });
    }
  })();
  const stop = async () => {
    finished = true;
    wake();
    await polling;
  };
  try {
    const value = await result;
    await stop();
    await draw();
    return value;
  } finally {
    await stop();
    progress.finish();
  }
}

/**
 * A workflow's result, waiting through transient server errors: the SDK's long poll gives up on the first
 * `DEADLINE_EXCEEDED` (a busy server answering late) or `UNAVAILABLE` (a restart), while a run followed for days
 * meets both. Other errors (the workflow failed, was cancelled or does not exist) end the wait.
 */
export async function workflowResult<T>(handle: { result(): Promise<T> }, retryMs = 1000): Promise<T> {
  for (;;) {
    try {
      return await handle.result();
    } catch (err) {
      if (!isTransient(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}

/** gRPC status codes (stable across gRPC implementations). */
const DEADLINE_EXCEEDED = 4;
const UNAVAILABLE = 14;

function isTransient(err: unknown): boolean {
  const code = err instanceof ServiceError ? (err.cause as { code?: number } | undefined)?.code : undefined;
  return code === DEADLINE_EXCEEDED || code === UNAVAILABLE;
}

/**
 * An ETA from the stage's own rate since it was first seen, as text: '—' until something is done (cli-progress's
 * own token prints fragments of "INF" and "NULL" then), `0s` once all is. A stage's rate starts with the stage, so
 * work resumed from an earlier attempt does not make it look fast.
 */
export function stageEta(now: () => number = Date.now): (done: number, total: number) => string {
  let origin: { at: number; done: number } | undefined;
  return (done, total) => {
    const at = now();
    if (!origin || done < origin.done) origin = { at, done };
    if (done >= total) return '0s';
    const rate = (done - origin.done) / ((at - origin.at) / 1000);
    return rate > 0 && Number.isFinite(rate) ? formatDuration((total - done) / rate) : '—';
  };
}

/** `42s`, `3m05s`, `2h07m`. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
