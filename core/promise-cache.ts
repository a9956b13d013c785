/**
 * A per-process cache of values that never change once written (manifests, plans, neighbor lists, loaded models):
 * `load` runs once per key and every caller, concurrent ones included, shares its promise. A failed load is
 * forgotten, so that the next call tries again instead of repeating the failure for the life of the process.
 */
export function promiseCache<T>(): (key: string, load: () => Promise<T>) => Promise<T> {
  const cache = new Map<string, Promise<T>>();
  return (key, load) => {
    let value = cache.get(key);
    if (!value) {
      value = load();
      cache.set(key, value);
      value.catch(() => cache.delete(key));
    }
    return value;
  };
}
