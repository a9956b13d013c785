"""PyTorch's practical fp32 peak on this machine for the benches: GFLOP/s of an n x n x n torch.mm on all cores,
one warm-up call, then the mean of `reps`. Prints JSON."""

import json
import os
import sys
import time

import torch


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    seconds = (time.perf_counter() - t0) / reps
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "gflops": 2 * n**3 / seconds / 1e9}))


if __name__ == "__main__":
    main()
