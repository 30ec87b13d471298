"""honed: fine-tune a sentence-embedding model into a retrieval model for one domain."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it, loaded on first use so that `import honed` (and
# `honed --help`) does not import torch. No public name equals a subpackage's name, so importing
# a subpackage never shadows a function (`honed.evaluate` stays the function).
_EXPORTS = {
    # data
    "BeirData": "honed.data.beir", "DataError": "honed.data.errors", "load_beir": "honed.data.beir",
    "carve_dev": "honed.data.splits", "check_dataset": "honed.data.check",
    "TrainPair": "honed.data.pairs", "load_pairs": "honed.data.pairs",
    # encoding
    "EmbeddingCache": "honed.encoding.encoder", "load_model": "honed.encoding.encoder",
    "truncate": "honed.encoding.dims",
    # retrieval
    "search": "honed.retrieval.dense", "BM25Retriever": "honed.retrieval.bm25",
    "fuse": "honed.retrieval.fusion", "FusionConfig": "honed.retrieval.fusion",
    # evaluation
    "evaluate": "honed.evaluation.metrics", "per_query": "honed.evaluation.metrics",
    "compare": "honed.evaluation.significance", "evaluate_hybrid": "honed.evaluation.hybrid",
    # mining and training
    "MiningConfig": "honed.mining.config",
    "mine_hard_negatives": "honed.mining.hard_negatives",
    "TrainConfig": "honed.training.config", "LossName": "honed.training.config",
    "train_model": "honed.training.trainer",
    # index
    "Index": "honed.index.index", "PgIndex": "honed.index.postgres.store",
    "plan": "honed.index.planner",
    # pipeline, diagnosis
    "RunConfig": "honed.pipeline.config", "run_pipeline": "honed.pipeline.runner",
    "resume_pipeline": "honed.pipeline.runner",
    "evaluate_model": "honed.pipeline.commands", "mine": "honed.pipeline.commands",
    "train": "honed.pipeline.commands",
    "diagnose": "honed.diagnosis.diagnoser",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'honed' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
