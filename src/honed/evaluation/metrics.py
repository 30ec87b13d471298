"""Ranking metrics over qrels and runs, matching trec_eval to 1e-6.

Qrels and runs are plain nested dicts, as in ranx and pytrec_eval:

- ``Qrels``: ``qid -> docid -> graded relevance`` (``0`` = judged not relevant).
- ``Run``: ``qid -> docid -> score`` (higher is better).

Every metric follows trec_eval's conventions, so numbers here agree with papers that report
trec_eval / pytrec_eval figures:

- A run is ranked by score descending, ties broken by doc id *descending* (trec_eval's order),
  then cut at ``k``.
- A document is relevant for the binary metrics (recall, precision, MAP, MRR) when its
  relevance is ``>= 1``; nDCG uses the relevance itself as the gain (negative levels count 0).
- Scores are averaged over the queries of the qrels that have at least one relevant document.
  Such a query that is missing from the run scores 0 (trec_eval would silently skip it, which
  flatters a run that drops hard queries). Run queries absent from the qrels are ignored.

| name           | trec_eval measure          |
|----------------|----------------------------|
| ``ndcg@k``     | ``ndcg_cut_k``             |
| ``ndcg``       | ``ndcg``                   |
| ``recall@k``   | ``recall_k``               |
| ``precision@k``| ``P_k``                    |
| ``map@k``      | ``map_cut_k``              |
| ``map``        | ``map``                    |
| ``mrr@k``      | ``recip_rank`` on the top k|
| ``mrr``        | ``recip_rank``             |
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from honed.retrieval.ranking import ranked_ids
from honed.types import Qrels, Run

DEFAULT_METRICS: tuple[str, ...] = (
    "ndcg@10",
    "mrr@10",
    "recall@1",
    "recall@5",
    "recall@10",
    "recall@100",
    "map@100",
)

_ACCEPTED_FORMS = (
    "ndcg@k, mrr@k, recall@k, map@k, precision@k (k a positive integer, case-insensitive), "
    "or ndcg, mrr, map for the whole run"
)
_METRIC_RE = re.compile(r"^(ndcg|mrr|recall|map|precision)(?:@(\d+))?$", re.IGNORECASE)
_NEEDS_K = frozenset({"recall", "precision"})


@dataclass(frozen=True)
class _Metric:
    """A parsed metric name: ``family`` in ``_METRIC_RE`` and cutoff ``k`` (None = whole run)."""

    name: str
    family: str
    k: int | None


def _parse_metric(name: str) -> _Metric:
    """Parse one metric string such as ``"nDCG@10"`` into a :class:`_Metric`."""
    match = _METRIC_RE.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"unknown metric {name!r}: expected one of {_ACCEPTED_FORMS}")
    family = match.group(1).lower()
    k = None if match.group(2) is None else int(match.group(2))
    if k is None and family in _NEEDS_K:
        raise ValueError(
            f"metric {name!r} needs a cutoff, e.g. '{family}@10': expected one of {_ACCEPTED_FORMS}"
        )
    if k == 0:
        raise ValueError(
            f"metric {name!r} has cutoff 0: k must be a positive integer; expected one of "
            f"{_ACCEPTED_FORMS}"
        )
    return _Metric(name=name, family=family, k=k)


def _parse_metrics(metrics: Sequence[str]) -> list[_Metric]:
    """Parse and validate the ``metrics`` argument of :func:`evaluate` and :func:`per_query`."""
    if isinstance(metrics, str):
        raise TypeError(
            f"metrics must be a sequence of metric names, got the string {metrics!r}; "
            f"wrap it in a list: [{metrics!r}]"
        )
    parsed = [_parse_metric(name) for name in metrics]
    if not parsed:
        raise ValueError(f"metrics is empty: pass at least one of {_ACCEPTED_FORMS}")
    return parsed


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks ``1..n``."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))  # (n,)


def _query_scores(
    judged: dict[str, int], ranking: list[str], metrics: list[_Metric]
) -> list[float]:
    """All metric values for one query, from a single ranking."""
    gains = np.array([judged.get(doc_id, 0) for doc_id in ranking], dtype=np.float64)  # (n,)
    relevant = gains >= 1  # (n,)
    hits = np.cumsum(relevant)  # (n,) relevant docs within the top 1..n
    ranks = np.arange(1, len(ranking) + 1)  # (n,)
    # Precision at each relevant rank (0 elsewhere): the summands of average precision.
    precision_at_rel = np.where(relevant, hits / ranks, 0.0)  # (n,)
    n_rel = sum(1 for rel in judged.values() if rel >= 1)
    ideal = np.sort(np.array([rel for rel in judged.values() if rel > 0], dtype=np.float64))[::-1]
    ideal_dcg = np.cumsum(ideal * _discounts(len(ideal)))  # (n_graded,) ideal DCG at 1..n_graded
    gains = np.maximum(gains, 0.0) * _discounts(len(gains))  # (n,) discounted gains
    # Cumulative sums for the run and the ideal alike: the same arithmetic on the same numbers,
    # so a perfect ranking scores exactly 1.0 (summing the two differently gave 1.0000000000000002).
    dcg = np.cumsum(gains)  # (n,) DCG at 1..n

    values = []
    for metric in metrics:
        k = len(ranking) if metric.k is None else metric.k
        top = min(k, len(ranking))
        n_hits = int(hits[top - 1]) if top else 0
        if metric.family == "recall":
            values.append(n_hits / n_rel)
        elif metric.family == "precision":
            values.append(n_hits / k)
        elif metric.family == "map":
            values.append(float(precision_at_rel[:top].sum()) / n_rel)
        elif metric.family == "mrr":
            first = int(np.argmax(relevant[:top])) if n_hits else -1
            values.append(1.0 / (first + 1) if n_hits else 0.0)
        else:  # ndcg; the ideal ranking is cut at the same k as the run (trec_eval ndcg_cut)
            ideal_top = len(ideal) if metric.k is None else min(metric.k, len(ideal))
            values.append((float(dcg[top - 1]) if top else 0.0) / float(ideal_dcg[ideal_top - 1]))
    return values


def per_query(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """Score every evaluated query of ``run`` against ``qrels``.

    The evaluated queries are those of ``qrels`` with at least one relevant document
    (relevance ``>= 1``); one missing from ``run`` scores 0 on every metric. Neither input is
    modified.

    Args:
        qrels: ``qid -> docid -> graded relevance``.
        run: ``qid -> docid -> score``, higher is better.
        metrics: metric names such as ``"ndcg@10"``; see the module docstring.

    Returns:
        ``metric name -> qid -> value``, keyed by the metric strings exactly as given.

    Raises:
        ValueError: a metric name is not recognised, ``metrics`` is empty, no query of ``qrels``
            has a relevant document, or a run score is NaN.
        TypeError: ``metrics`` is a single string instead of a sequence of strings.

    Example:
        >>> per_query({"q1": {"d1": 1}}, {"q1": {"d1": 0.9, "d2": 0.8}}, ["mrr@10"])
        {'mrr@10': {'q1': 1.0}}
    """
    parsed = _parse_metrics(metrics)
    evaluated = [qid for qid, judged in qrels.items() if any(r >= 1 for r in judged.values())]
    if not evaluated:
        raise ValueError(
            f"qrels has no query with a relevant document (relevance >= 1) among its "
            f"{len(qrels)} queries: nothing to average over; check that the qrels file and split "
            "are the intended ones"
        )
    # One sort per query, deep enough for the largest cutoff (or the whole run).
    depth = None if any(m.k is None for m in parsed) else max(m.k or 0 for m in parsed)
    table: dict[str, dict[str, float]] = {m.name: {} for m in parsed}
    for qid in evaluated:
        ranking = ranked_ids(qid, run.get(qid, {}), depth)
        for metric, value in zip(parsed, _query_scores(qrels[qid], ranking, parsed), strict=True):
            table[metric.name][qid] = value
    return table


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the evaluated queries, as trec_eval computes it.

    Args:
        qrels: ``qid -> docid -> graded relevance`` (``0`` = judged not relevant).
        run: ``qid -> docid -> score``, higher is better.
        metrics: metric names, e.g. :data:`DEFAULT_METRICS`.

    Returns:
        ``metric name -> mean value``, keyed by the metric strings exactly as given.

    Raises:
        ValueError: see :func:`per_query`.
        TypeError: ``metrics`` is a single string.

    Example:
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 2}}
        >>> run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d2": 0.7, "d3": 0.1}}
        >>> evaluate(qrels, run, ["mrr@10", "recall@1"])
        {'mrr@10': 0.75, 'recall@1': 0.5}
    """
    table = per_query(qrels, run, metrics)
    return {name: math.fsum(values.values()) / len(values) for name, values in table.items()}
