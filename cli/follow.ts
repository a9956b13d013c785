/**
 * Waits for a workflow's result while `draw` refreshes its progress display: one draw at a time, a second apart
 * (a slow answer never lets an older frame overwrite a newer one), then one last draw once the result is in (a
 * short run can end before the first frame), then `finish` (close the bar), whether the workflow succeeded or not.
 * Without `draw` (progress off) it only waits.
 */
export async function followWorkflow<T>(
  result: Promise<T>,
  progress: { draw: () => Promise<void>; finish: () => void; intervalMs?: number } | undefined,
): Promise<T> {
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
