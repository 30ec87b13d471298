"""``honed evaluate`` and ``honed compare``: metrics at every dim, and paired significance."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from honed.cli.index import cache_dir_of, fusion_from_args
from honed.encoding.distributed import is_main_process, world_size
from honed.files import write_json

__all__ = ["cmd_compare", "cmd_evaluate"]


def _print_metrics(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """One row per system and dim, the report's columns (``metrics[system][dim][metric]``)."""
    # Here, not at the top: the report module imports the index planner, which --help never needs.
    from honed.report.markdown import COLUMNS, HEADERS

    print("| system | dim | " + " | ".join(HEADERS) + " |")
    for system, by_dim in metrics.items():
        for dim, values in by_dim.items():
            print(f"| {system} | {dim} | " + " | ".join(f"{values[c]:.4f}" for c in COLUMNS) + " |")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model (and BM25) on a split; with --hybrid / --fusion, their fusion too."""
    fusion = fusion_from_args(args)
    if (args.hybrid or fusion is not None) and world_size() > 1:
        raise ValueError(
            f"honed evaluate --hybrid/--fusion: expected a single process, got a torchrun launch of "
            f"{world_size()}; fix: run it without torchrun, or leave out --hybrid and --fusion"
        )
    if args.hybrid or fusion is not None:
        return _evaluate_hybrid(args, fusion)
    from honed.pipeline.commands import evaluate_model  # imports torch

    metrics = evaluate_model(
        args.model,
        args.data,
        split=args.split,
        dims=args.dims,
        bm25=args.bm25,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.encode_batch_size,
        cache_dir=cache_dir_of(args),
    )
    if not is_main_process():  # under torchrun: the first process prints and writes
        return 0
    _print_metrics(metrics)
    if args.out:
        write_json(Path(args.out), metrics)
        print(f"wrote {args.out}")
    return 0


def _evaluate_hybrid(args: argparse.Namespace, fusion: Any) -> int:
    from honed.evaluation.hybrid import evaluate_hybrid  # imports torch

    result = evaluate_hybrid(
        args.model,
        args.data,
        split=args.split,
        fusion=fusion,
        run_dir=args.fusion_from,
        dims=args.dims,
        n_resamples=args.n_resamples,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
        cache_dir=cache_dir_of(args),
    )
    _print_metrics(result.metrics)
    chosen = result.fusion
    how = "given" if chosen.source == "user" else chosen.source
    if fusion is None:  # chosen here, on dev
        how = f"chosen on dev, {result.dev}: dev nDCG@10 {chosen.dev_ndcg10:.4f}"
    print(
        f"\nhybrid = dense@{result.dim} + BM25 by {chosen.method.value}, dense weight "
        f"{chosen.dense_weight:g} ({how})"
    )
    print(f"{args.split}: paired bootstrap + randomization tests, {args.n_resamples} resamples")
    for t in result.tests:
        print(f"  {t['system_b']} vs {t['system_a']}: {t['sentence']}")
    print(result.sentence)
    if args.out:
        write_json(Path(args.out), result.to_dict())
        print(f"wrote {args.out}")
    flags = (
        f"--fusion-from {args.fusion_from}"
        if args.fusion_from
        else f"--fusion {chosen.method.value} --dense-weight {chosen.dense_weight:g}"
    )
    if result.deploy == "hybrid":
        print(f"next: honed index {args.model} {args.data} --out index {flags}")
    else:
        print(f"next: honed index {args.model} {args.data} --out index (hybrid does not pay here)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired bootstrap and randomization tests between models, run files and BM25."""
    from honed.pipeline.commands import compare_systems  # imports torch

    tests = compare_systems(
        args.data,
        args.systems,
        split=args.split,
        bm25=args.bm25,
        n_resamples=args.n_resamples,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        cache_dir=cache_dir_of(args),
    )
    print(
        f"{args.split} split, paired bootstrap + randomization test, {args.n_resamples} resamples"
    )
    for t in tests:
        print(f"{t['system_b']} vs {t['system_a']}: {t['sentence']}")
    if args.out:
        write_json(Path(args.out), tests)
        print(f"wrote {args.out}")
    return 0
