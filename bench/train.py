"""Training throughput and time-to-quality: stock SentenceTransformerTrainer vs honed, in one process.

Same model (all-MiniLM-L6-v2), same mined rows, loss (CachedMNRL in MatryoshkaLoss), batch,
learning rate, sequence length, epochs and seed. Variants:

* stock: ``SentenceTransformerTrainer`` as a user would write it (fp32, the model's dropouts);
* honed fp32: honed's trainer with attention dropout off (fused attention kernel), fp32;
* honed: honed's default (attention dropout off + bf16 autocast over the whole step).

Each model is then scored on the dev split (full corpus, nDCG@10 at full dim, same encoder
settings for all), so the speed-up is shown next to the quality it buys.

    python bench/train.py ../shared/data/scifact --rows 256 --epochs 1
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from honed.data.beir import load_beir
from honed.data.splits import positives_only, split_data
from honed.encoding.dims import matryoshka_dims
from honed.encoding.encoder import EmbeddingCache, Precision, default_model_path, load_model
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import mine_hard_negatives
from honed.training.config import TrainConfig
from honed.training.dataset import build_dataset
from honed.training.evaluator import DevEvaluator
from honed.training.losses import build_loss
from honed.training.trainer import TrainRun, train_model


def stock_train(rows, config: TrainConfig, out: Path):
    """The stock recipe: plain SentenceTransformerTrainer, fp32, no honed changes -> (seconds, model)."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    model = load_model(default_model_path(), "cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        batch_sampler="no_duplicates",
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        use_cpu=True,
        logging_steps=50,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=build_dataset(rows, config.loss),
        loss=build_loss(model, config),
    )
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/honed-bench-train"))
    args = parser.parse_args()
    data = load_beir(args.data)
    parts = split_data(data)
    train, dev = parts.train, parts.dev
    doc_ids = list(data.corpus)
    doc_texts = [data.corpus[d].full_text for d in doc_ids]
    cache = EmbeddingCache(precision=Precision.BF16)
    base = load_model(default_model_path(), "cpu")
    doc_emb = cache.encode(base, doc_texts)
    positives = positives_only(train)
    qids = sorted(positives)
    q_emb = cache.encode(base, [data.queries[q] for q in qids])
    rows = mine_hard_negatives(
        positives, data.queries, doc_ids, doc_texts, q_emb, doc_emb, MiningConfig()
    ).rows
    rows = random.Random(0).sample(list(rows), min(args.rows, len(rows)))
    dims = matryoshka_dims(384)
    results = []

    def dev_score(model) -> float:
        scorer = DevEvaluator(
            data.queries, dev, doc_ids, doc_texts, dims, EmbeddingCache(precision=Precision.BF16)
        )
        return scorer(model)["dev_ndcg@10"]

    base_dev = dev_score(base)
    stock_config = TrainConfig(epochs=args.epochs, attention_dropout=None, precision="fp32")
    seconds, model = stock_train(rows, stock_config, args.out / "stock")
    results.append(("stock SentenceTransformerTrainer (fp32)", seconds, dev_score(model)))
    for name, precision in (
        ("honed, attention dropout off (fp32)", "fp32"),
        ("honed default (bf16 autocast)", "bf16"),
    ):
        model = load_model(default_model_path(), "cpu")
        result = train_model(
            model,
            rows,
            TrainConfig(epochs=args.epochs, precision=precision),
            args.out / name[:5],
            None,
            run=TrainRun(show_progress_bar=False),
        )
        results.append((name, result.seconds, dev_score(model)))
    n = len(rows) * args.epochs
    print(
        f"{len(rows)} rows x {args.epochs} epoch(s), batch 64, CachedMNRL+Matryoshka, lr {stock_config.learning_rate:g}; "
        f"dev: {len(dev)} queries, untuned dev nDCG@10 {base_dev:.4f}"
    )
    print("| trainer | seconds | rows/s | vs stock | dev nDCG@10 |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, score in results:
        print(
            f"| {name} | {seconds:.0f} | {n / seconds:.2f} | {results[0][1] / seconds:.2f}x | {score:.4f} |"
        )


if __name__ == "__main__":
    main()
