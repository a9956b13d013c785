"""faiss side of `npm run bench:index`: IndexFlatL2 and IndexHNSWFlat on the same vectors, queries and exact
ground truth (computed by tttnn's exactSearch), timed the way bench/index.ts times its own kinds. Prints JSON.

One index per process (KIND: flat or hnsw), so that its RSS growth is its own: memory one index freed would be
reused by the next and hide it.

usage: index_faiss.py BASE_F32 QUERIES_F32 GT_I32 DIMS K M EF_ADD EF_SEARCH_LIST THREADS SINGLE_LIMIT OUT_DIR KIND"""

import json
import os
import sys
import time

import faiss
import numpy as np


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def recall(found, gt):
    hits = 0
    total = 0
    for row_found, row_gt in zip(found, gt):
        valid = [r for r in row_gt if r >= 0]
        hits += len(set(valid) & set(row_found.tolist()))
        total += len(valid)
    return hits / total


def measure_search(index, xq, gt, k, single_limit):
    latencies = []
    for i in range(min(single_limit, len(xq))):
        t = time.perf_counter()
        index.search(xq[i : i + 1], k)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    distances, rows = index.search(xq, k)
    batch_s = time.perf_counter() - t
    return {
        "single_p50_ms": percentile(latencies, 50) * 1e3,
        "single_p99_ms": percentile(latencies, 99) * 1e3,
        "single_count": len(latencies),
        "batch_qps": len(xq) / batch_s,
        "batch_size": len(xq),
        "recall": recall(rows[: len(gt)], gt),
        "distances": distances[: len(gt)],
    }


def open_times(path):
    t = time.perf_counter()
    loaded = faiss.read_index(path)
    load_s = time.perf_counter() - t
    del loaded
    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
    try:
        t = time.perf_counter()
        viewed = faiss.read_index(path, flag)
        view_s = time.perf_counter() - t
        del viewed
    except RuntimeError as err:
        view_s = None
        print(f"mmap read of {os.path.basename(path)} failed: {str(err).splitlines()[0]}", file=sys.stderr)
    return load_s, view_s


def main():
    base, queries, gt_file, dims, k, m, ef_add, ef_search, threads, single_limit, out_dir, kind = sys.argv[1:]
    dims, k, m, ef_add, threads, single_limit = map(int, (dims, k, m, ef_add, threads, single_limit))
    ef_search = [int(e) for e in ef_search.split(",")]
    faiss.omp_set_num_threads(threads)
    xb = np.fromfile(base, dtype="<f4").reshape(-1, dims)
    xq = np.fromfile(queries, dtype="<f4").reshape(-1, dims)
    gt = np.fromfile(gt_file, dtype="<i4").reshape(-1, k)
    results = []
    for name in ["IndexFlatL2"] if kind == "flat" else ["IndexHNSWFlat"]:
        r0 = rss()
        t = time.perf_counter()
        if name == "IndexFlatL2":
            index = faiss.IndexFlatL2(dims)
        else:
            index = faiss.IndexHNSWFlat(dims, m)
            index.hnsw.efConstruction = ef_add
        index.add(xb)
        build_s = time.perf_counter() - t
        ram = rss() - r0
        path = os.path.join(out_dir, f"{name}.faiss")
        faiss.write_index(index, path)
        load_s, view_s = open_times(path)
        for ef in ef_search if name == "IndexHNSWFlat" else [None]:
            if ef is not None:
                index.hnsw.efSearch = ef
            measured = measure_search(index, xq, gt, k, single_limit if ef is not None else min(single_limit, 20))
            distances = measured.pop("distances")
            results.append(
                {
                    "name": name,
                    "ef_search": ef,
                    "build_s": build_s,
                    "ram_bytes": ram,
                    "file_bytes": os.path.getsize(path),
                    "load_s": load_s,
                    "view_s": view_s,
                    # Squared L2 (faiss's IndexFlatL2 convention): the first query's k distances, for a units check.
                    "first_distances": [float(d) for d in distances[0]],
                    **measured,
                }
            )
        del index
        os.remove(path)
    print(json.dumps({"faiss": faiss.__version__, "threads": threads, "results": results}))


if __name__ == "__main__":
    main()
