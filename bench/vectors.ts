import { seededRandom } from '../core/seeded-random';

/**
 * Seeded clustered vectors, the synthetic data of bench:index and the index tests: `clusters` centers drawn
 * uniformly on the unit sphere; each vector is its center (the vector's index modulo `clusters`) plus isotropic
 * Gaussian noise of `sigma` per component, then, with `normalize`, L2-normalised as MiniLM's outputs are.
 * Vector i depends only on (seed, i, shape), so a prefix of a larger set is the smaller set.
 */
export interface ClusteredSpec {
  n: number;
  dimensions: number;
  clusters: number;
  sigma: number;
  seed: number;
  normalize: boolean;
}

export function clusteredVectors(spec: ClusteredSpec): Float32Array {
  const { n, dimensions: d, clusters, sigma, seed, normalize } = spec;
  const centers = new Float64Array(clusters * d);
  const gauss = gaussian(seededRandom(seed));
  for (let c = 0; c < clusters; c++) {
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const g = gauss();
      centers[c * d + j] = g;
      norm += g * g;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < d; j++) centers[c * d + j] = (centers[c * d + j] as number) / norm;
  }
  const out = new Float32Array(n * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const noise = gaussian(seededRandom(seed * 1_000_003 + i + 1));
    const c = i % clusters;
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = (centers[c * d + j] as number) + sigma * noise();
      row[j] = v;
      norm += v * v;
    }
    const scale = normalize && norm > 0 ? 1 / Math.sqrt(norm) : 1;
    for (let j = 0; j < d; j++) out[i * d + j] = (row[j] as number) * scale;
  }
  return out;
}

/** Standard normal draws (Box–Muller) from a uniform generator. */
function gaussian(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = 1 - uniform(); // (0, 1]: log is finite
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}
