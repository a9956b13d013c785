import { randomPositions, type SelectedDocument, selectPerDomain } from '../../../../core/eval/run-layout';

const corpus = (domains: Record<string, number>): SelectedDocument[] =>
  Object.entries(domains).flatMap(([domain, n]) =>
    Array.from({ length: n }, (_, i) => ({
      docId: `${domain}-${i}`,
      domain,
      corpusShard: 'shard-0.parquet',
      shardRow: i,
      bytes: 100 + i,
    })),
  );

describe('test document selection', () => {
  it('draws perDomain documents per domain, the same for the same seed, another set for another seed', () => {
    const docs = corpus({ b: 50, a: 40 });
    const { selected } = selectPerDomain(docs, 5, 7, Infinity);
    expect(selected.map((d) => d.domain)).toEqual(['a', 'a', 'a', 'a', 'a', 'b', 'b', 'b', 'b', 'b']);
    expect(new Set(selected.map((d) => d.docId)).size).toBe(10);
    expect(selectPerDomain([...docs], 5, 7, Infinity).selected).toEqual(selected);
    expect(selectPerDomain(docs, 5, 8, Infinity).selected).not.toEqual(selected);
  });

  it("a domain's draw does not depend on the other domains", () => {
    const alone = selectPerDomain(corpus({ a: 40 }), 5, 7, Infinity).selected;
    const withOthers = selectPerDomain(corpus({ a: 40, c: 9, z: 3 }), 5, 7, Infinity).selected;
    expect(withOthers.filter((d) => d.domain === 'a')).toEqual(alone);
    expect(withOthers.filter((d) => d.domain === 'z')).toHaveLength(3); // fewer than asked: all of them
  });

  it('leaves out documents over the size limit and counts them', () => {
    const { selected, overSizeLimit } = selectPerDomain(corpus({ a: 10 }), 10, 1, 104);
    expect(overSizeLimit).toBe(5);
    expect(selected.map((d) => d.bytes).sort()).toEqual([100, 101, 102, 103, 104]);
  });
});

describe('random-neighbor draws', () => {
  it('are uniform positions in range, fixed by (seed, document), different across documents', () => {
    const a = randomPositions(1000, 50, 3, 0);
    expect(a).toHaveLength(50);
    expect(a.every((p) => Number.isInteger(p) && p >= 0 && p < 1000)).toBe(true);
    expect(randomPositions(1000, 50, 3, 0)).toEqual(a);
    expect(randomPositions(1000, 50, 3, 1)).not.toEqual(a);
    expect(randomPositions(0, 50, 3, 0)).toEqual([]);
    const many = randomPositions(10, 20_000, 5, 2);
    const counts = Array.from({ length: 10 }, (_, v) => many.filter((p) => p === v).length);
    expect(Math.min(...counts)).toBeGreaterThan(1800); // expected 2,000 each
  });
});
