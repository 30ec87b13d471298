"""Training throughput on a GPU: rows/s and the fraction of the bf16 matmul rate measured here.

The reference is the chip itself: a large bf16 matmul timed in the same script gives the rate
the hardware really reaches (not the datasheet's), and each training variant is reported as
model FLOP/s over that rate. Variants: the default batch and the largest batch that fits (batch
doubled until the GPU runs out of memory), each with the cached loss (``cached_mnrl``, the default:
an extra forward pass, memory bounded by ``--mini-batch-size``) and without it (``mnrl``).

Model FLOPs per row count what the model must compute, not the padding: per text, the
tokenizer's length (cut at max_seq_length) t, 2 x params x t for the matmuls of the forward pass
plus 4 x layers x hidden x t^2 for attention; training is 3 forwards' worth (forward + backward),
the cached loss 4 (its extra no-grad forward). A row is the query, the positive and its negatives.

    python bench/gpu_train.py ../shared/data/scifact --device cuda
    python bench/gpu_train.py ../shared/data/scifact --device cpu --rows 64 --batches 16,32  # smoke

Prints one markdown table (and writes it as JSON to ``--out``/gpu_train.json).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from honed.data.beir import load_beir
from honed.data.splits import positives_only, split_data
from honed.encoding.encoder import EmbeddingCache, Precision, default_model_path, load_model
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import mine_hard_negatives
from honed.training.config import TrainConfig
from honed.training.trainer import TrainRun, train_model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, size: int, repeats: int = 20) -> float:
    """Measured bf16 matmul FLOP/s: (size x size) @ (size x size), after a warm-up."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def flops_per_row(model, rows, cached: bool) -> float:
    """Useful model FLOPs of one training row (see the module docstring)."""
    bert = model[0].auto_model
    cfg = bert.config
    params = sum(p.numel() for n, p in bert.named_parameters() if "embeddings" not in n)
    limit = model.max_seq_length
    sample = rows[:200]
    texts = [t for r in sample for t in (r.query, r.positive, *r.negatives)]
    lengths = [min(len(ids), limit) for ids in model.tokenizer(texts)["input_ids"]]
    forward = sum(2 * params * t + 4 * cfg.num_hidden_layers * cfg.hidden_size * t * t for t in lengths)
    return forward / len(sample) * (4 if cached else 3)


def mined_rows(data_path: Path, device: str, n: int):
    data = load_beir(data_path)
    train = split_data(data).train
    doc_ids = list(data.corpus)
    doc_texts = [data.corpus[d].full_text for d in doc_ids]
    base = load_model(default_model_path(), device)
    cache = EmbeddingCache(precision=Precision.AUTO)
    positives = positives_only(train)
    qids = sorted(positives)
    q_emb = cache.encode(base, [data.queries[q] for q in qids])
    doc_emb = cache.encode(base, doc_texts, show_progress_bar=True)
    rows = mine_hard_negatives(
        positives, data.queries, doc_ids, doc_texts, q_emb, doc_emb, MiningConfig()
    ).rows
    return random.Random(0).sample(list(rows), min(n, len(rows)))


def train_rate(rows, device: str, batch: int, loss: str, out: Path) -> float | None:
    """rows/s of one epoch at ``batch``; None when it does not fit in the GPU's memory."""
    model = load_model(default_model_path(), device)
    config = TrainConfig(epochs=1, batch_size=batch, loss=loss, precision="bf16")
    try:
        result = train_model(model, rows, config, out, None, run=TrainRun(show_progress_bar=False))
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return result.rows_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rows", type=int, default=4096, help="rows trained per variant")
    parser.add_argument("--batches", default="64,128,256,512,1024,2048", help="default first")
    parser.add_argument("--matmul-size", type=int, default=None, help="8192 on GPU, 1024 on CPU")
    parser.add_argument("--out", type=Path, default=Path("/tmp/honed-bench-gpu-train"))
    args = parser.parse_args()
    device = args.device
    size = args.matmul_size or (8192 if device.startswith("cuda") else 1024)
    peak = matmul_rate(device, size)
    rows = mined_rows(args.data, device, args.rows)
    probe = load_model(default_model_path(), device)
    batches = [int(b) for b in args.batches.split(",")]
    table = []
    for loss in ("cached_mnrl", "mnrl"):
        per_row = flops_per_row(probe, rows, cached=loss == "cached_mnrl")
        for batch in batches:
            rate = train_rate(rows, device, batch, loss, args.out / f"{loss}-{batch}")
            if rate is None:
                table.append({"loss": loss, "batch": batch, "fits": False})
                break  # a larger batch will not fit either
            table.append(
                {"loss": loss, "batch": batch, "fits": True, "rows_per_s": rate,
                 "model_tflops": rate * per_row / 1e12, "of_matmul": rate * per_row / peak}
            )  # fmt: skip
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    print(f"{name}: bf16 matmul {size}x{size}: {peak / 1e12:.1f} TFLOP/s; {len(rows)} SciFact rows")
    print("| loss | batch | rows/s | model TFLOP/s | of bf16 matmul |")
    print("|---|---:|---:|---:|---:|")
    for r in table:
        if not r["fits"]:
            print(f"| {r['loss']} | {r['batch']} | out of memory | | |")
            continue
        print(
            f"| {r['loss']} | {r['batch']} | {r['rows_per_s']:.1f} | {r['model_tflops']:.2f} "
            f"| {r['of_matmul']:.1%} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_train.json").write_text(
        json.dumps({"device": name, "matmul_flops": peak, "rows": len(rows), "table": table})
    )


if __name__ == "__main__":
    main()
