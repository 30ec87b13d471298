"""``RunConfig``: every setting of ``honed run``, validated, and written to ``config.json``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from honed.data.splits import DEFAULT_DEV_FRACTION, DEFAULT_MIN_DEV_QUERIES, DEFAULT_SEED, SplitRule
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.distributed import world_size
from honed.encoding.encoder import Precision
from honed.mining.config import MiningConfig
from honed.mining.qgen import QueryGenConfig
from honed.training.config import TrainConfig

__all__ = ["Notify", "RunConfig", "refuse_unsplit_options"]

Notify = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    """Everything ``honed run`` needs; written, resolved, to ``RUN_DIR/config.json``.

    ``allow_leakage``: keep training queries that duplicate (exactly or nearly) a test query.
    By default they are dropped from training and dev, so the test metrics stay clean.
    """

    data: str
    out: str
    base_model: str = "all-MiniLM-L6-v2"
    dev_fraction: float = DEFAULT_DEV_FRACTION
    min_dev_queries: int = DEFAULT_MIN_DEV_QUERIES
    seed: int = DEFAULT_SEED
    device: str = "auto"
    precision: Precision = Precision.AUTO
    encode_batch_size: int = 64
    bm25: bool = True
    allow_leakage: bool = False
    n_resamples: int = 10_000
    mining: MiningConfig = field(default_factory=MiningConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    overwrite: bool = False
    trust_remote_code: bool = False
    # On-disk embedding cache of the base model: "auto" = $HONED_CACHE_DIR or
    # ~/.cache/honed/embeddings, None = memory only (see honed.encoding.disk_cache).
    cache_dir: str | None = "auto"
    # Self-supervised corpus rows (honed.mining.selfsup) per labelled row; 0 = labelled rows only.
    corpus_pairs: float = 0.0
    # Queries written by an LLM behind an OpenAI-compatible endpoint (honed.mining.qgen); None = off.
    qgen: QueryGenConfig | None = None
    # Train on a seeded sample of this many training queries (after the dev split is carved, so
    # dev and test stay whole); None = all. Training time is about proportional to it.
    max_train_queries: int | None = None
    # --time-budget in seconds: the run is planned to fit it (honed.pipeline.budget); None = no plan.
    time_budget: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision(self.precision))
        if not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction: expected a value in (0, 1), got {self.dev_fraction}")
        if self.min_dev_queries < 1:
            raise ValueError(
                f"min_dev_queries: expected a positive integer, got {self.min_dev_queries}"
            )
        if self.encode_batch_size < 1:
            raise ValueError(
                f"encode_batch_size: expected a positive integer, got {self.encode_batch_size}"
            )
        if self.n_resamples < 100:
            raise ValueError(f"n_resamples: expected at least 100, got {self.n_resamples}")
        resolve_cache_dir(self.cache_dir)  # raises on ''
        n = self.max_train_queries
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(
                f"max_train_queries: expected a positive integer (training queries to sample) or "
                f"None for all, got {n!r}; fix: pass --max-train-queries 1 or more, or leave it out"
            )
        self._check_budget()
        if not 0.0 <= self.corpus_pairs <= 100.0:
            raise ValueError(
                f"corpus_pairs: expected a ratio in [0, 100] (self-supervised rows per labelled "
                f"row), got {self.corpus_pairs}"
            )

    def _check_budget(self) -> None:
        if self.time_budget is not None and not 0 < self.time_budget < float("inf"):
            raise ValueError(
                f"time_budget: expected seconds above zero or None, got {self.time_budget!r}"
            )

    @property
    def split_rule(self) -> SplitRule:
        """How the dev split is carved from train (:mod:`honed.data.splits`)."""
        return SplitRule(self.dev_fraction, self.min_dev_queries, self.seed)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Rebuild a config from ``config.json`` (extra keys such as ``honed_version`` ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in values.items() if k in known}
        training = dict(kwargs.get("training", {}))
        if training.get("dims") is not None:
            training["dims"] = tuple(training["dims"])
        kwargs["training"] = TrainConfig(**training)
        kwargs["mining"] = MiningConfig(**kwargs.get("mining", {}))
        if kwargs.get("qgen") is not None:
            kwargs["qgen"] = QueryGenConfig(**kwargs["qgen"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Enum):
                return value.value
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))


def refuse_unsplit_options(config: RunConfig) -> None:
    """Refuse, under ``torchrun``, the opt-in stages that run in one process only.

    Raises:
        ValueError: ``--corpus-pairs`` or ``--qgen`` in a launch of several processes.
    """
    options = [
        name
        for name, used in (("--corpus-pairs", config.corpus_pairs > 0), ("--qgen", config.qgen))
        if used
    ]
    if options and world_size() > 1:
        raise ValueError(
            f"honed run under torchrun: expected none of {', '.join(options)} (they run in one "
            f"process only), got them in a launch of {world_size()}; fix: leave them out, or run "
            "without torchrun"
        )
