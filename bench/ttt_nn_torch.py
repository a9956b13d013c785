"""PyTorch side of `npm run bench:ttt-nn`: the TTT-NN loop of every document in a job file that the tfjs side
wrote, on the same model file, the same token ids and the same evaluation windows, so that both sides do the same
work. Per document: reset to the pretrained weights and a fresh AdamW (lr from the job, weight decay 0.01,
clip_grad_norm_ 1.0), bits/byte before, one step per chunk of max_length tokens of each neighbor (a last chunk of
one token is skipped, as tttnn does), bits/byte after each neighbor. Prints JSON.

usage: ttt_nn_torch.py MODEL.gguf JOB.json"""

import json
import math
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main():
    spec, job_file = sys.argv[1], sys.argv[2]
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    with open(job_file) as f:
        job = json.load(f)
    torch.set_float32_matmul_precision(job["matmul_precision"])
    t_load = time.perf_counter()
    folder, name = os.path.split(spec)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    load_s = time.perf_counter() - t_load
    rss_loaded = peak_rss_bytes()
    params = [p for p in model.parameters() if p.requires_grad]
    pretrained = [p.detach().clone() for p in params]
    max_length, lr, eval_batch = job["max_length"], job["lr"], job["eval_batch_size"]

    def bits_per_byte(doc):
        model.eval()
        nll = 0.0
        with torch.no_grad():
            windows = doc["windows"]
            for start in range(0, len(windows), eval_batch):
                batch = windows[start : start + eval_batch]
                T = max(len(w["input"]) for w in batch)
                ids = torch.tensor([w["input"] + [0] * (T - len(w["input"])) for w in batch])
                logp = torch.log_softmax(model(ids).logits, dim=-1)
                for b, w in enumerate(batch):
                    first = len(w["input"]) - len(w["targets"])
                    rows = torch.arange(first, first + len(w["targets"]))
                    nll -= logp[b, rows, torch.tensor(w["targets"])].double().sum().item()
        return nll / doc["bytes"] / math.log(2)

    results = []
    for doc in job["docs"]:
        t0 = time.perf_counter()
        with torch.no_grad():
            for p, p0 in zip(params, pretrained):
                p.copy_(p0)
        opt = torch.optim.AdamW(params, lr=lr, eps=1e-8, weight_decay=0.01)
        seconds = {"training": 0.0, "evaluation": 0.0}

        def timed(part, work):
            start = time.perf_counter()
            value = work()
            seconds[part] += time.perf_counter() - start
            return value

        def step(chunk):
            model.train()
            ids = torch.tensor([chunk])
            loss = model(ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()

        def train(neighbor):
            steps = 0
            for i in range(0, len(neighbor), max_length):
                chunk = neighbor[i : i + max_length]
                if len(chunk) >= 2:
                    step(chunk)
                    steps += 1
            return steps

        curve = [timed("evaluation", lambda: bits_per_byte(doc))]
        steps = 0
        for neighbor in doc["neighbors"]:
            steps += timed("training", lambda: train(neighbor))
            curve.append(timed("evaluation", lambda: bits_per_byte(doc)))
        results.append({"id": doc["id"], "seconds": time.perf_counter() - t0, "split": seconds, "steps": steps, "bpb": curve})
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "matmul_precision": torch.get_float32_matmul_precision(),
                "attn": model.config._attn_implementation,
                "load_s": load_s,
                "rss_loaded": rss_loaded,
                "peak_rss": peak_rss_bytes(),
                "docs": results,
            }
        )
    )


if __name__ == "__main__":
    main()
