import { promiseCache } from '../../../core/promise-cache';

describe('promiseCache', () => {
  it('loads a key once for every caller, concurrent ones included', async () => {
    const cached = promiseCache<number>();
    let loads = 0;
    const load = async () => {
      loads += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return 42;
    };
    const values = await Promise.all([cached('a', load), cached('a', load), cached('b', load)]);
    expect(values).toEqual([42, 42, 42]);
    expect(await cached('a', load)).toBe(42);
    expect(loads).toBe(2);
  });

  it('forgets a failed load, so that the next call tries again', async () => {
    const cached = promiseCache<string>();
    await expect(cached('k', () => Promise.reject(new Error('store down')))).rejects.toThrow('store down');
    expect(await cached('k', () => Promise.resolve('read'))).toBe('read');
  });
});
