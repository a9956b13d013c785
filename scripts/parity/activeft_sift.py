"""SIFT as activeft 0.1.1 computes it, on fixed embeddings: the reference of core/selection/sift.ts.

Writes test/fixtures/sift/activeft-0.1.1.json for test/unit/core/selection/sift.test.ts; with --time, times the
reference for bench/sift.ts (prints JSON).

What the reference does (activeft 0.1.1, the exact path `Retriever(fast=False)`):
- sift.py `Retriever.batch_search`: casts to float32, preselects K vectors with the faiss index
  (`search_and_reconstruct`); with `also_query_opposite` (default) it also searches −q and keeps the K largest of
  both lists' inner products; then, per query, VTL over those K vectors, target = the query. No normalisation.
- bace.py / vtl.py: the kernel is the Gram matrix of [pool; query]; a pick is the argmax over the pool of
  −(Σ_** − Σ_*j² / (Σ_jj + λ)) (noise_std = √λ), then gaussian.py `condition_on` subtracts
  Σ_:p Σ_p: / (Σ_pp + λ) from the whole matrix. Picked points stay candidates (repeats allowed). The value returned
  per pick is −σ² after it.
- acquisition_functions/__init__.py `SequentialAcquisitionFunction.select`: the pool goes through a DataLoader with
  shuffle=True in mini-batches of 1,000, so on exact ties (duplicate vectors) the pick depends on the shuffle, and
  with K > 1,000 selection is hierarchical, not plain greedy. K ≤ 1,000 here.
- Adaptive SIFT is not in 0.1.1: activeft commit 908e363 ("Adaptive SIFT", #93, after 0.1.1) adds `alpha` to the
  Retriever, which drops, after all N picks, every pick t (counted from 1) with √(−value) > 1 / (α t). `adaptive`
  below applies those lines to 0.1.1's picks.

The fixture: seeded clusters of L2-normalised 384-d vectors (plus negated members and exact duplicates), stored as
float32 (base64, little-endian, row-major). Each reference run gets them renormalised in float64 (so both sides see
the same unit vectors: the reference normalises nothing) and the pool explicitly, so faiss cannot confound parity;
`retriever` runs the whole Retriever (faiss, float32) for pool construction and an end-to-end check.

Run (a venv outside the repo; activeft 0.1.1 needs torch; faiss-cpu is imported by activeft.sift):
  python3 -m venv ~/.cache/tttnn/activeft-venv
  ~/.cache/tttnn/activeft-venv/bin/pip install activeft==0.1.1 faiss-cpu==1.15.1 torch==2.15.0
  ~/.cache/tttnn/activeft-venv/bin/python scripts/parity/activeft_sift.py
(torch's default PyPI wheel is ~3 GB with its CUDA wheels; the lm-eval venv's torch can be shared instead: install
activeft with --no-deps and write a .pth file naming ~/.cache/tttnn/lm-eval-venv/lib/python3.11/site-packages into
the new venv's site-packages. Checked with torch 2.15.0, faiss-cpu 1.15.1, numpy 2.4.6; the fixture records what ran.)

usage: activeft_sift.py [--out FILE]
       activeft_sift.py --time POOL_F32 QUERIES_F32 DIMS N LAMBDA REPS
"""

import argparse
import base64
import json
import os
import sys
import time
from importlib.metadata import version

import faiss
import numpy as np
import torch
from activeft import ActiveDataLoader
from activeft.acquisition_functions.vtl import VTL
from activeft.sift import Dataset, Retriever

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIMS = 384
SEED = 21
CPU = torch.device("cpu")


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_data():
    """300 candidates: 10 clusters of 27 (centre plus noise of varied size), 10 negated members, 20 exact copies of
    earlier candidates, shuffled; and 6 queries of different kinds."""
    rng = np.random.default_rng(SEED)
    centers = unit(rng.standard_normal((10, DIMS)))
    spread = rng.uniform(0.3, 1.5, size=(270, 1))  # per-vector noise norm relative to its centre's
    members = unit(np.repeat(centers, 27, axis=0) + spread * unit(rng.standard_normal((270, DIMS))))
    negated = -members[rng.choice(270, 10, replace=False)]
    originals = np.concatenate([members, negated])
    copies = originals[rng.choice(280, 20, replace=False)]
    candidates = np.concatenate([originals, copies])[rng.permutation(300)].astype(np.float32)

    def noisy(v, s):
        return unit(v + s * unit(rng.standard_normal(DIMS)))

    queries = np.stack(
        [
            noisy(centers[0], 0.5),  # inside a cluster
            noisy(centers[1] + centers[2], 0.5),  # between two clusters
            noisy(copies[0], 0.1),  # next to a vector that has a copy
            noisy(centers[3] + centers[4] + centers[5], 0.8),  # among three clusters
            unit(rng.standard_normal(DIMS)),  # near nothing
            noisy(-centers[6], 0.5),  # opposite a cluster
        ]
    ).astype(np.float32)
    return candidates, queries


def same_as(candidates):
    """For each candidate, the lowest index holding the same float32 vector or its negation: SIFT cannot tell them
    apart (only squared covariances count), so they tie, and which of them activeft picks is down to rounding and
    its DataLoader's shuffle."""
    first = {}
    return [first.setdefault(min(row.tobytes(), (-row).tobytes()), j) for j, row in enumerate(candidates)]


def exact_sift(pool, query, lam, n, dtype=torch.float64, num_workers=1):
    """What Retriever.batch_search's `engine` does for one query, on an explicit pool (float64 by default: torch's
    default dtype too, for the identity matrices gaussian.py makes)."""
    torch.set_default_dtype(dtype)
    vtl = VTL(
        target=torch.Tensor(),
        num_workers=num_workers,
        subsample=False,
        force_nonsequential=False,
        noise_std=np.sqrt(lam),
    )
    vtl.set_target(torch.tensor(query, dtype=dtype).reshape(1, -1))
    indices, values = ActiveDataLoader(
        dataset=Dataset(torch.tensor(pool, dtype=dtype)),
        batch_size=n,
        acquisition_function=vtl,
        device=CPU,
    ).next()
    torch.set_default_dtype(torch.float32)
    return indices.tolist(), (-values.double()).tolist()


def adaptive_keep(variances, alpha):
    """activeft 908e363's filter: drop pick t (from 1) when √(−value) > 1 / (α t)."""
    sigma = np.sqrt(np.array(variances))
    t = np.arange(len(variances)) + 1
    return (~(sigma > 1 / (alpha * t))).tolist()


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def write_fixture(out):
    torch.manual_seed(SEED)  # the DataLoader's shuffle: only exact ties depend on it
    candidates, queries = make_data()
    # Both sides see the same unit vectors: the float32 values, normalised in float64.
    pool64 = unit(candidates.astype(np.float64))
    queries64 = unit(queries.astype(np.float64))

    cases = []
    for qi in range(len(queries)):
        for lam in (0.01, 0.1, 1.0):
            picks, variances = exact_sift(pool64, queries64[qi], lam, 20)
            cases.append({"query": qi, "lambda": lam, "n": 20, "picks": picks, "variances": variances})

    adaptive = []
    for qi in (0, 1, 3, 4):
        for lam in (0.01, 0.1):
            picks, variances = exact_sift(pool64, queries64[qi], lam, 60)
            for alpha in (0.15, 0.5):
                keep = adaptive_keep(variances, alpha)
                kept = sum(keep)
                adaptive.append(
                    {
                        "query": qi,
                        "lambda": lam,
                        "n": 60,
                        "alpha": alpha,
                        "keptIsPrefix": all(keep[:kept]),
                        "picks": [p for p, k in zip(picks, keep) if k],
                        "variances": [v for v, k in zip(variances, keep) if k],
                    }
                )

    # The whole Retriever, as shipped: faiss IndexFlatIP over the float32 candidates, float32 VTL.
    index = faiss.IndexFlatIP(DIMS)
    index.add(candidates)
    retriever = []
    for qi in (0, 2, 5):
        for opposite in (True, False):
            only = Retriever(index, llambda=0.01, also_query_opposite=opposite, only_faiss=True, device=CPU)
            _, pool, _, _ = only.search(queries[qi : qi + 1], N=100, K=100)
            full = Retriever(index, llambda=0.01, fast=False, also_query_opposite=opposite, device=CPU)
            values, picks, _, _ = full.search(queries[qi : qi + 1], N=20, K=100)
            retriever.append(
                {
                    "query": qi,
                    "k": 100,
                    "alsoOpposite": opposite,
                    "lambda": 0.01,
                    "n": 20,
                    "pool": pool.tolist(),
                    "picks": picks.tolist(),
                    "variances": (-values.astype(np.float64)).tolist(),
                }
            )

    fixture = {
        "reference": {
            "activeft": version("activeft"),
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "adaptive": "activeft commit 908e363 (Adaptive SIFT, #93) applied to 0.1.1's picks",
            "seed": SEED,
        },
        "dimensions": DIMS,
        "candidates": b64(candidates),
        "candidateCount": len(candidates),
        "sameAs": same_as(candidates),
        "queries": b64(queries),
        "queryCount": len(queries),
        "cases": cases,
        "adaptive": adaptive,
        "retriever": retriever,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print(f"wrote {out} ({os.path.getsize(out)} bytes)", file=sys.stderr)


def time_reference(pool_file, queries_file, dims, n, lam, reps):
    """Seconds per query of the reference's selection on one pool: the Retriever as shipped (faiss over the pool,
    K = all of it, its own `RetrievalTime.sift`, which includes starting the DataLoader's worker process), and
    the VTL computation alone (num_workers=0). Float32 like the Retriever, one thread."""
    torch.set_num_threads(1)
    pool = np.fromfile(pool_file, dtype="<f4").reshape(-1, dims)
    queries = np.fromfile(queries_file, dtype="<f4").reshape(-1, dims)
    index = faiss.IndexFlatIP(dims)
    index.add(pool)
    retriever = Retriever(index, llambda=lam, fast=False, also_query_opposite=False, device=CPU)
    retriever.search(queries[:1], N=n, K=len(pool))  # warm-up
    sift_s = []
    for q in queries[:reps]:
        sift_s.append(retriever.search(q[None], N=n, K=len(pool))[3].sift)
    exact_sift(pool, queries[0], lam, n, dtype=torch.float32, num_workers=0)
    engine_s = []
    for q in queries[:reps]:
        t0 = time.perf_counter()
        exact_sift(pool, q, lam, n, dtype=torch.float32, num_workers=0)
        engine_s.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "activeft": version("activeft"),
                "torch": torch.__version__,
                "k": len(pool),
                "n": n,
                "retrieverSiftS": float(np.median(sift_s)),
                "vtlS": float(np.median(engine_s)),
                "reps": len(sift_s),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(REPO, "test", "fixtures", "sift", "activeft-0.1.1.json"))
    parser.add_argument("--time", nargs=6, metavar=("POOL_F32", "QUERIES_F32", "DIMS", "N", "LAMBDA", "REPS"))
    args = parser.parse_args()
    if args.time:
        pool, queries, dims, n, lam, reps = args.time
        time_reference(pool, queries, int(dims), int(n), float(lam), int(reps))
    else:
        write_fixture(args.out)


if __name__ == "__main__":
    main()
