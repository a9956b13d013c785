/**
 * `fn` over `items` with at most `concurrency` calls in flight, the results yielded in the order of `items`. Only
 * the window of `concurrency` results is held; the next calls start while the caller handles the current result.
 */
export async function* mapOrdered<T, R>(
  items: Iterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const iterator = items[Symbol.iterator]();
  const window: Promise<R>[] = [];
  const fill = () => {
    while (window.length < Math.max(1, concurrency)) {
      const next = iterator.next();
      if (next.done) return;
      const result = fn(next.value);
      // Awaited in turn below; this only keeps a failure that comes early from being reported as unhandled.
      result.catch(() => undefined);
      window.push(result);
    }
  };
  fill();
  while (window.length > 0) {
    const result = await window.shift()!;
    fill();
    yield result;
  }
}
