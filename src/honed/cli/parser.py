"""The ``honed`` argument parser: one function per command, defaults read from the configs.

Every default that a config dataclass also has comes from the dataclass
(:func:`~honed.cli.defaults.field_default`), so ``honed run --help`` says what the library does.
Nothing here imports torch: the configs are plain dataclasses, and ``honed --help`` stays instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from honed.cli.defaults import enum_values, field_default
from honed.cli.index import add_cache_args, add_fusion_args, add_index_parsers, add_model_args
from honed.cli.serve import add_serve_parser
from honed.diagnosis.config import DiagnoseConfig
from honed.mining.config import MiningConfig, SamplingStrategy
from honed.mining.qgen import QueryGenConfig
from honed.pipeline.config import RunConfig
from honed.training.config import LossName, TrainConfig

__all__ = ["build_parser", "options_given"]


def _dims(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``honed`` command (the order here is the order of ``honed --help``)."""
    return _build()[0]


def options_given(argv: Sequence[str]) -> frozenset[str]:
    """The options (argparse dests) written on the command line ``argv``, defaults left out.

    ``honed run --resume RUN_DIR --epochs 5`` must apply ``--epochs 5`` even when 5 is the
    default, and leave alone every option not written: so the command line is parsed a second
    time with every default suppressed, which leaves only what was given.

    Example:
        >>> sorted(options_given(["run", "--resume", "runs/x", "--epochs", "5"]))
        ['command', 'epochs', 'resume']
    """
    parser, sub = _build()
    for command in [parser, *sub.choices.values()]:
        # _actions is argparse's list of a parser's arguments (no public accessor); not
        # set_defaults, whose parser-level defaults are always applied.
        for action in command._actions:
            action.default = argparse.SUPPRESS
    return frozenset(vars(parser.parse_args(list(argv))))


def _build() -> tuple[argparse.ArgumentParser, Any]:
    """The parser and its subparsers action (whose ``choices`` are the command parsers)."""
    parser = argparse.ArgumentParser(
        prog="honed",
        description="Fine-tune a sentence-embedding model for retrieval in one domain.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_compare(sub)
    _add_check(sub)
    _add_evaluate(sub)
    _add_mine(sub)
    _add_train(sub)
    _add_report(sub)
    _add_diagnose(sub)
    add_index_parsers(sub)
    add_serve_parser(sub)
    return parser, sub


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="the whole pipeline: baseline, mine, train, evaluate, report")
    p.add_argument(
        "data", nargs="?", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv"
    )
    p.add_argument("--out", help="run folder to create")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint"
    )
    p.add_argument(
        "--base", default=field_default(RunConfig, "base_model"), help="base model folder or hub id"
    )
    p.add_argument("--dev-fraction", type=float, default=field_default(RunConfig, "dev_fraction"))
    p.add_argument(
        "--min-dev-queries", type=int, default=field_default(RunConfig, "min_dev_queries")
    )
    p.add_argument("--seed", type=int, default=field_default(RunConfig, "seed"))
    p.add_argument("--no-bm25", action="store_true")  # RunConfig.bm25 is on by default
    p.add_argument(
        "--allow-leakage",
        action="store_true",
        help="keep training queries that duplicate test queries (test metrics then not clean)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing honed run folder")
    p.add_argument(
        "--time-budget",
        metavar="DURATION",
        help="plan the run to finish within DURATION (e.g. 20m, 2h, 90s): fewer epochs, then no "
        "second round, then a sample of the training queries, then a shorter max_seq_length; "
        "the plan is printed and written to config.json",
    )
    add_cache_args(p)
    p.add_argument(
        "--corpus-pairs",
        type=float,
        default=field_default(RunConfig, "corpus_pairs"),
        metavar="RATIO",
        help="add RATIO self-supervised rows per labelled row, cut from the corpus (title -> body, "
        "sentence -> rest; default 0: labelled rows only)",
    )
    p.add_argument(
        "--max-train-queries",
        type=int,
        default=field_default(RunConfig, "max_train_queries"),
        metavar="N",
        help="train on a seeded sample of N training queries (dev and test stay whole); training "
        "time is about proportional to N (default: all)",
    )
    _add_qgen_args(p)
    add_model_args(p)
    _add_encode_batch_size(p)
    _add_mining_args(p)
    _add_training_args(p)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="paired significance between models and/or TREC run files")
    p.add_argument("data")
    p.add_argument("systems", nargs="+", help="model folders / hub ids, or .trec/.run files")
    p.add_argument("--split", default="test")
    p.add_argument("--bm25", action="store_true", help="add BM25 as a system")
    # The paired tests of `honed run` (RunConfig.n_resamples, .seed): the same numbers here.
    p.add_argument("--n-resamples", type=int, default=field_default(RunConfig, "n_resamples"))
    p.add_argument("--seed", type=int, default=field_default(RunConfig, "seed"))
    p.add_argument("--out", help="write the comparisons as JSON here")
    add_model_args(p)
    add_cache_args(p)


def _add_check(sub: Any) -> None:
    p = sub.add_parser(
        "check", help="validate a BEIR folder, print its statistics and what honed run will do"
    )
    p.add_argument("data")
    # honed run's split options, with its defaults: check then says what that run will do.
    p.add_argument("--dev-fraction", type=float, default=field_default(RunConfig, "dev_fraction"))
    p.add_argument(
        "--min-dev-queries", type=int, default=field_default(RunConfig, "min_dev_queries")
    )
    p.add_argument("--seed", type=int, default=field_default(RunConfig, "seed"))
    p.add_argument("--allow-leakage", action="store_true", help="as honed run --allow-leakage")
    _add_user_queries(p)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model (and BM25) on a split at every dim")
    p.add_argument("model", help="model folder or hub id ('all-MiniLM-L6-v2' = the bundled base)")
    p.add_argument("data")
    p.add_argument("--split", default="test")
    p.add_argument("--dims", type=_dims, default=None)
    p.add_argument("--bm25", action="store_true", help="also evaluate BM25")
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="dense, BM25 and their fusion side by side, with paired tests and a deploy line",
    )
    add_fusion_args(p)
    p.add_argument(
        "--n-resamples",
        type=int,
        default=field_default(RunConfig, "n_resamples"),
        help="of the paired tests (--hybrid)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=field_default(RunConfig, "seed"),
        help="of the paired tests (--hybrid)",
    )
    p.add_argument("--out", help="write the metrics as JSON here")
    add_model_args(p)
    add_cache_args(p)
    _add_encode_batch_size(p)


def _add_mine(sub: Any) -> None:
    p = sub.add_parser("mine", help="mine hard negatives for the training split")
    p.add_argument("data")
    p.add_argument(
        "--out", required=True, help="mined.jsonl to write (mining_report.json goes beside it)"
    )
    p.add_argument("--base", default=field_default(RunConfig, "base_model"))
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=field_default(MiningConfig, "seed"))
    p.add_argument("--overwrite", action="store_true")
    add_model_args(p)
    add_cache_args(p)
    _add_encode_batch_size(p)
    _add_mining_args(p)


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="fine-tune on mined.jsonl or a pair file (query, positive, negative...)"
    )
    p.add_argument("rows", help="mined.jsonl from `honed mine`, or a .jsonl/.csv pair file")
    p.add_argument("--out", required=True, help="model folder to create")
    p.add_argument("--base", default=field_default(RunConfig, "base_model"))
    p.add_argument("--seed", type=int, default=field_default(TrainConfig, "seed"))
    p.add_argument("--overwrite", action="store_true")
    add_model_args(p)
    _add_training_args(p)


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="re-render report.md, report.html and plots from a run folder's report.json"
    )
    p.add_argument("run_dir")
    p.add_argument(
        "--html",
        action="store_true",
        help="write only report.html (one self-contained page: charts, query explorer)",
    )


def _add_diagnose(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose", help="measure whether a domain is worth fine-tuning (trains only with --probe)"
    )
    p.add_argument("data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv")
    p.add_argument(
        "--base", default=field_default(DiagnoseConfig, "base_model"),
        help="base model folder or hub id",
    )
    p.add_argument(
        "--probe",
        action="store_true",
        help="also fine-tune briefly on a slice and measure the gain",
    )
    p.add_argument(
        "--probe-rows",
        type=int,
        default=field_default(DiagnoseConfig, "probe_rows"),
        help="training rows of the probe",
    )
    p.add_argument("--out", help="also write the report (markdown) to this file")
    _add_user_queries(p)
    add_model_args(p)
    add_cache_args(p)


def _add_user_queries(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--queries",
        metavar="FILE",
        help="real user queries, one per line or JSONL with a \"text\" field (no labels): every "
        "split is compared with them, and a warning says when train/dev/test look unlike them",
    )


def _add_encode_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encode-batch-size",
        type=int,
        default=field_default(RunConfig, "encode_batch_size"),
        help="texts per forward pass when encoding (under torchrun the unit dealt to processes)",
    )


def _add_qgen_args(p: argparse.ArgumentParser) -> None:
    # Defaults stay None so that a --qgen-* option without --qgen-endpoint can be refused
    # (honed.cli.configs.qgen_config); the help shows QueryGenConfig's own defaults.
    g = p.add_argument_group("generated queries (optional; off unless --qgen-endpoint is given)")
    g.add_argument(
        "--qgen-endpoint",
        metavar="URL",
        help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1: an LLM writes a query "
        "for random documents; those whose document the base model ranks in its top 10 are added",
    )
    g.add_argument("--qgen-model", metavar="NAME", help="model name the endpoint serves")
    g.add_argument(
        "--qgen-docs",
        type=int,
        metavar="N",
        help=f"documents to use (default {field_default(QueryGenConfig, 'n_docs')})",
    )
    g.add_argument(
        "--qgen-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default "
        f"{field_default(QueryGenConfig, 'api_key_env')}; unset = no key)",
    )


def _add_mining_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mining")
    g.add_argument(
        "--negatives",
        type=int,
        default=field_default(MiningConfig, "num_negatives"),
        help="hard negatives per pair (default %(default)s)",
    )
    g.add_argument(
        "--depth",
        type=int,
        default=field_default(MiningConfig, "depth"),
        help="candidates per query (default %(default)s)",
    )
    g.add_argument(
        "--margin",
        type=float,
        default=field_default(MiningConfig, "margin"),
        help="drop candidates scoring above MARGIN x the positive's score "
        "(default %(default)s; 1 = off)",
    )
    strategy = field_default(MiningConfig, "strategy")
    g.add_argument(
        "--sampling", default=strategy, choices=enum_values(SamplingStrategy, first=strategy)
    )


def _add_training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    loss = field_default(TrainConfig, "loss")
    g.add_argument("--loss", default=loss, choices=enum_values(LossName, first=loss))
    g.add_argument("--epochs", type=int, default=field_default(TrainConfig, "epochs"))
    g.add_argument("--batch-size", type=int, default=field_default(TrainConfig, "batch_size"))
    g.add_argument(
        "--mini-batch-size",
        type=int,
        default=field_default(TrainConfig, "mini_batch_size"),
        help="cached loss: texts per forward pass",
    )
    g.add_argument("--lr", type=float, default=field_default(TrainConfig, "learning_rate"))
    g.add_argument(
        "--dims",
        type=_dims,
        default=field_default(TrainConfig, "dims"),
        help="Matryoshka dims, e.g. 384,256,128,64 (default: full, then powers of two down to 64)",
    )
    g.add_argument("--no-matryoshka", action="store_true")  # TrainConfig.matryoshka is on
    g.add_argument(
        "--max-seq-length", type=int, default=field_default(TrainConfig, "max_seq_length")
    )
    _add_training_flags(g)


def _add_training_flags(g: Any) -> None:
    """The rest of the training group: false-negative handling, the second round, the rotation."""
    g.add_argument(
        "--label-aware-batches",
        action="store_true",
        help="never put a known positive of a query in its batch as an in-batch negative",
    )
    g.add_argument(
        "--label-aware-loss",
        action="store_true",
        help="mask a query's known positives (and copies of its own positive) out of the loss "
        "instead of pushing them away; keeps the full batch (cached_mnrl only)",
    )
    g.add_argument(
        "--remine-epochs",
        type=int,
        default=field_default(TrainConfig, "remine_epochs"),
        help="`honed run` only (needs the corpus and a dev split): second round, mine again with "
        "the tuned model and train N more epochs, kept only if dev improves (0: no second round)",
    )
    g.add_argument(
        "--no-rotate",
        action="store_true",
        help="do not start from the base model rotated by the corpus's principal directions",
    )
