"""How exact can a float32 TTT update of SmolLM2 be? The noise floor behind the SmolLM2 update-parity test.

The test compares tttnn's weight update after 3 TTT steps (lr 2e-5, 64-token chunks) with an exact reference:
PyTorch in float64 with the weights rounded to float32 after each step (make_fixtures.py). This script measures,
per tensor, the relative L2 error of (after - before) against that same reference for:
  - PyTorch's own float32 training (the framework users would compare us with);
  - the reference itself with its gradients perturbed by relative noise of 1e-5 (tfjs's measured gradient error
    is 2.7e-6 median / 1.1e-5 worst per tensor), showing how Adam turns tiny gradient noise into update noise.

usage: python scripts/parity/float32_noise.py GGUF_FILE   (e.g. ~/.cache/tttnn/smollm2-0.1.2/*.gguf)
Run outside the project (PyTorch + transformers + gguf); prints one summary line per variant.
"""

import os
import sys

import torch
from make_fixtures import DOCUMENT, ttt_steps
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(gguf_path, dtype):
    folder, name = os.path.split(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.to(dtype)


def updates(model, chunks, perturb=0.0, float32_weights=False):
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    if perturb > 0:
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            # Relative noise of `perturb` in L2 per tensor, added to every gradient before clipping and Adam.
            p.register_hook(lambda g, gen=gen: g + perturb * g.norm() * torch.randn(g.shape, generator=gen, dtype=g.dtype) / g.numel() ** 0.5)
    ttt_steps(model, chunks, 2e-5, float32_weights=float32_weights)
    return {k: (v.detach().double() - before[k].double()) for k, v in model.named_parameters()}


def summary(label, got, reference):
    rels = sorted(((got[k] - reference[k]).norm() / reference[k].norm()).item() for k in reference)
    over = sum(r > 1e-3 for r in rels)
    print(
        f"{label}: median {rels[len(rels) // 2]:.2e}, worst {rels[-1]:.2e}, "
        f"{len(rels) - over} of {len(rels)} tensors within 1e-3, {sum(r > 2e-3 for r in rels)} over 2e-3"
    )


def main():
    gguf_path = sys.argv[1]
    folder, name = os.path.split(gguf_path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    doc = tok(DOCUMENT, add_special_tokens=False)["input_ids"]
    chunks = [doc[i : i + 64] for i in range(0, 3 * 64, 64)]
    torch.set_num_threads(os.cpu_count())

    reference = updates(load(gguf_path, torch.float64), chunks, float32_weights=True)
    summary("PyTorch float32 vs the reference", updates(load(gguf_path, torch.float32), chunks), reference)
    summary(
        "reference with 1e-5 gradient noise vs the reference",
        updates(load(gguf_path, torch.float64), chunks, perturb=1e-5, float32_weights=True),
        reference,
    )


if __name__ == "__main__":
    main()
