"""End to end: `honed run` vs the same stages written with plain sentence-transformers calls.

Both sides run in this one process invocation, one after the other, on the same machine:

* **honed**: ``honed run DATA --out OUT/honed`` with its defaults and an empty embedding cache
  (subprocess, so its own imports count), wall time from the clock around it;
* **stock**: what a practitioner writes with sentence-transformers alone, with the *same*
  training and dev queries honed used (read from honed's ``data.json``: the leaked training
  queries dropped, the same dev carve), the same base model, loss (CachedMNRL, mini-batch 32,
  inside MatryoshkaLoss 384/256/128/64), batch 64 without duplicates, lr 1e-4 with 10% warm-up,
  3 epochs, 3 hard negatives per pair:

  1. ``InformationRetrievalEvaluator`` on test with the untuned model (the baseline);
  2. ``util.mine_hard_negatives`` (top-50 candidates, ``relative_margin=0.05`` = honed's 95%
     positive-aware margin, ``num_negatives=3``, ``sampling_strategy="top"``) on the training pairs;
  3. ``SentenceTransformerTrainer`` (fp32, the model's own dropout), with an
     ``InformationRetrievalEvaluator`` on dev each epoch and ``load_best_model_at_end`` so it
     keeps the best epoch as honed does;
  4. ``InformationRetrievalEvaluator`` on test at 384 and 64 dims with the tuned model.

Printed: a table of stage times, total wall time, the ratio honed/stock and test nDCG@10 at 384
and 64 dims for both.

    python bench/pipeline.py ../shared/data/scifact --out runs/bench-pipeline
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def run_honed(data: str, out: Path) -> tuple[float, dict[str, Any]]:
    if out.exists():
        shutil.rmtree(out)
    honed = Path(sys.executable).with_name("honed")
    start = time.perf_counter()
    # A fresh on-disk cache: the side-by-side must not reuse an earlier run's encodings.
    cache = out.parent / "honed-cache"
    shutil.rmtree(cache, ignore_errors=True)
    subprocess.run(
        [str(honed), "run", data, "--out", str(out), "--cache-dir", str(cache)], check=True
    )
    seconds = time.perf_counter() - start
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return seconds, report


def split_like_honed(data: str, honed_out: Path) -> tuple[Any, dict, dict, dict]:
    from honed.data.beir import load_beir
    from honed.data.splits import split_data
    from honed.pipeline.config import RunConfig

    beir = load_beir(data)
    recorded = json.loads((honed_out / "data.json").read_text(encoding="utf-8"))
    drop = frozenset(recorded["train_queries_dropped_as_leaked"])
    config = RunConfig.from_dict(json.loads((honed_out / "config.json").read_text("utf-8")))
    parts = split_data(beir, config.split_rule, drop)
    train, dev, test = parts.train, parts.dev, parts.test
    return beir, train, dev, test


def ir_evaluator(beir: Any, qrels: dict, name: str, dim: int | None = None) -> Any:
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    relevant = {q: {d for d, s in docs.items() if s > 0} for q, docs in qrels.items()}
    return InformationRetrievalEvaluator(
        queries={q: beir.queries[q] for q in relevant},
        corpus={d: beir.corpus[d].full_text for d in beir.corpus},
        relevant_docs=relevant,
        name=name,
        truncate_dim=dim,
        ndcg_at_k=[10],
        batch_size=64,
        show_progress_bar=False,
    )


def run_stock(beir: Any, train: dict, dev: dict, test: dict, out: Path) -> dict[str, Any]:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
        util,
    )

    from honed.encoding.encoder import default_model_path

    times: dict[str, float] = {}
    start = time.perf_counter()
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    base = {d: ir_evaluator(beir, test, f"test{d}", d)(model) for d in (384, 64)}
    times["baseline"] = time.perf_counter() - start

    start = time.perf_counter()
    pairs = [
        (beir.queries[q], beir.corpus[d].full_text)
        for q in sorted(train)
        for d in sorted(train[q])
        if train[q][d] > 0
    ]
    corpus = [beir.corpus[d].full_text for d in beir.corpus]
    mined = util.mine_hard_negatives(
        Dataset.from_dict({"anchor": [p[0] for p in pairs], "positive": [p[1] for p in pairs]}),
        model,
        corpus=corpus,
        range_max=50,
        relative_margin=0.05,
        num_negatives=3,
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=64,
        use_faiss=False,
    )
    times["mine"] = time.perf_counter() - start

    start = time.perf_counter()
    loss = losses.MatryoshkaLoss(
        model,
        losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=32),
        [384, 256, 128, 64],
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=3,
        per_device_train_batch_size=64,
        learning_rate=1e-4,
        warmup_ratio=0.1,
        batch_sampler="no_duplicates",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_dev_cosine_ndcg@10",
        report_to="none",
        seed=42,
        use_cpu=True,
        logging_steps=10,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=mined,
        loss=loss,
        evaluator=ir_evaluator(beir, dev, "dev"),
    )
    trainer.train()
    times["train"] = time.perf_counter() - start

    start = time.perf_counter()
    tuned = {d: ir_evaluator(beir, test, f"test{d}", d)(model) for d in (384, 64)}
    times["evaluate"] = time.perf_counter() - start
    model.save(str(out / "model"))
    ndcg = {
        which: {d: r[f"test{d}_cosine_ndcg@10"] for d, r in res.items()}
        for which, res in (("base", base), ("tuned", tuned))
    }
    return {"times": times, "ndcg@10": ndcg, "rows": len(mined)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-pipeline"))
    parser.add_argument(
        "--honed-only",
        action="store_true",
        help="rerun only the honed side (e.g. on an idle machine) and print its time and scores",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    honed_seconds, report = run_honed(args.data, args.out / "honed")
    if args.honed_only:
        tuned = report["metrics"]["tuned"]["test"]
        print(
            f"{when}; honed run {honed_seconds / 60:.1f} min; stages {report['timings']}; test "
            f"nDCG@10 @384 {tuned['384']['ndcg@10']:.4f} @64 {tuned['64']['ndcg@10']:.4f}"
        )
        return
    beir, train, dev, test = split_like_honed(args.data, args.out / "honed")
    start = time.perf_counter()
    stock = run_stock(beir, train, dev, test, args.out / "stock")
    stock_seconds = time.perf_counter() - start
    tuned = report["metrics"]["tuned"]["test"]
    honed_ndcg = {d: tuned[str(d)]["ndcg@10"] for d in (384, 64)}
    result = {
        "date": when,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "honed": {"seconds": honed_seconds, "stages": report["timings"], "ndcg@10": honed_ndcg},
        "stock": {"seconds": stock_seconds, **stock},
        "ratio": honed_seconds / stock_seconds,
    }
    (args.out / "pipeline.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(
        f"\n{when}; {result['machine']}; {len(train)} training queries, {len(dev)} dev, {len(test)} test"
    )
    print("| pipeline | wall (min) | stages (min) | test nDCG@10 @384 | @64 |")
    print("|---|---:|---|---:|---:|")
    stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in report["timings"].items() if v > 30)
    print(
        f"| honed run | {honed_seconds / 60:.1f} | {stages} | {honed_ndcg[384]:.4f} | {honed_ndcg[64]:.4f} |"
    )
    st = ", ".join(f"{k} {v / 60:.1f}" for k, v in stock["times"].items())
    tn = stock["ndcg@10"]["tuned"]
    print(
        f"| plain sentence-transformers | {stock_seconds / 60:.1f} | {st} | {tn[384]:.4f} | {tn[64]:.4f} |"
    )
    print(f"honed / stock wall time: {result['ratio']:.2f}x (target <= 0.6x)")


if __name__ == "__main__":
    main()
