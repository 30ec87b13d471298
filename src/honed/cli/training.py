"""``honed mine``, ``honed train`` and ``honed report``: the single-stage commands of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from honed.cli.configs import mining_config, train_config
from honed.cli.index import cache_dir_of
from honed.encoding.distributed import is_main_process

__all__ = ["cmd_mine", "cmd_report", "cmd_train"]


def cmd_mine(args: argparse.Namespace) -> int:
    """Mine hard negatives for a split into mined.jsonl (and mining_report.json beside it)."""
    from honed.pipeline.commands import mine  # imports torch

    report = mine(
        args.data,
        args.out,
        base_model=args.base,
        split=args.split,
        config=mining_config(args),
        device=args.device,
        precision=args.precision,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
        batch_size=args.encode_batch_size,
        cache_dir=cache_dir_of(args),
    )
    if not is_main_process():  # under torchrun: the first process wrote the files and prints
        return 0
    print(
        f"mined {report.num_negatives} negatives for {report.pairs - report.pairs_without_negatives} of "
        f"{report.pairs} pairs ({report.pairs_short} short, {report.pairs_filled_from_deeper} filled from deeper; "
        f"{report.dropped_margin} candidates dropped by the margin, {report.dropped_known_positive} known positives)"
    )
    print(f"wrote {args.out} and {Path(args.out).with_name('mining_report.json')}")
    print(f"next: honed train {args.out} --out runs/model")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Fine-tune the base model on mined rows or a pair file into a model folder."""
    from honed.pipeline.commands import train  # imports torch

    result = train(
        args.rows,
        args.out,
        base_model=args.base,
        config=train_config(args),
        device=args.device,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
    )
    if not is_main_process():
        return 0  # under torchrun every rank returns here; rank 0 alone reports
    print(
        f"trained {result.rows} rows x {args.epochs} epochs in {result.seconds / 60:.1f} min "
        f"({result.rows_per_second:.2f} rows/s, {result.precision})"
    )
    print(f"wrote {args.out}; next: honed evaluate {args.out} DATA --split test")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.md, report.html, the plots and the model card (--html: the page only)."""
    if args.html:
        from honed.report.html import html_from_folder

        path = html_from_folder(args.run_dir)
        print(f"wrote {path}; open it in a browser (it needs no network)")
        return 0
    from honed.pipeline.commands import rerender_report  # imports torch

    path = rerender_report(args.run_dir)
    print(f"wrote {path} and {path.with_name('report.html')}")
    return 0
