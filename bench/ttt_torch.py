"""PyTorch side of `npm run bench:ttt`: the same model, the same sequence length, forward tokens/s and one TTT step
(causal-LM loss, backward, clip_grad_norm_ 1.0, AdamW lr 2e-5 wd 0.01). Prints JSON.

usage: ttt_torch.py MODEL T REPS, where MODEL is `gpt2` (a GPT-2 124M-shaped model, random init) or the path of
a Llama .gguf file (SmolLM2-135M), which transformers dequantizes to float32 as the tfjs engine does."""

import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel


def load(spec):
    if spec == "gpt2":
        config = GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12, vocab_size=50257)
        return GPT2LMHeadModel(config)
    folder, name = os.path.split(spec)
    return AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)


def main():
    spec, T, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    model = load(spec)
    ids = torch.randint(0, model.config.vocab_size, (1, T))

    model.eval()
    with torch.no_grad():
        model(ids)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(ids).logits.sum().item()
        forward_s = (time.perf_counter() - t0) / reps

    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, eps=1e-8, weight_decay=0.01)

    def step():
        model.train()
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        return loss.item()

    step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    step_s = (time.perf_counter() - t0) / reps
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "forward_s": forward_s,
                "step_s": step_s,
                "attn": model.config._attn_implementation,
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux reports KiB
            }
        )
    )


if __name__ == "__main__":
    main()
