"""Choosing a fusion on the dev split: the grid of methods x dense weights, and its tie rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from honed.evaluation.metrics import evaluate
from honed.retrieval.fusion import (
    DEFAULT_WEIGHTS,
    RUN_DEPTH,
    TIE_TOLERANCE,
    FusionConfig,
    FusionMethod,
    as_fusion_method,
    fuse,
)
from honed.types import Qrels, Run

__all__ = ["choose_fusion"]


def choose_fusion(
    qrels_dev: Qrels,
    dense_dev: Run,
    bm25_dev: Run,
    methods: Sequence[FusionMethod | str] = ("rrf", "minmax", "zscore"),
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    k: int = 60,
    depth: int = RUN_DEPTH,
    source: str = "dev",
) -> FusionConfig:
    """The fusion method and dense weight with the best dev nDCG@10 (grid search).

    Every ``method x weight`` is tried as ``fuse([dense, bm25], method, [w, 1 - w])``. Settings
    within :data:`TIE_TOLERANCE` of the best count as tied; among them RRF is preferred (it
    depends on no score scale, so it transfers best to unseen queries), then minmax, then
    zscore, and then the larger dense weight (the dense model is the one tuned on this domain).

    Args:
        qrels_dev: the dev split's judgments; the test split must not be used to choose.
        dense_dev: the dense model's run on the dev queries.
        bm25_dev: BM25's run on the dev queries.
        methods: fusion methods to try.
        weights: dense weights to try, each in ``[0, 1]``.
        k: the RRF constant.
        depth: documents kept per query.
        source: where the dev split came from, recorded in the result (``"dev of RUN_DIR"``).

    Returns:
        A :class:`~honed.retrieval.fusion.FusionConfig` with the chosen setting, its dev
        nDCG@10 and the whole grid (``source="dev"``).

    Raises:
        ValueError: no methods or weights, an unknown method, a weight outside ``[0, 1]``,
            or see :func:`fuse` and :func:`honed.evaluation.metrics.evaluate`.

    Example:
        >>> qrels = {"q1": {"d2": 1}}
        >>> choice = choose_fusion(qrels, {"q1": {"d1": 0.9, "d2": 0.8}}, {"q1": {"d2": 5.0}})
        >>> choice.method.value, choice.dense_weight
        ('rrf', 0.9)
    """
    if not methods:
        raise ValueError("methods: expected at least one fusion method, got none")
    if not weights:
        raise ValueError("weights: expected at least one dense weight, got none")
    bad = [w for w in weights if not 0.0 <= float(w) <= 1.0]
    if bad:
        raise ValueError(
            f"weights: each dense weight must be in [0, 1] (BM25 gets 1 - weight), got {bad}"
        )
    tried = [as_fusion_method(m) for m in methods]
    grid: list[dict[str, Any]] = []
    for method in tried:
        for weight in weights:
            run = fuse([dense_dev, bm25_dev], method, [weight, 1.0 - weight], k, depth)
            score = evaluate(qrels_dev, run, ["ndcg@10"])["ndcg@10"]
            grid.append({"method": method.value, "weight": float(weight), "dev_ndcg@10": score})
    best = max(g["dev_ndcg@10"] for g in grid)
    order = list(FusionMethod)
    tied = [g for g in grid if g["dev_ndcg@10"] >= best - TIE_TOLERANCE]
    pick = min(tied, key=lambda g: (order.index(FusionMethod(g["method"])), -g["weight"]))
    return FusionConfig(
        method=pick["method"],
        dense_weight=pick["weight"],
        k=k,
        depth=depth,
        source=source,
        dev_ndcg10=pick["dev_ndcg@10"],
        grid=tuple(grid),
    )
