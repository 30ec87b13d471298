"""Parsed arguments -> the library's config dataclasses; the only place options become settings.

The configs validate themselves (``--margin 1.5`` fails in :class:`MiningConfig`), so this module
checks only what no single config can see: the ``--qgen-*`` options that need ``--qgen-endpoint``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from honed.cli.index import cache_dir_of
from honed.mining.config import MiningConfig
from honed.mining.qgen import QueryGenConfig
from honed.pipeline.budget import parse_duration
from honed.pipeline.config import RunConfig
from honed.training.config import TrainConfig

if TYPE_CHECKING:
    from honed.diagnosis.config import DiagnoseConfig

__all__ = ["diagnose_config", "mining_config", "qgen_config", "run_config", "train_config"]


def mining_config(args: argparse.Namespace) -> MiningConfig:
    """The miner's settings of ``honed mine`` and ``honed run``."""
    return MiningConfig(
        num_negatives=args.negatives,
        depth=args.depth,
        margin=args.margin,
        strategy=args.sampling,
        seed=args.seed,
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The fine-tuning settings of ``honed train`` and ``honed run``."""
    return TrainConfig(
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        mini_batch_size=args.mini_batch_size,
        learning_rate=args.lr,
        dims=args.dims,
        matryoshka=not args.no_matryoshka,
        max_seq_length=args.max_seq_length,
        precision=args.precision,
        seed=args.seed,
        label_aware_batches=args.label_aware_batches,
        label_aware_loss=args.label_aware_loss,
        rotate=not args.no_rotate,
        remine_epochs=args.remine_epochs,
    )


def qgen_config(args: argparse.Namespace) -> QueryGenConfig | None:
    """The query-generator config, or None when --qgen-endpoint is not given."""
    flags = {
        "--qgen-model": args.qgen_model,
        "--qgen-docs": args.qgen_docs,
        "--qgen-key-env": args.qgen_key_env,
    }
    given = [flag for flag, value in flags.items() if value is not None]
    if args.qgen_endpoint is None:
        if given:
            raise ValueError(
                f"{given[0]}: only used with --qgen-endpoint; fix: add --qgen-endpoint URL, or "
                f"leave out {given[0]}"
            )
        return None
    if args.qgen_model is None:
        raise ValueError(
            "--qgen-model: required with --qgen-endpoint (got none); fix: add --qgen-model NAME, "
            "a model the server serves (GET URL/models lists them)"
        )
    # None = not given: the option's default is QueryGenConfig's own (the parser leaves it None
    # so that a --qgen-* option without --qgen-endpoint can be refused above).
    optional = {"n_docs": args.qgen_docs, "api_key_env": args.qgen_key_env, "seed": args.seed}
    return QueryGenConfig(
        endpoint=args.qgen_endpoint,
        model=args.qgen_model,
        **{k: v for k, v in optional.items() if v is not None},
    )


def run_config(args: argparse.Namespace) -> RunConfig:
    """The whole ``honed run`` config (DATA and --out already checked by the handler)."""
    return RunConfig(
        data=args.data,
        out=args.out,
        base_model=args.base,
        dev_fraction=args.dev_fraction,
        min_dev_queries=args.min_dev_queries,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        bm25=not args.no_bm25,
        allow_leakage=args.allow_leakage,
        mining=mining_config(args),
        training=train_config(args),
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
        cache_dir=cache_dir_of(args),
        corpus_pairs=args.corpus_pairs,
        qgen=qgen_config(args),
        encode_batch_size=args.encode_batch_size,
        time_budget=parse_duration(args.time_budget) if args.time_budget is not None else None,
        max_train_queries=args.max_train_queries,
    )


def diagnose_config(args: argparse.Namespace) -> DiagnoseConfig:
    """The settings of ``honed diagnose``."""
    # Here, not at the top: the diagnoser module imports the trainer (torch) for its probe.
    from honed.diagnosis.config import DiagnoseConfig

    return DiagnoseConfig(
        data=args.data,
        base_model=args.base,
        probe=args.probe,
        probe_rows=args.probe_rows,
        device=args.device,
        precision=args.precision,
        trust_remote_code=args.trust_remote_code,
        cache_dir=cache_dir_of(args),
        user_queries=getattr(args, "queries", None),
    )
