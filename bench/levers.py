"""Quality levers of issue #7, each measured on the dev split (and reported on test) in one process.

The data handling is exactly ``honed run``'s (same load, leakage drop, dev carve, baseline
encoding and mining through :class:`honed.pipeline.stages.Run`); only the training rows or the
post-processing of the trained model change per lever:

* ``default``: the mined labelled rows, today's TrainConfig (the reference);
* ``train:KEY=VALUE,...``: any TrainConfig override (``a/b/c`` is a tuple); ``rotate=true``
  starts from the base model rotated by the corpus's PCA (:mod:`honed.encoding.rotation`);
* ``selfsup[:RATIO][;KEY=VALUE,...]``: labelled rows + ``RATIO`` x as many self-supervised
  corpus rows (:mod:`honed.mining.selfsup`), mined with the base model;
* ``base-maxlen:N``: the untuned model at another max_seq_length (no training);
* after each trained variant: ``--rotate`` (post-hoc PCA rotation), weight interpolation
  ``alpha * tuned + (1 - alpha) * base`` (alpha chosen on dev) and ``--remine-epochs`` (a second
  mining round with the tuned model).

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


def prepare(
    data: str, out: Path, base: str | None = None, device: str = "auto", precision: str = "auto"
) -> Any:
    from honed.encoding.encoder import resolve_device, resolve_model_name
    from honed.pipeline.config import RunConfig
    from honed.types import Run

    config = RunConfig(
        data=data,
        out=str(out / "prepared"),
        overwrite=True,
        bm25=False,
        device=device,
        precision=precision,
        **({"base_model": base} if base else {}),
    )
    run = Run(config, notify=lambda m: print("[prepare]", m, flush=True))
    from honed.pipeline.run_folder import prepare_run_dir

    run.out = prepare_run_dir(config.out, True)
    run.previous, run.device = {}, resolve_device(config.device)
    run.base_path = resolve_model_name(config.base_model)
    for stage in ("load", "baseline", "mine"):
        getattr(run, f"stage_{stage}")()
    return run


def selfsup_rows(run: Any, ratio: float, seed: int) -> list[Any]:
    from honed.mining.hard_negatives import mine_hard_negatives
    from honed.mining.selfsup import corpus_pairs

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


def evaluate_model(run: Any, model: Any, rotate: bool = False) -> dict[str, Any]:
    """Dev and test nDCG@10 at every dim; ``rotate``: after an orthogonal PCA rotation of the
    space fitted on the corpus embeddings (full-dim cosine unchanged, truncations reordered)."""
    import numpy as np

    from honed.evaluation.runs import dense_runs, metrics_of

    run.cache.forget(model)
    docs = run.cache.encode(model, run.doc_texts, show_progress_bar=False)
    qids = sorted({*run.dev, *run.test})
    q_emb = run.cache.encode(model, [run.data.queries[x] for x in qids])
    if rotate:
        d = np.asarray(docs, dtype=np.float64)
        values, vectors = np.linalg.eigh(d.T @ d)  # uncentred: a pure rotation about 0
        r = vectors[:, np.argsort(values)[::-1]].astype(np.float32)
        docs, q_emb = np.asarray(docs) @ r, np.asarray(q_emb) @ r
    q = dict(zip(qids, q_emb))
    splits = {"dev": run.dev, "test": run.test}
    metrics = metrics_of(dense_runs(q, docs, run.doc_ids, splits, run.dims), splits)
    return {
        split: {dim: round(m["ndcg@10"], 4) for dim, m in by_dim.items()}
        for split, by_dim in metrics.items()
    }


def train_variant(
    run: Any, name: str, rows: list[Any], out: Path, save: bool = True, **overrides: Any
) -> Any:
    from honed.encoding.encoder import load_model
    from honed.training.evaluator import DevEvaluator
    from honed.training.trainer import train_model

    model = load_model(run.base_path, run.device)
    config = replace(run.config.training, **overrides)
    if config.rotate:  # as honed.pipeline.stages does: start from the base model rotated by corpus PCA
        from honed.encoding.rotation import add_rotation, pca_rotation

        add_rotation(model, pca_rotation(run.base_docs))
    guide = load_model(run.base_path, run.device) if config.loss.value == "gist" else None
    evaluator = DevEvaluator(
        run.data.queries, run.dev, run.doc_ids, run.doc_texts, run.dims, run.cache
    )
    start = time.perf_counter()
    result = train_model(model, rows, config, out / name / "checkpoints", evaluator, guide)
    seconds = time.perf_counter() - start
    if save:
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
    from honed.encoding.encoder import load_model

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
    write(
        out / f"interp-{name}.json",
        {"variant": f"interp-{name}", "grid": results, "chosen_on_dev": best},
    )


def remine(
    run: Any, tuned: Any, name: str, out: Path, epochs: int, lr: float, save: bool = True
) -> Any:
    """Second round: mine again with the tuned model (same filters), train it further on those rows."""
    from honed.data.splits import positives_only
    from honed.mining.hard_negatives import mine_hard_negatives
    from honed.training.evaluator import DevEvaluator
    from honed.training.trainer import train_model

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
    if save:
        tuned.save(str(out / f"remine-{name}" / "model"))
    write(out / f"remine-{name}.json", record)
    return tuned


RESULTS: list[Path] = []  # every record is also appended to these JSON-lines files


def write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, default=float), encoding="utf-8")
    for results in RESULTS:
        results.parent.mkdir(parents=True, exist_ok=True)
        with results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(value, default=float) + "\n")
    print(
        f"[write] {path}: {json.dumps(value.get('ndcg@10', value.get('chosen_on_dev')))}",
        flush=True,
    )


def parse_overrides(spec: str) -> dict[str, Any]:
    """``key=value,key=value`` -> TrainConfig overrides; ``a/b/c`` is a tuple of numbers."""
    out: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, _, raw = item.partition("=")
        value: Any
        if "/" in raw:
            value = tuple(float(x) for x in raw.split("/"))
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--out", default="runs/levers")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["default", "selfsup"],
        help="default | selfsup[:RATIO][;k=v,...] | train:k=v,... | load:MODEL | "
        "base-maxlen:N (untuned model at another max_seq_length)",
    )
    parser.add_argument("--ratio", type=float, default=1.0, help="selfsup rows per labelled row")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--alphas", default="0.5,0.7,0.85")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--remine-epochs", type=int, default=0, help="0: no second round")
    parser.add_argument("--remine-lr", type=float, default=5e-5)
    parser.add_argument("--remine-only", nargs="*", default=None, help="variants to re-mine")
    parser.add_argument("--interp-only", nargs="*", default=None, help="variants to interpolate")
    parser.add_argument("--rotate", action="store_true", help="also evaluate a PCA rotation")
    parser.add_argument("--base", default=None, help="base model (default: honed's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--results", default=None, help="also append every record here")
    parser.add_argument("--no-save", action="store_true", help="do not save trained models")
    args = parser.parse_args()
    out = Path(args.out)
    RESULTS.append(out / "results.jsonl")
    if args.results:
        RESULTS.append(Path(args.results))
    save = not args.no_save
    print(
        f"[env] {datetime.now(timezone.utc).isoformat(timespec='seconds')} {platform.processor()}",
        flush=True,
    )
    run = prepare(args.data, out, args.base, args.device, args.precision)
    base_scores = evaluate_model(run, run.model)
    write(
        out / "base.json", {"variant": "base", "rows": len(run.mined.rows), "ndcg@10": base_scores}
    )
    if args.rotate:
        write(
            out / "base-rotated.json",
            {"variant": "base-rotated", "ndcg@10": evaluate_model(run, run.model, rotate=True)},
        )
    print(
        f"[data] train rows {len(run.mined.rows)}, dev {len(run.dev)}, test {len(run.test)}",
        flush=True,
    )
    common: dict[str, Any] = {"seed": args.seed}
    if args.epochs:
        common["epochs"] = args.epochs
    alphas = [float(a) for a in args.alphas.split(",") if a]
    for variant in args.variants:
        try:
            run_variant(run, variant, args, out, save, common, alphas)
        except Exception:  # one broken variant must not cost the others (one-shot GPU runs)
            import traceback

            traceback.print_exc()
            print(f"[failed] {variant}", flush=True)


def run_variant(
    run: Any,
    variant: str,
    args: argparse.Namespace,
    out: Path,
    save: bool,
    common: dict[str, Any],
    alphas: list[float],
) -> None:
    start = time.perf_counter()
    if variant.startswith("load:"):  # a model trained before, e.g. runs/scifact/model
        from honed.encoding.encoder import load_model

        model = load_model(variant[5:], run.device)
        name = "loaded"
        write(out / f"{name}.json", {"variant": variant, "ndcg@10": evaluate_model(run, model)})
    elif variant.startswith("base-maxlen:"):
        length = int(variant.split(":")[1])
        previous, run.model.max_seq_length = run.model.max_seq_length, length
        name = slug(variant)
        write(
            out / f"{name}.json",
            {"variant": variant, "ndcg@10": evaluate_model(run, run.model)},
        )
        run.model.max_seq_length = previous
        run.cache.forget(run.model)
        return
    elif variant == "default":
        name = "default"
        model = train_variant(run, name, list(run.mined.rows), out, save, **common)
    elif variant.startswith("selfsup"):
        head, _, spec = variant.partition(";")
        ratio = float(head.split(":")[1]) if ":" in head else args.ratio
        rows = list(run.mined.rows) + selfsup_rows(run, ratio, args.seed)
        name = slug(f"selfsup{ratio:g}" + (f"_{spec}" if spec else ""))
        model = train_variant(run, name, rows, out, save, **{**common, **parse_overrides(spec)})
    elif variant.startswith("train:"):
        name = slug(variant[6:])
        model = train_variant(
            run,
            name,
            list(run.mined.rows),
            out,
            save,
            **{**common, **parse_overrides(variant[6:])},
        )
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    if args.rotate:
        write(
            out / f"rotated-{name}.json",
            {"variant": f"rotated-{name}", "ndcg@10": evaluate_model(run, model, rotate=True)},
        )
    if alphas and (args.interp_only is None or variant in args.interp_only):
        interpolate(run, model, name, out, alphas)
    if args.remine_epochs and (args.remine_only is None or variant in args.remine_only):
        remine(run, model, name, out, args.remine_epochs, args.remine_lr, save)
    print(f"[time] {variant}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
