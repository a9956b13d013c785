"""PyTorch side of `npm run bench:embed`: sentence-transformers encodes the same texts with all-MiniLM-L6-v2 from
the same local folder, same max length and batch size, mean pooling + L2 norm. Writes the embeddings (float32,
row-major) for the comparison and prints JSON.

usage: embed_torch.py FOLDER TEXTS_JSON OUT_F32 MAX_LENGTH BATCH REPS"""

import json
import os
import sys
import time

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer, models


def load(folder, max_length):
    if os.path.exists(os.path.join(folder, "modules.json")):
        model = SentenceTransformer(folder, device="cpu")
    else:
        # A plain HF folder: build the same pipeline the sentence-transformers config would describe.
        transformer = models.Transformer(folder, max_seq_length=max_length)
        pooling = models.Pooling(transformer.get_word_embedding_dimension(), "mean")
        model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    model.max_seq_length = max_length
    names = [type(m).__name__ for m in model]
    assert names[-1] == "Normalize" and "Pooling" in names, f"expected Pooling + Normalize modules, got {names}"
    return model


def main():
    folder, texts_file, out_file = sys.argv[1:4]
    max_length, batch, reps = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    model = load(folder, max_length)
    tokens = sum(len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])

    model.encode(texts[:batch], batch_size=batch)  # warm-up, as the tfjs side
    t0 = time.perf_counter()
    for _ in range(reps):
        embeddings = model.encode(texts, batch_size=batch, convert_to_numpy=True)
    seconds = (time.perf_counter() - t0) / reps
    np.ascontiguousarray(embeddings, dtype=np.float32).tofile(out_file)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "threads": torch.get_num_threads(),
                "seconds": seconds,
                "tokens": tokens,
                "dim": embeddings.shape[1],
            }
        )
    )


if __name__ == "__main__":
    main()
