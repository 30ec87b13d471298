"""honed: fine-tune a sentence-embedding model into a retrieval model for one domain."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names -> the module that defines them. Loaded on first use so that `import honed` (and
# `honed --help`) does not import torch.
_EXPORTS = {
    "load_beir": "honed.data", "carve_dev": "honed.data", "BeirData": "honed.data",
    "DataError": "honed.data", "check_dataset": "honed.check",
    "load_pairs": "honed.pairs", "TrainPair": "honed.pairs",
    "evaluate": "honed.evaluate", "per_query": "honed.evaluate",
    "search": "honed.retrieve", "truncate": "honed.retrieve", "BM25Retriever": "honed.retrieve",
    "EmbeddingCache": "honed.encode", "load_model": "honed.encode",
    "MiningConfig": "honed.mine", "mine_hard_negatives": "honed.mine",
    "TrainConfig": "honed.train", "LossName": "honed.train", "train_model": "honed.train",
    "RunConfig": "honed.pipeline", "run_pipeline": "honed.pipeline",
    "Index": "honed.index", "PgIndex": "honed.pgstore", "plan": "honed.plan", "fuse": "honed.fuse",
    "compare": "honed.compare", "diagnose": "honed.diagnose", "resume_pipeline": "honed.pipeline",
    "evaluate_model": "honed.api", "mine": "honed.api", "train": "honed.api",
    "FusionConfig": "honed.fuse", "evaluate_hybrid": "honed.hybrid",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'honed' has no attribute {name!r}")
