"""Tests for honed.evaluation.significance: agreement with scipy, edge cases and per-query change listings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from honed.evaluation import significance as compare_module
from honed.evaluation.metrics import evaluate
from honed.evaluation.significance import (
    PairedTest,
    compare,
    first_relevant_ranks,
    paired_test,
    query_changes,
)


def _paired_sample(seed: int = 5, n: int = 200, shift: float = 0.04) -> tuple[dict, dict]:
    """Per-query scores of two systems whose differences have sd ~0.3 and mean ~``shift``."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 0.8, n)
    b = a + rng.normal(shift, 0.3, n)
    return {f"q{i:03d}": float(a[i]) for i in range(n)}, {
        f"q{i:03d}": float(b[i]) for i in range(n)
    }


def _diffs(a: dict, b: dict) -> np.ndarray:
    return np.array([b[q] - a[q] for q in sorted(a)])


def test_bootstrap_interval_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b = _paired_sample()
    ours = paired_test(a, b, n_resamples=20_000, seed=1)
    ref = stats.bootstrap(
        (_diffs(a, b),), np.mean, n_resamples=20_000, method="percentile", random_state=7
    ).confidence_interval
    # Resampling noise of a 2.5% quantile with 20k draws of a mean with se ~0.02 is ~0.001.
    assert ours.ci_low == pytest.approx(ref.low, abs=0.01)
    assert ours.ci_high == pytest.approx(ref.high, abs=0.01)
    assert ours.ci_low < ours.delta < ours.ci_high


def test_permutation_p_value_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a, b = _paired_sample()
    ours = paired_test(a, b, n_resamples=20_000, seed=1)
    ref = stats.permutation_test(
        (_diffs(a, b),),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",  # one sample: random sign flips, the paired test
        alternative="two-sided",
        n_resamples=20_000,
        vectorized=True,
        random_state=7,
    ).pvalue
    assert 0.001 < ref < 0.5  # a p-value where the comparison means something
    assert ours.p_value == pytest.approx(ref, abs=0.01)


def test_identical_systems() -> None:
    a, _ = _paired_sample(n=50)
    result = paired_test(a, dict(a), n_resamples=500)
    assert result.delta == 0.0
    assert result.p_value == 1.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert (result.wins, result.ties, result.losses) == (0, 50, 0)
    assert not result.significant


def test_clearly_better_system() -> None:
    a, b = _paired_sample(shift=0.3)
    result = paired_test(a, b, metric="ndcg@10", system_a="bm25", system_b="tuned")
    assert result.p_value < 0.001 and result.significant
    assert 0 < result.ci_low < result.delta < result.ci_high
    assert result.mean_b - result.mean_a == pytest.approx(result.delta)
    assert result.wins + result.ties + result.losses == result.n_queries == 200
    assert result.wins > result.losses


def test_deterministic_for_a_seed() -> None:
    a, b = _paired_sample()
    assert paired_test(a, b, n_resamples=2000, seed=3) == paired_test(
        a, b, n_resamples=2000, seed=3
    )
    other = paired_test(a, b, n_resamples=2000, seed=4)
    assert other.ci_low != paired_test(a, b, n_resamples=2000, seed=3).ci_low


def test_chunking_keeps_the_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _paired_sample()
    whole = paired_test(a, b, n_resamples=5000)
    monkeypatch.setattr(compare_module, "CHUNK_ELEMENTS", 1000)  # 5 resamples per chunk
    chunked = paired_test(a, b, n_resamples=5000)
    assert chunked.ci_low == pytest.approx(whole.ci_low, abs=0.01)
    assert chunked.p_value == pytest.approx(whole.p_value, abs=0.02)


def test_ties_use_a_tolerance() -> None:
    result = paired_test(
        {"q1": 0.5, "q2": 0.5, "q3": 0.2}, {"q1": 0.5 + 1e-12, "q2": 0.7, "q3": 0.1}
    )
    assert (result.wins, result.ties, result.losses) == (1, 1, 1)


def test_sentence() -> None:
    result = PairedTest(
        metric="ndcg@10", system_a="a", system_b="b", mean_a=0.6, mean_b=0.665, delta=0.065,
        ci_low=0.039, ci_high=0.091, p_value=0.0002, wins=41, ties=7, losses=12,
        n_queries=60, n_resamples=10_000, seed=42,
    )  # fmt: skip
    assert result.sentence() == (
        "+6.5 nDCG@10, 95% CI [+3.9, +9.1], p < 0.001; 41 queries better, 12 worse"
    )
    worse = dataclasses.replace(result, metric="mrr@10", delta=-0.0104, ci_low=-0.03,
                                ci_high=0.0004, p_value=0.0344, wins=1)  # fmt: skip
    assert worse.sentence(points=False) == (
        "-0.010 MRR@10, 95% CI [-0.030, +0.000], p = 0.034; 1 query better, 12 worse"
    )
    assert dataclasses.replace(result, metric="", delta=-0.0001).sentence().startswith("+0.0, ")


def test_mismatched_qids_error() -> None:
    with pytest.raises(ValueError, match=r"same queries: 1 qids only in a and 2 only in b"):
        paired_test({"q1": 1.0, "q2": 0.0}, {"q1": 1.0, "q3": 0.0, "q4": 0.0})


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_n_resamples_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"n_resamples must be a positive integer"):
        paired_test({"q1": 1.0}, {"q1": 0.0}, n_resamples=bad)  # type: ignore[arg-type]


def test_empty_and_nan_errors() -> None:
    with pytest.raises(ValueError, match=r"no queries: nothing to compare"):
        paired_test({}, {})
    with pytest.raises(ValueError, match=r"finite numbers"):
        paired_test({"q1": float("nan")}, {"q1": 0.0})


# A planted case: six queries, one relevant doc each; "tuned" fixes q1, q2 and breaks q4, q5.
QRELS = {f"q{i}": {f"d{i}": 1, "x": 0} for i in range(1, 7)}
QUERIES = {f"q{i}": f"query {i}" for i in range(1, 7)}
BASE = {
    "q1": {"x": 0.9, "d1": 0.1},  # relevant at rank 2
    "q2": {"x": 0.9, "y": 0.8, "d2": 0.1},  # rank 3
    "q3": {"d3": 0.9},
    "q4": {"d4": 0.9, "x": 0.1},  # rank 1
    "q5": {"d5": 0.9},
    "q6": {"d6": 0.9},
}
TUNED = {
    "q1": {"d1": 0.9},
    "q2": {"d2": 0.9, "x": 0.5},
    "q3": {"d3": 0.9},
    "q4": {"x": 0.9, "y": 0.5, "d4": 0.1},  # drops to rank 3
    "q5": {"x": 0.9},  # relevant doc lost
    # q6 missing: scores 0, no top doc
}


def test_query_changes_lists_planted_regressions_first() -> None:
    improved, regressed = query_changes(QRELS, BASE, TUNED, QUERIES, metric="ndcg@10")
    assert [c.qid for c in regressed] == ["q5", "q6", "q4"]  # q5, q6 lose 1.0; q4 loses 0.5
    q5, q6, q4 = regressed
    assert (q5.delta, q5.value_a, q5.value_b) == (-1.0, 1.0, 0.0)
    assert (q5.first_relevant_rank_a, q5.first_relevant_rank_b) == (1, None)
    assert (q5.top_doc_a, q5.top_doc_b) == ("d5", "x")
    assert (q5.top_doc_a_relevant, q5.top_doc_b_relevant) == (True, False)
    assert (q6.top_doc_b, q6.first_relevant_rank_b, q6.top_doc_b_relevant) == (None, None, False)
    assert (q4.first_relevant_rank_a, q4.first_relevant_rank_b) == (1, 3)
    assert q4.delta == pytest.approx(0.5 - 1.0)
    assert q4.query == "query 4"
    assert [c.qid for c in improved] == ["q2", "q1"]  # 1 - 0.5 beats 1 - 1/log2(3)
    assert (improved[0].first_relevant_rank_a, improved[0].first_relevant_rank_b) == (3, 1)
    assert [c.qid for c in query_changes(QRELS, BASE, TUNED, QUERIES, n=1)[1]] == ["q5"]


def test_first_relevant_ranks() -> None:
    assert first_relevant_ranks(QRELS, BASE) == {
        "q1": 2, "q2": 3, "q3": 1, "q4": 1, "q5": 1, "q6": 1,
    }  # fmt: skip
    # trec_eval order: equal scores rank by doc id descending, so "x" precedes "d1".
    assert first_relevant_ranks({"q1": {"d1": 1}}, {"q1": {"d1": 0.5, "x": 0.5}}) == {"q1": 2}


def test_query_changes_errors() -> None:
    with pytest.raises(ValueError, match=r"n must be a positive integer, got 0"):
        query_changes(QRELS, BASE, TUNED, QUERIES, n=0)
    with pytest.raises(ValueError, match=r"no text for 1 evaluated qids \(e.g. 'q6'\)"):
        query_changes(QRELS, BASE, TUNED, {k: v for k, v in QUERIES.items() if k != "q6"})


def test_compare_every_pair_and_baseline() -> None:
    runs = {"base": BASE, "tuned": TUNED, "same": BASE}
    results = compare(QRELS, runs, ["ndcg@10", "mrr@10"], n_resamples=200)
    pairs = [(t.system_a, t.system_b, t.metric) for t in results]
    assert pairs == [
        ("base", "tuned", "ndcg@10"), ("base", "tuned", "mrr@10"),
        ("base", "same", "ndcg@10"), ("base", "same", "mrr@10"),
        ("tuned", "same", "ndcg@10"), ("tuned", "same", "mrr@10"),
    ]  # fmt: skip
    first = results[0]
    means = evaluate(QRELS, BASE, ["ndcg@10"]), evaluate(QRELS, TUNED, ["ndcg@10"])
    assert (first.mean_a, first.mean_b) == pytest.approx((means[0]["ndcg@10"], means[1]["ndcg@10"]))
    assert first.n_queries == 6 and (first.wins, first.ties, first.losses) == (2, 1, 3)
    assert results[2].p_value == 1.0
    vs_tuned = compare(QRELS, runs, ["mrr@10"], baseline="tuned", n_resamples=200)
    assert [(t.system_a, t.system_b) for t in vs_tuned] == [("tuned", "base"), ("tuned", "same")]


def test_compare_errors() -> None:
    with pytest.raises(ValueError, match=r"at least two runs, got 1"):
        compare(QRELS, {"base": BASE})
    with pytest.raises(ValueError, match=r"baseline 'bm25' is not one of the runs"):
        compare(QRELS, {"base": BASE, "tuned": TUNED}, baseline="bm25")
    with pytest.raises(ValueError, match=r"n_resamples must be a positive integer"):
        compare(QRELS, {"base": BASE, "tuned": TUNED}, n_resamples=0)
    with pytest.raises(ValueError, match=r"unknown metric 'ndgc@10'"):
        compare(QRELS, {"base": BASE, "tuned": TUNED}, ["ndgc@10"])
