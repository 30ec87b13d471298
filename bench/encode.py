"""Corpus encoding speed: honed's encoder vs plain ``SentenceTransformer.encode``, in one process.

Prints documents/s, tokens/s and the achieved FLOP rate as a fraction of this machine's measured
matmul rate (a large ``torch.matmul``, fp32 and bf16). all-MiniLM-L6-v2 costs about
2 x 10.6 M (non-embedding weights) + 4 x seq x 384 x 6 (attention) FLOP per token:
~24 MFLOP per token at 256 tokens.

    python bench/encode.py ../shared/data/scifact --docs 1000
    python bench/encode.py ../shared/data/tldr --docs 5000   # command lines: padding matters

honed sorts the texts into batches by token count; a row sorts them by characters instead (as
sentence-transformers does, and honed did before), at the same precision, to show what that
order costs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from honed.encoding.batches import encode_in_batches
from honed.encoding.encoder import Precision, default_model_path, encode_texts, load_model


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of an n x n @ n x n matmul in ``dtype``."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up (oneDNN picks its kernel)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_per_token(
    model: torch.nn.Module, seq_len: float, width: int = 384, layers: int = 6
) -> float:
    """Forward FLOP per token: 2 x non-embedding weights + attention scores and weighted sum."""
    non_embedding = sum(
        p.numel() for name, p in model.named_parameters() if "embeddings" not in name
    )
    return 2 * non_embedding + 4 * seq_len * width * layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    texts = []
    with (args.data / "corpus.jsonl").open() as handle:
        for line, _ in zip(handle, range(args.docs)):
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc['text']}".strip())
    model = load_model(default_model_path(), "cpu")
    lengths = [min(len(ids), model.max_seq_length) for ids in model.tokenizer(texts)["input_ids"]]
    tokens = sum(lengths)
    per_token = flops_per_token(model, sum(lengths) / len(lengths))
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    encode_texts(model, texts[:64], args.batch_size, Precision.FP32)  # warm-up
    rows = []
    start = time.perf_counter()
    model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    rows.append(("sentence-transformers encode (fp32)", time.perf_counter() - start, "fp32"))
    for precision in (Precision.FP32, Precision.BF16):
        start = time.perf_counter()
        encode_texts(model, texts, args.batch_size, precision)
        rows.append(
            (f"honed encode ({precision.value})", time.perf_counter() - start, precision.value)
        )
    start = time.perf_counter()
    encode_in_batches(  # no token counts: batches cut in character order
        lambda batch: encode_texts(model, batch, args.batch_size, Precision.BF16), texts,
        args.batch_size,
    )  # fmt: skip
    rows.append(("honed encode (bf16), batches by characters", time.perf_counter() - start, "bf16"))
    print(
        f"{len(texts)} documents, {tokens} tokens (mean {tokens / len(texts):.0f}), "
        f"{per_token / 1e6:.1f} MFLOP/token; torch threads {torch.get_num_threads()}"
    )
    print(
        f"measured matmul: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print("| encoder | docs/s | tokens/s | GFLOP/s | of fp32 matmul | of bf16 matmul | vs stock |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    stock = rows[0][1]
    for name, seconds, _ in rows:
        gflops = tokens * per_token / seconds / 1e9
        print(
            f"| {name} | {len(texts) / seconds:.1f} | {tokens / seconds:.0f} | {gflops:.0f} | "
            f"{gflops * 1e9 / rates['fp32']:.0%} | {gflops * 1e9 / rates['bf16']:.0%} | "
            f"{stock / seconds:.2f}x |"
        )


if __name__ == "__main__":
    main()
