"""Quality levers of issue #7, each measured on the dev split (and reported on test) in one process.

The data handling is exactly ``honed run``'s (same load, leakage drop, dev carve, baseline
encoding and mining through :class:`honed.stages.Run`); only the training rows or the
post-processing of the trained model change per lever:

* ``default``: the mined labelled rows, today's TrainConfig (the reference);
* ``selfsup``: labelled rows + ``ratio`` x as many self-supervised corpus rows
  (:mod:`honed.selfsup`: title -> body or sentence -> rest, mined with the base model);
* ``interp``: weight interpolation ``alpha * tuned + (1 - alpha) * base`` of a trained variant,
  alpha chosen on dev (post-hoc, no training).

Every variant writes ``OUT/<variant>.json`` (dev curve, dev and test nDCG@10 at every dim) and its
model to ``OUT/<variant>/model``. Choose on dev; the test columns are reported, never used.

    python bench/levers.py ../shared/data/scifact --out runs/levers --variants default selfsup
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def prepare(data: str, out: Path) -> Any:
    from honed.encode import resolve_device, resolve_model_name
    from honed.pipeline import RunConfig
    from honed.stages import Run

    config = RunConfig(data=data, out=str(out / "prepared"), overwrite=True, bm25=False)
    run = Run(config, notify=lambda m: print("[prepare]", m, flush=True))
    from honed.pipeline import prepare_run_dir

    run.out = prepare_run_dir(config.out, True)
    run.previous, run.device = {}, resolve_device(config.device)
    run.base_path = resolve_model_name(config.base_model)
    for stage in ("load", "baseline", "mine"):
        getattr(run, f"stage_{stage}")()
    return run


def selfsup_rows(run: Any, ratio: float, seed: int) -> list[Any]:
    from honed.mine import mine_hard_negatives
    from honed.selfsup import corpus_pairs

    pairs = corpus_pairs(run.data.corpus, n=int(round(ratio * len(run.mined.rows))), seed=seed)
    queries = {p.query_id: p.query for p in pairs}
    positives = {p.query_id: {p.doc_id: 1} for p in pairs}
    qids = sorted(positives)
    q_emb = run.cache.encode(run.model, [queries[q] for q in qids])
    mined = mine_hard_negatives(
        positives, queries, run.doc_ids, run.doc_texts, q_emb, run.base_docs, run.config.mining
    )
    body = {p.query_id: p.positive for p in pairs}
    kinds = {k: sum(p.kind == k for p in pairs) for k in ("title", "sentence")}
    print(f"[selfsup] {len(pairs)} pairs {kinds}, {len(mined.rows)} rows mined", flush=True)
    return [replace(r, positive=body[r.query_id]) for r in mined.rows]


def evaluate_model(run: Any, model: Any) -> dict[str, Any]:
    from honed.pipeline import dense_runs, metrics_of

    run.cache.forget(model)
    docs = run.cache.encode(model, run.doc_texts, show_progress_bar=False)
    qids = sorted({*run.dev, *run.test})
    q = dict(zip(qids, run.cache.encode(model, [run.data.queries[x] for x in qids])))
    splits = {"dev": run.dev, "test": run.test}
    metrics = metrics_of(dense_runs(q, docs, run.doc_ids, splits, run.dims), splits)
    return {
        split: {dim: round(m["ndcg@10"], 4) for dim, m in by_dim.items()}
        for split, by_dim in metrics.items()
    }


def train_variant(run: Any, name: str, rows: list[Any], out: Path, **overrides: Any) -> Any:
    from honed.encode import load_model
    from honed.train import DevEvaluator, train_model

    model = load_model(run.base_path, run.device)
    config = replace(run.config.training, **overrides)
    evaluator = DevEvaluator(
        run.data.queries, run.dev, run.doc_ids, run.doc_texts, run.dims, run.cache
    )
    start = time.perf_counter()
    result = train_model(model, rows, config, out / name / "checkpoints", evaluator)
    seconds = time.perf_counter() - start
    model.save(str(out / name / "model"))
    record = {
        "variant": name,
        "rows": len(rows),
        "config": config.to_dict(),
        "curve": result.curve,
        "best_epoch": result.best_epoch,
        "train_seconds": round(seconds, 1),
        "ndcg@10": evaluate_model(run, model),
    }
    write(out / f"{name}.json", record)
    return model


def interpolate(run: Any, tuned: Any, name: str, out: Path, alphas: list[float]) -> None:
    from honed.encode import load_model

    base = load_model(run.base_path, run.device)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    tuned_state = {k: v.clone() for k, v in tuned.state_dict().items()}
    results = []
    for alpha in alphas:
        mixed = copy.deepcopy(tuned)
        mixed.load_state_dict(
            {
                k: alpha * tuned_state[k] + (1 - alpha) * base_state[k]
                if tuned_state[k].is_floating_point()
                else tuned_state[k]
                for k in tuned_state
            }
        )
        scores = evaluate_model(run, mixed)
        print(f"[interp] {name} alpha {alpha}: {scores}", flush=True)
        results.append({"alpha": alpha, "ndcg@10": scores})
    full = str(max(run.dims))
    best = max(results, key=lambda r: r["ndcg@10"]["dev"][full])
    write(out / f"interp-{name}.json", {"variant": name, "grid": results, "chosen_on_dev": best})


def remine(run: Any, tuned: Any, name: str, out: Path, epochs: int, lr: float) -> Any:
    """Second round: mine again with the tuned model (same filters), train it further on those rows."""
    from honed.mine import mine_hard_negatives
    from honed.pipeline import positives_only
    from honed.train import DevEvaluator, train_model

    positives = positives_only(run.train)
    qids = sorted(positives)
    run.cache.forget(tuned)
    docs = run.cache.encode(tuned, run.doc_texts)
    q_emb = run.cache.encode(tuned, [run.data.queries[q] for q in qids])
    mined = mine_hard_negatives(
        positives, run.data.queries, run.doc_ids, run.doc_texts, q_emb, docs, run.config.mining
    )
    print(f"[remine] {name}: {len(mined.rows)} rows, report {mined.report}", flush=True)
    config = replace(run.config.training, epochs=epochs, learning_rate=lr)
    evaluator = DevEvaluator(
        run.data.queries, run.dev, run.doc_ids, run.doc_texts, run.dims, run.cache
    )
    start = time.perf_counter()
    result = train_model(tuned, mined.rows, config, out / f"remine-{name}" / "ckpt", evaluator)
    record = {
        "variant": f"remine-{name}",
        "rows": len(mined.rows),
        "config": config.to_dict(),
        "curve": result.curve,
        "best_epoch": result.best_epoch,
        "train_seconds": round(time.perf_counter() - start, 1),
        "ndcg@10": evaluate_model(run, tuned),
    }
    tuned.save(str(out / f"remine-{name}" / "model"))
    write(out / f"remine-{name}.json", record)
    return tuned


def write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, default=float), encoding="utf-8")
    print(
        f"[write] {path}: {json.dumps(value.get('ndcg@10', value.get('chosen_on_dev')))}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--out", default="runs/levers")
    parser.add_argument("--variants", nargs="+", default=["default", "selfsup"])
    parser.add_argument("--ratio", type=float, default=1.0, help="selfsup rows per labelled row")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--alphas", default="0.5,0.7,0.85")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--remine-epochs", type=int, default=0, help="0: no second round")
    parser.add_argument("--remine-lr", type=float, default=5e-5)
    args = parser.parse_args()
    out = Path(args.out)
    print(
        f"[env] {datetime.now(timezone.utc).isoformat(timespec='seconds')} {platform.processor()}",
        flush=True,
    )
    run = prepare(args.data, out)
    print(
        f"[data] train rows {len(run.mined.rows)}, dev {len(run.dev)}, test {len(run.test)}, "
        f"base ndcg@10 {evaluate_model(run, run.model)}",
        flush=True,
    )
    overrides: dict[str, Any] = {"seed": args.seed}
    if args.epochs:
        overrides["epochs"] = args.epochs
    alphas = [float(a) for a in args.alphas.split(",") if a]
    for variant in args.variants:
        if variant.startswith("load:"):  # a model trained before, e.g. runs/scifact/model
            from honed.encode import load_model

            model = load_model(variant[5:], run.device)
            write(out / "loaded.json", {"variant": variant, "ndcg@10": evaluate_model(run, model)})
            variant = "loaded"
        elif variant == "default":
            model = train_variant(run, "default", list(run.mined.rows), out, **overrides)
        elif variant == "selfsup":
            rows = list(run.mined.rows) + selfsup_rows(run, args.ratio, args.seed)
            model = train_variant(run, f"selfsup{args.ratio:g}", rows, out, **overrides)
        else:
            raise SystemExit(f"unknown variant {variant!r}")
        if alphas:
            interpolate(run, model, variant, out, alphas)
        if args.remine_epochs:
            remine(run, model, variant, out, args.remine_epochs, args.remine_lr)


if __name__ == "__main__":
    main()
