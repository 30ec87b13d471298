"""``honed run``: the whole pipeline, or the rest of an interrupted one (``--resume``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honed.cli.configs import run_config
from honed.encoding.distributed import is_main_process
from honed.evaluation.deployment import verdict_headline

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["cmd_run"]


def _say(message: str) -> None:
    print(f"[honed] {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline; print the verdict, what was written and what to do next."""
    if args.resume:
        changes = resume_changes(args)  # bad values refused before torch is imported
        from honed.pipeline.runner import resume_pipeline  # imports torch

        result = resume_pipeline(args.resume, notify=_say, changes=changes)
        args.out = args.resume
        return _print_run(args, result)
    if not args.data or not args.out:
        raise ValueError(
            "honed run needs DATA and --out RUN_DIR (or --resume RUN_DIR); see honed run --help"
        )
    config = run_config(args)  # refuses a bad option at once, before torch is imported
    from honed.pipeline.runner import run_pipeline

    return _print_run(args, run_pipeline(config, notify=_say))


#: ``honed run`` option (argparse dest) -> the RunConfig setting it sets (dotted path).
DEST_FIELDS = {
    "data": "data", "base": "base_model", "dev_fraction": "dev_fraction",
    "min_dev_queries": "min_dev_queries", "seed": "seed", "no_bm25": "bm25",
    "allow_leakage": "allow_leakage", "overwrite": "overwrite", "cache_dir": "cache_dir",
    "no_cache": "cache_dir", "corpus_pairs": "corpus_pairs", "qgen_endpoint": "qgen",
    "qgen_model": "qgen", "qgen_docs": "qgen", "qgen_key_env": "qgen", "device": "device",
    "precision": "precision", "trust_remote_code": "trust_remote_code",
    "max_train_queries": "max_train_queries", "encode_batch_size": "encode_batch_size",
    "time_budget": "time_budget",
    "negatives": "mining.num_negatives", "depth": "mining.depth", "margin": "mining.margin",
    "sampling": "mining.strategy", "loss": "training.loss", "epochs": "training.epochs",
    "batch_size": "training.batch_size", "mini_batch_size": "training.mini_batch_size",
    "lr": "training.learning_rate", "dims": "training.dims", "no_matryoshka": "training.matryoshka",
    "max_seq_length": "training.max_seq_length",
    "label_aware_batches": "training.label_aware_batches",
    "label_aware_loss": "training.label_aware_loss", "remine_epochs": "training.remine_epochs",
    "no_rotate": "training.rotate",
}


def resume_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings written with ``--resume`` (dotted path -> value), as the run's config takes them.

    Only the options on the command line count (``args.given``, see
    :func:`honed.cli.parser.options_given`), defaults never. Their values go through the same
    :func:`~honed.cli.configs.run_config` as a new run's, so they are validated the same way.
    """
    from honed.pipeline.config import RunConfig

    given = set(getattr(args, "given", ())) - {"command", "resume", "debug"}
    run_dir = Path(args.resume)
    if "out" in given and Path(args.out).resolve() != run_dir.resolve():
        raise ValueError(
            f"--out {args.out} with --resume {args.resume}: a resume continues RUN_DIR in place; "
            f"fix: leave out --out, or start a new run with --out {args.out} (without --resume)"
        )
    config_path = run_dir / "config.json"
    if not given or not config_path.is_file():  # not a run folder: resume_pipeline says so
        return {}
    old = RunConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    if "data" in given and Path(args.data).resolve() == Path(old.data).resolve():
        given.discard("data")  # the same folder, written another way
    placed = argparse.Namespace(**{**vars(args), "data": args.data or old.data, "out": old.out})
    fresh = run_config(placed).to_dict()
    changes: dict[str, Any] = {}
    for dest in sorted(given - {"out"}):
        path = DEST_FIELDS[dest]
        node: Any = fresh
        for part in path.split("."):
            node = node[part] if isinstance(node, dict) else None
        changes[path] = node
    return changes


def _print_run(args: argparse.Namespace, result: RunResult) -> int:
    if not is_main_process():  # under torchrun: the first process prints the summary
        return 0
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
