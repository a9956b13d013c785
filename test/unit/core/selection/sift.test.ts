import { readFileSync } from 'node:fs';
import path from 'node:path';
import { selectSift, siftCandidatePool } from '../../../../core/selection/sift';

/** Written by scripts/parity/activeft_sift.py: activeft 0.1.1's exact SIFT on seeded 384-d unit vectors. */
interface SiftFixture {
  reference: Record<string, string | number>;
  dimensions: number;
  candidates: string;
  candidateCount: number;
  /** For each candidate, the lowest index holding the same vector or its negation (SIFT cannot tell them apart). */
  sameAs: number[];
  queries: string;
  queryCount: number;
  /** The pool given explicitly (all candidates), float64. */
  cases: { query: number; lambda: number; n: number; picks: number[]; variances: number[] }[];
  /** As `cases`, with activeft 908e363's adaptive filter applied to n picks. */
  adaptive: {
    query: number;
    lambda: number;
    n: number;
    alpha: number;
    keptIsPrefix: boolean;
    picks: number[];
    variances: number[];
  }[];
  /** The whole Retriever: faiss IndexFlatIP preselects k of the candidates, then float32 VTL. */
  retriever: {
    query: number;
    k: number;
    alsoOpposite: boolean;
    lambda: number;
    n: number;
    pool: number[];
    picks: number[];
    variances: number[];
  }[];
}

const fixture = JSON.parse(
  readFileSync(path.join(__dirname, '..', '..', '..', 'fixtures', 'sift', 'activeft-0.1.1.json'), 'utf8'),
) as SiftFixture;
const candidates = rows(fixture.candidates, fixture.dimensions);
const queries = rows(fixture.queries, fixture.dimensions);
const query = (i: number): Float32Array => queries[i] as Float32Array;

/** Base64 little-endian float32, row-major, as rows. */
function rows(base64: string, dimensions: number): Float32Array[] {
  const bytes = Buffer.from(base64, 'base64');
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return Array.from({ length: all.length / dimensions }, (_, i) => all.subarray(i * dimensions, (i + 1) * dimensions));
}

/**
 * Picks with each copy of a vector (or of its negation) named by its first: they tie, and activeft breaks ties by
 * rounding and its DataLoader's shuffle, so it may pick any of them (we pick the first).
 */
const canonical = (picks: number[]): number[] => picks.map((p) => fixture.sameAs[p] as number);

function maxDifference(a: number[], b: number[]): number {
  expect(a).toHaveLength(b.length);
  return Math.max(0, ...a.map((x, i) => Math.abs(x - (b[i] as number))));
}

describe('SIFT against activeft 0.1.1 (exact VTL)', () => {
  it('the fixture exercises what it should', () => {
    expect(fixture.reference.activeft).toBe('0.1.1');
    expect(candidates).toHaveLength(fixture.candidateCount);
    expect(queries).toHaveLength(fixture.queryCount);
    // Copies in the pool, repeats in the picks, and a copy picked by the reference.
    expect(fixture.sameAs.some((d, j) => d !== j)).toBe(true);
    expect(fixture.cases.some((c) => new Set(canonical(c.picks)).size < c.picks.length)).toBe(true);
    expect(fixture.cases.some((c) => c.picks.some((p) => fixture.sameAs[p] !== p))).toBe(true);
    expect(new Set(fixture.cases.map((c) => c.lambda))).toEqual(new Set([0.01, 0.1, 1]));
  });

  it.each(fixture.cases.map((c) => [c.query, c.lambda, c]))(
    'query %i, lambda %f: the same picks, variances within 1e-12',
    (_q, _l, c) => {
      const ours = selectSift(query(c.query), candidates, { n: c.n, lambda: c.lambda });
      expect(canonical(ours.picks)).toEqual(canonical(c.picks));
      // Both in float64, on the same unit vectors: they agree to ~2e-15.
      expect(maxDifference(ours.variances, c.variances)).toBeLessThan(1e-12);
      // Of two copies of a vector we pick the first.
      expect(ours.picks.every((p) => fixture.sameAs[p] === p)).toBe(true);
      expect(ours.stoppedEarly).toBe(false);
    },
  );

  it.each(fixture.adaptive.map((c) => [c.query, c.lambda, c.alpha, c]))(
    'adaptive, query %i, lambda %f, alpha %f: stops where activeft 908e363 cuts',
    (_q, _l, _a, c) => {
      // We stop at the first pick that fails the test; activeft drops every one that does.
      expect(c.keptIsPrefix).toBe(true);
      const ours = selectSift(query(c.query), candidates, { n: c.n, lambda: c.lambda, alpha: c.alpha });
      expect(canonical(ours.picks)).toEqual(canonical(c.picks));
      expect(maxDifference(ours.variances, c.variances)).toBeLessThan(1e-12);
      expect(ours.stoppedEarly).toBe(c.picks.length < c.n);
    },
  );

  it('adaptive SIFT picks fewer the larger alpha, and fewer for a query near nothing', () => {
    const steps = (q: number, alpha: number) => selectSift(query(q), candidates, { n: 60, alpha }).picks.length;
    expect(steps(0, 0.5)).toBeLessThan(steps(0, 0.15));
    expect(steps(4, 0.15)).toBeLessThan(steps(0, 0.15));
    // σ_t ≤ 1, so while t ≤ 1/α nothing is dropped.
    expect(selectSift(query(4), candidates, { n: 10, alpha: 0.1 }).stoppedEarly).toBe(false);
  });

  it.each(fixture.retriever.map((r) => [r.query, r.alsoOpposite, r]))(
    'Retriever, query %i, alsoOpposite %s: the same pool, then the same picks (float32: variances within 1e-5)',
    (_q, _o, r) => {
      const pool = siftCandidatePool(query(r.query), candidates, r.k, { alsoOpposite: r.alsoOpposite });
      expect(canonical(pool)).toEqual(canonical(r.pool));
      const ours = selectSift(
        query(r.query),
        pool.map((j) => candidates[j] as Float32Array),
        { n: r.n, lambda: r.lambda },
      );
      expect(canonical(ours.picks.map((p) => pool[p] as number))).toEqual(canonical(r.picks));
      // activeft's float32 on vectors normalised only to float32 precision: ~6e-7 apart.
      expect(maxDifference(ours.variances, r.variances)).toBeLessThan(1e-5);
    },
  );
});

describe('SIFT properties', () => {
  const distinct = candidates.filter((_, j) => fixture.sameAs[j] === j);

  it('variance never rises, and stays within [0, prior]', () => {
    for (const [i, q] of queries.entries())
      for (const lambda of [1e-4, 0.01, 1]) {
        const { variances, priorVariance } = selectSift(q, candidates, { n: 40, lambda });
        expect(priorVariance).toBeCloseTo(1, 12);
        expect(variances[0]).toBeLessThanOrEqual(priorVariance);
        // Each pick subtracts c² / (v + λ) ≥ 0, so not even rounding can raise it.
        const rises = variances.filter((v, t) => v < 0 || (t > 0 && v > variances[t - 1]!));
        expect([i, lambda, rises]).toEqual([i, lambda, []]);
      }
  });

  it('a second copy of a picked document tells less than the first did, so an independent one comes first', () => {
    const d = fixture.dimensions;
    const q = unit(d, [0]);
    const a = unit(d, [0, 1]); // cos 0.71 with the query
    const b = unit(d, [0, 2, 3]); // cos 0.58, independent of a's own direction
    const once = selectSift(q, [a], { n: 3, lambda: 0.01 });
    expect(once.picks).toEqual([0, 0, 0]);
    const drops = [1, ...once.variances].slice(0, 3).map((v, t) => v - once.variances[t]!);
    expect(drops[1]).toBeLessThan(drops[0]!);
    expect(drops[2]).toBeLessThan(drops[1]!);
    // b, less similar than a, is worth more than a again.
    expect(selectSift(q, [a, b], { n: 2, lambda: 0.01 }).picks).toEqual([0, 1]);
    // An exact copy ties with its original: the first is picked, the copy never.
    expect(selectSift(q, [a, Float32Array.from(a), b], { n: 4, lambda: 0.01 }).picks).not.toContain(1);
    // Keys collapse copies even when their vectors differ by rounding.
    const jittered = Float32Array.from(a, (x, i) => (i === 5 ? 1e-6 : x));
    const keyed = selectSift(q, [jittered, a, b], { n: 4, lambda: 0.01, keys: ['a', 'a', 'b'] });
    expect(keyed.picks).not.toContain(1);
    expect(keyed.picks).toContain(0);
  });

  it('picks the nearest by |cosine| first; with a huge lambda it keeps repeating it (conditioning fades)', () => {
    for (const q of queries) {
      // Every candidate has k(x, x) = 1, so the first pick maximises k(x*, x)² whatever λ.
      const [nearest] = siftCandidatePool(q, distinct, 1, { alsoOpposite: true });
      for (const lambda of [1e-4, 0.01, 1]) expect(selectSift(q, distinct, { n: 1, lambda }).picks).toEqual([nearest]);
      // Picking x changes k(x*, x)² by a factor ~1 − 2/λ: a second copy of the nearest still beats the runner-up.
      expect(selectSift(q, distinct, { n: 5, lambda: 1e9 }).picks).toEqual(Array(5).fill(nearest));
    }
  });

  it('normalises: scaling the query or a candidate changes nothing', () => {
    // Powers of two, so that the scaled float32 vectors normalise to exactly the same unit vectors.
    const scaled = candidates.map((c, j) => Float32Array.from(c, (x) => x * 2 ** (j % 4)));
    const q = Float32Array.from(query(1), (x) => x * 0.25);
    const options = { n: 20, lambda: 0.01, alpha: 0.15 };
    expect(selectSift(q, scaled, options)).toEqual(selectSift(query(1), candidates, options));
  });

  it('a batch of queries gets the same picks in any order (no state carries over)', () => {
    const select = (q: Float32Array) => selectSift(q, candidates, { n: 20, lambda: 0.01, alpha: 0.15 });
    const forward = queries.map(select);
    const backward = [...queries].reverse().map(select).reverse();
    expect(backward).toEqual(forward);
  });

  it('edge cases', () => {
    const q = query(0);
    expect(selectSift(q, [], { n: 5 })).toMatchObject({ picks: [], variances: [], stoppedEarly: false });
    expect(selectSift(q, candidates, { n: 0 }).picks).toEqual([]);
    expect(selectSift(new Float32Array(q.length), candidates, { n: 2 }).variances).toEqual([0, 0]);
    expect(() => selectSift(q, candidates, { n: 2, lambda: 0 })).toThrow(/lambda/);
    expect(() => selectSift(q, candidates, { n: 2, alpha: 0 })).toThrow(/alpha/);
    expect(() => selectSift(q, [new Float32Array(3)], { n: 2 })).toThrow(/dimensions/);
    expect(() => selectSift(q, candidates, { n: 2, keys: ['a'] })).toThrow(/keys/);
  });

  it('the pool: top k by cosine, or by |cosine| with alsoOpposite; ties to the lower index', () => {
    const q = new Float32Array([1, 0]);
    const vectors = [
      [0, 1],
      [-3, 0],
      [2, 2],
      [0.5, 0],
      [1, 1],
    ].map((v) => new Float32Array(v));
    expect(siftCandidatePool(q, vectors, 3, { alsoOpposite: false })).toEqual([3, 2, 4]);
    expect(siftCandidatePool(q, vectors, 3)).toEqual([1, 3, 2]);
  });
});

/** The unit vector with equal weight on the given axes. */
function unit(dimensions: number, axes: number[]): Float32Array {
  const v = new Float32Array(dimensions);
  for (const a of axes) v[a] = 1 / Math.sqrt(axes.length);
  return v;
}
