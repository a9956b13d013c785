"""PyTorch's practical fp32 peak on this machine for the benches: GFLOP/s of an n x n x n torch.mm on all cores,
over at least a second of repetitions after a warm-up (as bench/flops.ts does for tfjs). Prints JSON."""

import json
import os
import sys
import time

import torch


def main():
    n = int(sys.argv[1])
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1 or reps < 3:
        torch.mm(a, b)
        reps += 1
    seconds = (time.perf_counter() - t0) / reps
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "gflops": 2 * n**3 / seconds / 1e9}))


if __name__ == "__main__":
    main()
