/**
 * SIFT: training data for one test document that most reduces the model's uncertainty about it (Hübotter et al.,
 * "Efficiently Learning at Test-Time: Active Fine-Tuning of LLMs", ICLR 2025, arXiv 2410.08020), as activeft
 * 0.1.1's exact path does it (`Retriever(fast=False)`: acquisition_functions/vtl.py, bace.py, gaussian.py).
 *
 * The model of uncertainty: f is a Gaussian process whose kernel is the inner product of L2-normalised embeddings,
 * k(x, x') = ⟨x̂, x̂'⟩, and each training document is an observation of f with noise of variance λ. Having trained on
 * X = (x_1, …, x_t), the variance left at the test document x* is
 *
 *   σ_t²(x*) = k(x*, x*) − k_X(x*)ᵀ (K_X + λI)⁻¹ k_X(x*).
 *
 * VTL picks greedily: x_{t+1} is the candidate that makes σ_{t+1}²(x*) smallest. Conditioning on one pick p is a
 * rank-one update of the kernel,
 *
 *   k_{t+1}(x, x') = k_t(x, x') − u(x) u(x'),   u(x) = k_t(x, x_p) / √(k_t(x_p, x_p) + λ),
 *
 * so picking candidate j leaves σ_t²(x*) − k_t(x*, x_j)² / (k_t(x_j, x_j) + λ). We keep only what the next pick
 * needs, k_t(x_j, x_j) and k_t(x*, x_j) for every candidate, and the u of past picks: a pick costs one column
 * ⟨x̂_j, x̂_p⟩ − Σ_s u_s(x_j) u_s(x_p), O(K (d + t)), where activeft conditions the whole (K+1)² matrix. All of it
 * in float64.
 *
 * Repeats: a picked candidate stays a candidate (activeft's too). With λ > 0 its own variance stays positive,
 * k_1(x_p, x_p) = vλ / (v + λ), so a second copy of it still tells something, less than the first; a repeat in
 * the picks means "train on it again". As λ grows, conditioning fades and SIFT keeps repeating the nearest
 * neighbour: large λ is not nearest-neighbour order. Exact duplicates (the same text twice in the corpus) are the
 * same vector, so they tie on every score, and ties go to the lower index: the copy after the first is never
 * picked (a vector and its negation tie too: only squared covariances count). Copies whose embeddings differ by
 * rounding would not tie, so callers that know the texts' hashes pass them as `keys`, and only the first candidate
 * of each key is considered. activeft breaks ties by rounding and its DataLoader's shuffle, so between copies it
 * picks either.
 *
 * Adaptive SIFT (`alpha`; activeft commit 908e363, "Adaptive SIFT", after 0.1.1): with σ_t the posterior standard
 * deviation (not the variance) after t picks, t counted from 1, pick t is dropped when σ_t > 1 / (α t). Since
 * σ_t ≤ 1, the first ⌊1/α⌋ picks always stay; larger α stops sooner. activeft makes all N picks, then drops every
 * one that fails the test; we stop at the first that fails (it is not kept), which is the same whenever t σ_t,
 * once above 1/α, stays above it, as it does on the parity fixture (σ_t falls ever more slowly as picks add up).
 */

/** activeft's default λ (`Retriever(llambda=0.01)` in 0.1.1, renamed `lambda_` since). */
export const DEFAULT_SIFT_LAMBDA = 0.01;

/** The pool size K to preselect by default (the issue's; activeft's `Retriever.search` has no default K). */
export const DEFAULT_SIFT_POOL = 200;

export interface SiftOptions {
  /** Picks to make at most (activeft's N). */
  n: number;
  /** Noise variance λ of one observation, > 0 (activeft's `lambda_`; its noise_std is √λ). */
  lambda?: number;
  /** Adaptive SIFT: stop at the first pick t whose posterior standard deviation exceeds 1 / (α t). */
  alpha?: number;
  /** A key per candidate (e.g. a hash of its text): only the first candidate of each key may be picked. */
  keys?: readonly string[];
}

export interface SiftSelection {
  /** Indices into the candidates, in the order picked; an index can come more than once. */
  picks: number[];
  /** σ_t²(x*) after each pick: non-increasing. */
  variances: number[];
  /** σ_0²(x*) = k(x*, x*): 1, or 0 for an all-zero query. */
  priorVariance: number;
  /** Adaptive SIFT stopped before n picks. */
  stoppedEarly: boolean;
}

export function selectSift(
  query: Float32Array,
  candidates: readonly Float32Array[],
  options: SiftOptions,
): SiftSelection {
  const { n, lambda = DEFAULT_SIFT_LAMBDA, alpha, keys } = options;
  if (!Number.isInteger(n) || n < 0) throw new Error(`SIFT: n = ${n}, expected a count`);
  if (!(lambda > 0)) throw new Error(`SIFT: lambda = ${lambda}, expected > 0 (with 0 a repeat divides by zero)`);
  if (alpha !== undefined && !(alpha > 0)) throw new Error(`SIFT: alpha = ${alpha}, expected > 0`);
  if (keys !== undefined && keys.length !== candidates.length)
    throw new Error(`SIFT: ${keys.length} keys for ${candidates.length} candidates`);
  for (const [j, c] of candidates.entries())
    if (c.length !== query.length)
      throw new Error(`SIFT: candidate ${j} has ${c.length} dimensions, the query ${query.length}`);

  // The candidates that may be picked (first of each key), as indices into `candidates`.
  const pickable = keys === undefined ? candidates.map((_, j) => j) : firstOfEachKey(keys);

  const q = normalized(query);
  const x = pickable.map((j) => normalized(candidates[j] as Float32Array));
  const K = x.length;

  // The conditioned kernel where the next pick needs it: k_t(x_j, x_j), k_t(x*, x_j), k_t(x*, x*).
  const candidateVariance = Float64Array.from(x, (xj) => dot(xj, xj));
  const queryCovariance = Float64Array.from(x, (xj) => dot(xj, q));
  const priorVariance = dot(q, q);
  let queryVariance = priorVariance;
  // u_s over the candidates, one row per pick so far.
  const updates: Float64Array[] = [];

  const picks: number[] = [];
  const variances: number[] = [];
  let stoppedEarly = false;
  for (let t = 1; t <= n && K > 0; t++) {
    // argmin_j σ_t² − k_t(x*, x_j)² / (k_t(x_j, x_j) + λ): the largest reduction; ties go to the lower index.
    let p = 0;
    let reduction = -Infinity;
    for (let j = 0; j < K; j++) {
      const c = queryCovariance[j] as number;
      const r = (c * c) / ((candidateVariance[j] as number) + lambda);
      if (r > reduction) [p, reduction] = [j, r];
    }
    const variance = queryVariance - reduction;
    if (alpha !== undefined && Math.sqrt(Math.max(variance, 0)) > 1 / (alpha * t)) {
      stoppedEarly = true;
      break;
    }
    picks.push(pickable[p] as number);
    variances.push(variance);

    // Condition on x_p: u(x_j) = k_t(x_j, x_p) / √(k_t(x_p, x_p) + λ),
    // with k_t(x_j, x_p) = ⟨x̂_j, x̂_p⟩ − Σ_s u_s(x_j) u_s(x_p).
    const scale = 1 / Math.sqrt((candidateVariance[p] as number) + lambda);
    const xp = x[p] as Float64Array;
    const u = new Float64Array(K);
    for (let j = 0; j < K; j++) {
      let k = dot(x[j] as Float64Array, xp);
      for (const us of updates) k -= (us[j] as number) * (us[p] as number);
      u[j] = k * scale;
    }
    const uQuery = (queryCovariance[p] as number) * scale;
    for (let j = 0; j < K; j++) {
      const uj = u[j] as number;
      candidateVariance[j] = (candidateVariance[j] as number) - uj * uj;
      queryCovariance[j] = (queryCovariance[j] as number) - uQuery * uj;
    }
    queryVariance = variance;
    updates.push(u);
  }
  return { picks, variances, priorVariance, stoppedEarly };
}

/**
 * The pool SIFT picks from: the `k` vectors nearest the query by inner product of normalised vectors, as activeft's
 * Retriever preselects them with a faiss IndexFlatIP (on vectors as given: it normalises nothing, we do). With
 * `alsoOpposite` (the Retriever's default, `also_query_opposite=True`) it ranks by |⟨x̂, q̂⟩|: a vector pointing
 * away from the query is as informative about it, since only squared covariances enter σ². The Retriever merges
 * a search for q and one for −q and keeps the k largest inner products of both, which is this ranking (checked
 * for 100 to 250 vectors, k = 100). Best first; ties go to the lower index (faiss's order among ties is its own).
 */
export function siftCandidatePool(
  query: Float32Array,
  vectors: readonly Float32Array[],
  k: number,
  { alsoOpposite = true }: { alsoOpposite?: boolean } = {},
): number[] {
  const q = normalized(query);
  const score = vectors.map((v) => {
    const s = dot(normalized(v), q);
    return alsoOpposite ? Math.abs(s) : s;
  });
  return vectors
    .map((_, j) => j)
    .sort((a, b) => (score[b] as number) - (score[a] as number) || a - b)
    .slice(0, k);
}

function firstOfEachKey(keys: readonly string[]): number[] {
  const seen = new Set<string>();
  const first: number[] = [];
  for (const [j, key] of keys.entries()) {
    if (seen.has(key)) continue;
    seen.add(key);
    first.push(j);
  }
  return first;
}

/** v / ||v|| in float64; an all-zero vector stays zero (it then covaries with nothing). */
function normalized(v: Float32Array): Float64Array {
  const out = Float64Array.from(v);
  const norm = Math.sqrt(dot(out, out));
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / norm;
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}
