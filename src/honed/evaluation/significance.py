"""Paired comparison of retrieval systems: bootstrap intervals, permutation tests, query changes.

Two systems run on the same queries give paired per-query scores, so every statistic here is
computed on the per-query differences ``b - a`` (as ranx's ``compare`` does):

- a **paired bootstrap** 95% interval of the mean difference: resample the queries with
  replacement ``n_resamples`` times and take the 2.5th and 97.5th percentiles of the resampled
  means (the percentile method, as ``scipy.stats.bootstrap(..., method="percentile")``);
- a two-sided **paired randomization test**: under "no difference" each query's difference is
  as likely to have either sign, so flip signs at random and count how often the flipped mean is
  at least as far from zero as the observed one. ``p = (count + 1) / (n_resamples + 1)``, so p is
  never 0 and 10,000 resamples resolve p down to about 1e-4.

Both draw ``n_resamples x n_queries`` random numbers; they are drawn in chunks of at most
:data:`CHUNK_ELEMENTS` so 10,000 resamples of 100k queries need ~100 MB, not 8 GB.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from honed.evaluation.metrics import per_query
from honed.retrieval.ranking import ranked_ids
from honed.types import Qrels, Run

CHUNK_ELEMENTS = 2_000_000
"""Most random draws held at once (16 MB of int64 indices plus 16 MB of gathered floats)."""

TIE_TOLERANCE = 1e-9
"""Per-query differences within this of zero count as ties."""

_METRIC_LABELS = {"ndcg": "nDCG", "mrr": "MRR", "recall": "Recall", "map": "MAP", "precision": "P"}


def _label(metric: str) -> str:
    """Display form of a metric name: ``"ndcg@10"`` -> ``"nDCG@10"``."""
    family, sep, cutoff = metric.partition("@")
    return _METRIC_LABELS.get(family.lower(), family) + sep + cutoff


def _signed(value: float, points: bool) -> str:
    """``+6.5`` (points: x100, one decimal) or ``+0.065``; never ``-0.0``."""
    scaled, digits = (value * 100, 1) if points else (value, 3)
    return f"{round(scaled, digits) + 0.0:+.{digits}f}"


@dataclass(frozen=True)
class PairedTest:
    """System ``b`` compared against system ``a`` on one metric (``delta = mean_b - mean_a``).

    Attributes:
        metric: metric name, e.g. ``"ndcg@10"`` (may be empty).
        system_a: name of the reference system.
        system_b: name of the system compared against it.
        mean_a: mean of ``a`` over the queries.
        mean_b: mean of ``b`` over the queries.
        delta: ``mean_b - mean_a``.
        ci_low: lower end of the paired bootstrap 95% interval of ``delta``.
        ci_high: upper end of that interval.
        p_value: two-sided paired randomization (sign-flip) test p-value, in ``(0, 1]``.
        wins: queries where ``b`` scores higher than ``a``.
        ties: queries where they differ by at most :data:`TIE_TOLERANCE`.
        losses: queries where ``b`` scores lower.
        n_queries: number of paired queries.
        n_resamples: bootstrap resamples and random sign flips drawn.
        seed: seed of the random generator.
    """

    metric: str
    system_a: str
    system_b: str
    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    wins: int
    ties: int
    losses: int
    n_queries: int
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """Whether ``p_value < 0.05``."""
        return self.p_value < 0.05

    def sentence(self, points: bool = True) -> str:
        """One-line summary for a report.

        Args:
            points: show the difference in points (x100, one decimal) instead of three decimals.

        Returns:
            e.g. ``"+6.5 nDCG@10, 95% CI [+3.9, +9.1], p < 0.001; 41 queries better, 12 worse"``.
        """
        metric = f" {_label(self.metric)}" if self.metric else ""
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        better = f"{self.wins} {'query' if self.wins == 1 else 'queries'} better"
        return (
            f"{_signed(self.delta, points)}{metric}, 95% CI [{_signed(self.ci_low, points)}, "
            f"{_signed(self.ci_high, points)}], {p}; {better}, {self.losses} worse"
        )


def _check_resamples(n_resamples: int) -> None:
    """Raise unless ``n_resamples`` is a positive integer."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(
            f"n_resamples must be a positive integer, got {n_resamples}; 10,000 is a good default"
        )


def _paired_values(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Both systems' values as ``(n,)`` arrays in sorted-qid order, after validation."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        example = sorted(only_a | only_b)[0]
        raise ValueError(
            f"a and b must score the same queries: {len(only_a)} qids only in a and "
            f"{len(only_b)} only in b (e.g. {example!r}); score both systems on the same qrels"
        )
    if not a:
        raise ValueError("a and b have no queries: nothing to compare")
    qids = sorted(a)
    values_a = np.array([a[q] for q in qids], dtype=np.float64)  # (n,)
    values_b = np.array([b[q] for q in qids], dtype=np.float64)  # (n,)
    if not (np.isfinite(values_a).all() and np.isfinite(values_b).all()):
        raise ValueError("a and b must hold finite numbers: found NaN or infinity")
    return values_a, values_b


def _chunks(n_resamples: int, n: int) -> list[int]:
    """Resample counts per chunk so that one chunk holds at most :data:`CHUNK_ELEMENTS` draws."""
    size = max(1, CHUNK_ELEMENTS // n)
    return [min(size, n_resamples - start) for start in range(0, n_resamples, size)]


def _bootstrap_means(diffs: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples,)`` means of ``diffs`` resampled with replacement."""
    n = len(diffs)
    means = []
    for rows in _chunks(n_resamples, n):
        idx = rng.integers(0, n, size=(rows, n))  # (rows, n) query indices
        means.append(diffs[idx].mean(axis=1))  # (rows,)
    return np.concatenate(means)


def _sign_flip_p(diffs: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of the mean of ``diffs`` under random sign flips."""
    n = len(diffs)
    observed = abs(float(diffs.mean()))
    # Flipping every sign of the observed sample gives the same |mean| up to rounding: compare
    # with a tolerance at the scale of the data so such draws count as "as extreme".
    threshold = observed - 1e-12 * float(np.abs(diffs).max())
    extreme = 0
    for rows in _chunks(n_resamples, n):
        signs = np.where(rng.random((rows, n)) < 0.5, -1.0, 1.0)  # (rows, n)
        extreme += int((np.abs(signs @ diffs) / n >= threshold).sum())
    return (extreme + 1) / (n_resamples + 1)


def paired_test(
    a: Mapping[str, float],
    b: Mapping[str, float],
    metric: str = "",
    system_a: str = "a",
    system_b: str = "b",
    n_resamples: int = 10_000,
    seed: int = 42,
) -> PairedTest:
    """Compare per-query scores of system ``b`` against system ``a``.

    Args:
        a: ``qid -> value`` of the reference system.
        b: ``qid -> value`` of the other system, on exactly the same qids.
        metric: metric name carried into the result (display only).
        system_a: name of ``a`` carried into the result.
        system_b: name of ``b`` carried into the result.
        n_resamples: bootstrap resamples, and random sign flips, to draw.
        seed: seed of ``np.random.default_rng``; the result is a function of the inputs and seed.

    Returns:
        A :class:`PairedTest` with ``delta = mean(b) - mean(a)``.

    Raises:
        ValueError: the qids differ, there are none, a value is not finite, or ``n_resamples``
            is not a positive integer.

    Example:
        >>> t = paired_test({"q1": 0.2, "q2": 0.5}, {"q1": 0.4, "q2": 0.5}, n_resamples=100)
        >>> round(t.delta, 3), t.wins, t.ties, t.losses
        (0.1, 1, 1, 0)
    """
    _check_resamples(n_resamples)
    values_a, values_b = _paired_values(a, b)
    diffs = values_b - values_a  # (n,)
    # Independent streams, so the interval does not change when the test's draws do.
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    ci_low, ci_high = np.percentile(_bootstrap_means(diffs, n_resamples, boot_rng), [2.5, 97.5])
    return PairedTest(
        metric=metric,
        system_a=system_a,
        system_b=system_b,
        mean_a=math.fsum(values_a) / len(values_a),
        mean_b=math.fsum(values_b) / len(values_b),
        delta=math.fsum(diffs) / len(diffs),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=_sign_flip_p(diffs, n_resamples, perm_rng),
        wins=int((diffs > TIE_TOLERANCE).sum()),
        ties=int((np.abs(diffs) <= TIE_TOLERANCE).sum()),
        losses=int((diffs < -TIE_TOLERANCE).sum()),
        n_queries=len(diffs),
        n_resamples=n_resamples,
        seed=seed,
    )


def _system_pairs(names: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """``(a, b)`` pairs to test: each system against ``baseline``, or every pair in order."""
    if len(names) < 2:
        raise ValueError(f"compare needs at least two runs, got {len(names)}: {names}")
    if baseline is None:
        return list(itertools.combinations(names, 2))
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the runs: expected one of {names}")
    return [(baseline, name) for name in names if name != baseline]


def compare(
    qrels: Qrels,
    runs: Mapping[str, Run],
    metrics: Sequence[str] = ("ndcg@10", "mrr@10", "recall@10"),
    baseline: str | None = None,
    n_resamples: int = 10_000,
    seed: int = 42,
) -> list[PairedTest]:
    """Paired tests between retrieval systems on every metric.

    Queries are those of ``qrels`` with a relevant document; a query missing from a run scores 0
    (see :func:`honed.evaluation.metrics.per_query`).

    Args:
        qrels: ``qid -> docid -> graded relevance``.
        runs: ``system name -> run``, at least two.
        metrics: metric names such as ``"ndcg@10"``.
        baseline: compare each other system against this one; None compares every pair
            ``(earlier, later)`` in the order of ``runs``.
        n_resamples: see :func:`paired_test`.
        seed: see :func:`paired_test`; every test uses the same seed.

    Returns:
        One :class:`PairedTest` per system pair and metric, grouped by pair in that order.

    Raises:
        ValueError: fewer than two runs, an unknown ``baseline``, a bad metric name or
            ``n_resamples``, or qrels without a relevant document.

    Example:
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
        >>> runs = {"bm25": {"q1": {"d9": 1.0, "d1": 0.5}}, "dense": {"q1": {"d1": 1.0}}}
        >>> [round(t.delta, 2) for t in compare(qrels, runs, ["mrr@10"], n_resamples=50)]
        [0.25]
    """
    _check_resamples(n_resamples)
    pairs = _system_pairs(list(runs), baseline)
    tables = {name: per_query(qrels, run, list(metrics)) for name, run in runs.items()}
    return [
        paired_test(tables[a][m], tables[b][m], m, a, b, n_resamples=n_resamples, seed=seed)
        for a, b in pairs
        for m in metrics
    ]


@dataclass(frozen=True)
class QueryChange:
    """How one query fared under system ``b`` compared with system ``a``.

    Attributes:
        qid: query id.
        query: query text.
        delta: ``value_b - value_a``.
        value_a: metric value under ``a``.
        value_b: metric value under ``b``.
        first_relevant_rank_a: 1-based rank of the first relevant document in run ``a``, or
            None when ``a`` retrieved none.
        first_relevant_rank_b: the same for run ``b``.
        top_doc_a: the document ``a`` ranked first, or None when it returned nothing.
        top_doc_b: the document ``b`` ranked first, or None.
        top_doc_a_relevant: whether ``top_doc_a`` is judged relevant (relevance ``>= 1``).
        top_doc_b_relevant: whether ``top_doc_b`` is judged relevant.
    """

    qid: str
    query: str
    delta: float
    value_a: float
    value_b: float
    first_relevant_rank_a: int | None
    first_relevant_rank_b: int | None
    top_doc_a: str | None
    top_doc_b: str | None
    top_doc_a_relevant: bool
    top_doc_b_relevant: bool


def _evaluated(qrels: Qrels) -> list[str]:
    """Qids of ``qrels`` with a relevant document, sorted."""
    return sorted(qid for qid, judged in qrels.items() if any(r >= 1 for r in judged.values()))


def first_relevant_ranks(qrels: Qrels, run: Run) -> dict[str, int | None]:
    """1-based rank of the first relevant document of each evaluated query in ``run``.

    The run is ranked in trec_eval order (score descending, doc id descending), uncut.

    Args:
        qrels: ``qid -> docid -> graded relevance``; queries with a relevant document count.
        run: ``qid -> docid -> score``.

    Returns:
        ``qid -> rank``, None when the run retrieved no relevant document for the query.

    Example:
        >>> first_relevant_ranks({"q1": {"d2": 1}}, {"q1": {"d1": 0.9, "d2": 0.5}})
        {'q1': 2}
    """
    ranks: dict[str, int | None] = {}
    for qid in _evaluated(qrels):
        ranking = ranked_ids(qid, run.get(qid, {}), None)
        ranks[qid] = next((i for i, d in enumerate(ranking, 1) if qrels[qid].get(d, 0) >= 1), None)
    return ranks


def _top_docs(run: Run, qids: list[str]) -> dict[str, str | None]:
    """The first-ranked document of each query, None when the run has none."""
    return {qid: next(iter(ranked_ids(qid, run.get(qid, {}), 1)), None) for qid in qids}


def _check_texts(qids: list[str], queries: Mapping[str, str]) -> None:
    """Raise unless ``queries`` has a text for every qid."""
    missing = [qid for qid in qids if qid not in queries]
    if missing:
        raise ValueError(
            f"queries has no text for {len(missing)} evaluated qids (e.g. {missing[0]!r}): pass "
            "the queries of the dataset, e.g. load_beir(path).queries"
        )


def _is_relevant(judged: Mapping[str, int], doc_id: str | None) -> bool:
    """Whether ``doc_id`` is judged relevant (relevance ``>= 1``); False for None."""
    return doc_id is not None and judged.get(doc_id, 0) >= 1


def query_changes(
    qrels: Qrels,
    run_a: Run,
    run_b: Run,
    queries: Mapping[str, str],
    metric: str = "ndcg@10",
    n: int = 10,
) -> tuple[list[QueryChange], list[QueryChange]]:
    """The queries that system ``b`` improved and regressed most compared with system ``a``.

    Args:
        qrels: ``qid -> docid -> graded relevance``.
        run_a: run of the reference system.
        run_b: run of the other system.
        queries: ``qid -> text`` covering every query of ``qrels`` with a relevant document.
        metric: metric that ranks the changes.
        n: at most this many queries per list.

    Returns:
        ``(improved, regressed)``: queries whose ``delta`` exceeds :data:`TIE_TOLERANCE`, the
        largest gain first, and those below ``-TIE_TOLERANCE``, the largest loss first; equal
        deltas are ordered by qid.

    Raises:
        ValueError: ``n`` is not a positive integer, a query text is missing, or see
            :func:`honed.evaluation.metrics.per_query`.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    values_a = per_query(qrels, run_a, [metric])[metric]
    values_b = per_query(qrels, run_b, [metric])[metric]
    qids = sorted(values_a)
    _check_texts(qids, queries)
    ranks_a, ranks_b = first_relevant_ranks(qrels, run_a), first_relevant_ranks(qrels, run_b)
    tops_a, tops_b = _top_docs(run_a, qids), _top_docs(run_b, qids)
    changes = [
        QueryChange(
            qid=qid,
            query=queries[qid],
            delta=values_b[qid] - values_a[qid],
            value_a=values_a[qid],
            value_b=values_b[qid],
            first_relevant_rank_a=ranks_a[qid],
            first_relevant_rank_b=ranks_b[qid],
            top_doc_a=tops_a[qid],
            top_doc_b=tops_b[qid],
            top_doc_a_relevant=_is_relevant(qrels[qid], tops_a[qid]),
            top_doc_b_relevant=_is_relevant(qrels[qid], tops_b[qid]),
        )
        for qid in qids
    ]
    improved = sorted(
        (c for c in changes if c.delta > TIE_TOLERANCE), key=lambda c: (-c.delta, c.qid)
    )
    regressed = sorted(
        (c for c in changes if c.delta < -TIE_TOLERANCE), key=lambda c: (c.delta, c.qid)
    )
    return improved[:n], regressed[:n]
