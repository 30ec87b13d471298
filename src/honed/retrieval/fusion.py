"""Hybrid retrieval: fuse a dense run with a BM25 run (choosing how is :mod:`honed.evaluation.fusion_choice`).

Three fusion methods, each computed per query over the union of the documents the runs return:

- ``rrf`` (reciprocal rank fusion, Cormack et al. 2009): ``sum_i w_i / (k + rank_i(d))`` with
  1-based ranks in trec_eval order (score descending, doc id descending). It uses only ranks,
  so it needs no score calibration; ``k = 60`` is the paper's value (it damps the gap between
  rank 1 and rank 2: 1/61 vs 1/62, not 1 vs 1/2).
- ``minmax``: each run's scores are scaled to ``[0, 1]`` (``(x - min) / (max - min)``), then
  combined as ``sum_i w_i * norm_i(d)``.
- ``zscore``: each run's scores become ``(x - mean) / std`` (population std, as numpy's default),
  then combined the same way.

A document that a run did not return contributes 0 for that run in every method. For ``rrf``
and ``minmax`` 0 is the lowest possible contribution. For ``zscore`` 0 is the run's *mean*
score, so a missing document ranks above the documents the run scored below its mean; this is
what ranx does (``ranx.fuse(runs, norm="zmuv", method="wsum")`` fills a missing document with
0.0 after normalising), and we keep it so the numbers agree with ranx. A spread (``max - min``
or ``std``) below 1e-9 is treated as 1e-9, also as ranx does: a run that gives every document of
a query the same score then contributes 0 to each of them instead of dividing by zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from honed.retrieval.ranking import ranked_ids
from honed.types import Run

__all__ = [
    "DEFAULT_WEIGHTS",
    "RUN_DEPTH",
    "FusionConfig",
    "FusionMethod",
    "as_fusion_method",
    "fuse",
    "fusion_from_run",
]

DEFAULT_WEIGHTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Dense weights tried by :func:`honed.evaluation.fusion_choice.choose_fusion` (BM25 gets ``1 - weight``)."""

MIN_SPREAD = 1e-9
"""Smallest ``max - min`` (minmax) or standard deviation (zscore) divided by, as in ranx."""

RUN_DEPTH = 100
"""Documents per run that ``honed run`` fuses: its dense and BM25 runs are top 100, as is the fusion."""

TIE_TOLERANCE = 1e-12
"""Dev scores within this of the best count as tied in :func:`choose_fusion`."""


class FusionMethod(str, Enum):
    """How :func:`fuse` combines runs: reciprocal ranks, or min-max / z-score normalised scores."""

    RRF = "rrf"
    MINMAX = "minmax"
    ZSCORE = "zscore"


def as_fusion_method(method: FusionMethod | str) -> FusionMethod:
    """Coerce ``method`` to :class:`FusionMethod`, naming the allowed values when it is not one."""
    try:
        return FusionMethod(method)
    except ValueError:
        allowed = ", ".join(m.value for m in FusionMethod)
        raise ValueError(f"method: expected one of {allowed}, got {method!r}") from None


def _weights(weights: Sequence[float] | None, n_runs: int) -> tuple[float, ...]:
    """Validated weights, one per run; equal shares ``1 / n_runs`` when None."""
    if weights is None:
        return (1.0 / n_runs,) * n_runs
    values = tuple(float(w) for w in weights)
    if len(values) != n_runs:
        raise ValueError(
            f"weights: expected one weight per run ({n_runs}), got {len(values)}: {list(values)}"
        )
    if any(not math.isfinite(w) or w < 0 for w in values):
        raise ValueError(
            f"weights: expected finite non-negative numbers, got {list(values)}; "
            "fix: give each run a weight >= 0"
        )
    if not any(values):
        raise ValueError(
            f"weights: all {n_runs} weights are 0, so every fused score would be 0; "
            "fix: give at least one run a positive weight"
        )
    return values


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _rrf(qid: str, scores: Mapping[str, float], k: int) -> dict[str, float]:
    """``1 / (k + rank)`` of each document, ranks 1-based in trec_eval order."""
    return {doc: 1.0 / (k + rank) for rank, doc in enumerate(ranked_ids(qid, dict(scores), None), 1)}


def _minmax(qid: str, scores: Mapping[str, float], k: int) -> dict[str, float]:
    """Scores scaled to ``[0, 1]``; ``k`` is unused (same signature as :func:`_rrf`)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    spread = max(high - low, MIN_SPREAD)
    return {doc: (s - low) / spread for doc, s in scores.items()}


def _zscore(qid: str, scores: Mapping[str, float], k: int) -> dict[str, float]:
    """``(x - mean) / std`` with the population std; ``k`` is unused."""
    if not scores:
        return {}
    n = len(scores)
    mean = math.fsum(scores.values()) / n
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores.values()) / n)
    spread = max(std, MIN_SPREAD)
    return {doc: (s - mean) / spread for doc, s in scores.items()}


_NORMALISE: dict[FusionMethod, Callable[[str, Mapping[str, float], int], dict[str, float]]] = {
    FusionMethod.RRF: _rrf,
    FusionMethod.MINMAX: _minmax,
    FusionMethod.ZSCORE: _zscore,
}


def fuse(
    runs: Sequence[Run],
    method: FusionMethod | str,
    weights: Sequence[float] | None = None,
    k: int = 60,
    depth: int = 100,
) -> Run:
    """Fuse retrieval runs into one, per query, keeping the top ``depth`` documents.

    See the module docstring for the formulas and what a document missing from a run gets.
    Queries are the union of the runs' queries; a run without a query adds nothing to it.

    Args:
        runs: two or more runs (``qid -> docid -> score``), e.g. ``[dense, bm25]``.
        method: ``"rrf"``, ``"minmax"`` or ``"zscore"`` (or a :class:`FusionMethod`).
        weights: one non-negative weight per run, not all 0; None gives equal shares
            ``1 / len(runs)``. They are used as given (not rescaled to sum to 1).
        k: the RRF constant (ignored by the other methods).
        depth: documents kept per query, best first (ties broken by doc id descending).

    Returns:
        The fused run; its dicts are new (the inputs are not modified).

    Raises:
        ValueError: fewer than two runs, an unknown method, bad weights, or a ``k`` or
            ``depth`` that is not a positive integer.

    Example:
        >>> dense = {"q1": {"d1": 0.9, "d2": 0.5}}
        >>> bm25 = {"q1": {"d2": 12.0, "d3": 7.0}}
        >>> fuse([dense, bm25], "minmax", weights=[0.6, 0.4])
        {'q1': {'d1': 0.6, 'd2': 0.4, 'd3': 0.0}}
    """
    if len(runs) < 2:
        raise ValueError(f"runs: expected at least two runs to fuse, got {len(runs)}")
    chosen = as_fusion_method(method)
    shares = _weights(weights, len(runs))
    _positive_int("k", k)
    _positive_int("depth", depth)
    normalise = _NORMALISE[chosen]
    fused_run: Run = {}
    for qid in sorted(set().union(*runs)):
        fused: dict[str, float] = {}
        for weight, run in zip(shares, runs):
            for doc, value in normalise(qid, run.get(qid, {}), k).items():
                fused[doc] = fused.get(doc, 0.0) + weight * value
        fused_run[qid] = {doc: fused[doc] for doc in ranked_ids(qid, fused, depth)}
    return fused_run


@dataclass(frozen=True)
class FusionConfig:
    """How to fuse a dense run with a BM25 run; an index records it in ``index.json``.

    Attributes:
        method: the fusion method (coerced from ``"rrf"``, ``"minmax"`` or ``"zscore"``).
        dense_weight: the dense run's weight in ``[0, 1]``; BM25 gets ``1 - dense_weight``.
        k: the RRF constant (ignored by the other methods).
        depth: documents of each run fed to the fusion. ``minmax`` and ``zscore`` normalise over
            the documents a run returned, so the same depth is needed to reproduce a score;
            :data:`RUN_DEPTH` is what ``honed run`` evaluated.
        source: where the setting came from: ``"dev of RUN_DIR"``, ``"dev of DATA"`` or ``"user"``.
        dev_ndcg10: dev nDCG@10 of the setting when it was chosen on dev, else None.
        grid: when chosen on dev, every setting tried (``{"method", "weight", "dev_ndcg@10"}``,
            in the order tried); not written to ``index.json``.

    Raises:
        ValueError: an unknown method, a weight outside ``[0, 1]``, or a ``k``/``depth`` that is
            not a positive integer.

    Example:
        >>> FusionConfig("minmax", 0.75).fuse({"q": {"a": 1.0, "b": 0.5}}, {"q": {"b": 9.0, "c": 3.0}})
        {'q': {'a': 0.75, 'b': 0.25, 'c': 0.0}}
    """

    method: FusionMethod
    dense_weight: float
    k: int = 60
    depth: int = RUN_DEPTH
    source: str = "user"
    dev_ndcg10: float | None = None
    grid: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", as_fusion_method(self.method))
        weight = self.dense_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
            raise ValueError(
                f"dense_weight: expected a number in [0, 1] (BM25 gets 1 - weight), got {weight!r}"
            )
        object.__setattr__(self, "dense_weight", float(weight))
        _positive_int("k", self.k)
        _positive_int("depth", self.depth)

    def fuse(self, dense: Run, bm25: Run, depth: int | None = None) -> Run:
        """``fuse([dense, bm25], ...)`` with this setting, keeping ``depth`` (default ``self.depth``)."""
        weights = [self.dense_weight, 1.0 - self.dense_weight]
        return fuse([dense, bm25], self.method, weights, self.k, depth or self.depth)

    def describe(self) -> str:
        """E.g. ``"zscore, dense weight 0.7 (dev of runs/scifact)"``."""
        return f"{self.method.value}, dense weight {self.dense_weight:g} ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for ``index.json``."""
        return {
            "method": self.method.value,
            "dense_weight": self.dense_weight,
            "k": self.k,
            "depth": self.depth,
            "source": self.source,
            "dev_ndcg10": self.dev_ndcg10,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FusionConfig:
        """The inverse of :meth:`to_dict`; raises ValueError naming a missing or bad field."""
        missing = [key for key in ("method", "dense_weight") if key not in values]
        if missing:
            raise ValueError(
                f"fusion: expected the fields method and dense_weight, missing {missing}"
            )
        known = {"method", "dense_weight", "k", "depth", "source", "dev_ndcg10"}
        return cls(**{key: value for key, value in values.items() if key in known})


    def to_record(self) -> dict[str, Any]:
        """The run folder's record (``metrics/evidence.json`` ``"fusion"``), in its original keys."""
        return {
            "method": self.method.value,
            "weight": self.dense_weight,
            "dev_ndcg10": self.dev_ndcg10,
            "grid": list(self.grid),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str) -> FusionConfig:
        """The inverse of :meth:`to_record` (``source`` says where the record came from)."""
        return cls(
            method=record["method"],
            dense_weight=record["weight"],
            source=source,
            dev_ndcg10=record.get("dev_ndcg10"),
            grid=tuple(record.get("grid", ())),
        )


def fusion_from_run(run_dir: str | Path) -> FusionConfig:
    """The fusion a finished ``honed run`` chose on its dev split (``metrics/evidence.json``).

    Raises:
        FileNotFoundError: ``run_dir`` or its ``metrics/evidence.json`` does not exist.
        ValueError: the run recorded no fusion (it ran with ``--no-bm25``, or before hybrid).
    """
    folder = Path(run_dir)
    file = folder / "metrics" / "evidence.json"
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: missing, so {folder} is not a finished honed run; fix: pass the --out "
            "folder of a finished `honed run`, or give --fusion METHOD --dense-weight W"
        )
    try:
        fusion = json.loads(file.read_text(encoding="utf-8")).get("fusion")
    except (ValueError, AttributeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: unreadable JSON ({err!s:.60}); fix: re-run honed run") from None
    if not fusion:
        raise ValueError(
            f"{file}: records no fusion (the run had --no-bm25, or predates hybrid retrieval); "
            "fix: give --fusion METHOD --dense-weight W (e.g. --fusion zscore --dense-weight 0.7)"
            ", or re-run honed run with BM25"
        )
    return FusionConfig.from_record(fusion, source=f"dev of {folder}")
