"""``honed run``: the whole pipeline, or the rest of an interrupted one (``--resume``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from honed.cli.configs import run_config
from honed.evaluation.deployment import verdict_headline

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["cmd_run"]


def _say(message: str) -> None:
    print(f"[honed] {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline; print the verdict, what was written and what to do next."""
    from honed.pipeline.runner import resume_pipeline, run_pipeline  # imports torch

    if args.resume:
        result = resume_pipeline(args.resume, notify=_say)
        args.out = args.resume
        return _print_run(args, result)
    if not args.data or not args.out:
        raise ValueError(
            "honed run needs DATA and --out RUN_DIR (or --resume RUN_DIR); see honed run --help"
        )
    result = run_pipeline(run_config(args), notify=_say)
    return _print_run(args, result)


def _print_run(args: argparse.Namespace, result: RunResult) -> int:
    print()
    print(verdict_headline(result.verdict))  # the first line: worth it, not confirmed, not worth it
    for sentence in result.verdict["sentences"]:
        print(f"  {sentence}")
    total = sum(result.timings.values())
    print(
        f"\nwrote {args.out}/report.html, report.md, report.json, model/, metrics/, mined.jsonl "
        f"({total / 60:.1f} min)"
    )
    print(
        f"next: open {args.out}/report.html (or report.md), or load the model with "
        f'SentenceTransformer("{args.out}/model")'
    )
    return 0
