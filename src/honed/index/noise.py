"""The planner's rule: a cheaper configuration must be shown not worse than exact search.

Looking within 1% of exact search on a handful of queries is not evidence: on 39 queries a
configuration that loses 3 points on average can land within 1% by chance. So the planner
recommends the cheapest configuration that passes a **non-inferiority** test on the split it
chooses on: the lower end of the paired bootstrap 95% interval of the per-query difference
(configuration minus exact full-dim float32 nDCG@10, :func:`honed.evaluation.significance.paired_test`)
must stay above ``-tolerance x exact nDCG@10``. With few queries the interval is wide and only a
configuration that matches exact search query by query passes; with many, a configuration that
truly loses less than the tolerance passes. Exact search itself always passes (its difference is
zero on every query), so there is always a recommendation.

Why a lower bound and not "not significantly worse": with few queries nothing is significantly
worse, so that test would accept every configuration exactly when the evidence is weakest.

``MIN_QUERIES`` (100): below it the plan warns that it rests on few queries. With a per-query
sd of the difference near 0.1 for a lossy shortlist, 100 queries put the bound about
``1.96 x 0.1 / 10 = 0.02`` below the mean, the size of the loss the tolerance is about.
"""

from __future__ import annotations

from collections.abc import Mapping

from honed.evaluation.significance import PairedTest, paired_test

__all__ = ["MIN_QUERIES", "N_RESAMPLES", "few_queries_warning", "passes", "versus_exact"]

MIN_QUERIES = 100
N_RESAMPLES = 2000  # percentile intervals want >= 1,000 resamples; 2,000 keeps 30 rows fast


def versus_exact(
    exact: Mapping[str, float], candidate: Mapping[str, float], seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> PairedTest:
    """The paired test of ``candidate`` against ``exact`` on per-query nDCG@10 (``qid -> value``).

    Example:
        >>> t = versus_exact({"q1": 0.5, "q2": 1.0}, {"q1": 0.5, "q2": 1.0})
        >>> (t.ci_low, t.ci_high)
        (0.0, 0.0)
    """
    return paired_test(exact, candidate, "ndcg@10", "exact", "candidate", n_resamples, seed)


def passes(test: PairedTest, exact_ndcg: float, tolerance: float) -> bool:
    """Whether the interval's lower end stays above ``-tolerance x exact_ndcg``.

    Example:
        >>> t = versus_exact({"q1": 0.5, "q2": 1.0}, {"q1": 0.5, "q2": 1.0})
        >>> passes(t, exact_ndcg=0.75, tolerance=0.01)
        True
    """
    return test.ci_low >= -tolerance * exact_ndcg


def few_queries_warning(n_queries: int, split: str) -> str:
    """The warning when the choice rests on fewer than ``MIN_QUERIES`` queries, else ""."""
    if n_queries >= MIN_QUERIES:
        return ""
    return (
        f"Warning: this choice rests on only {n_queries} {split} queries (under {MIN_QUERIES}): "
        "the intervals are wide, so only configurations that match exact search query by query "
        "qualify, and a configuration's loss cannot be measured finely; label more queries."
    )
