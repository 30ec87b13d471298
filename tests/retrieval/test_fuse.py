"""Fusion of dense and BM25 runs: hand-computed cases, agreement with ranx, the dev choice."""

from __future__ import annotations

import copy
import math
import random

import pytest

from honed.evaluation.fusion_choice import choose_fusion
from honed.retrieval.fusion import FusionConfig, FusionMethod, fuse

DENSE = {"q1": {"d1": 0.9, "d2": 0.5}}
BM25 = {"q1": {"d2": 12.0, "d3": 7.0}}


def test_rrf_by_hand() -> None:
    fused = fuse([DENSE, BM25], "rrf")  # equal weights 1/2, k = 60
    assert fused["q1"] == pytest.approx({"d2": 0.5 / 62 + 0.5 / 61, "d1": 0.5 / 61, "d3": 0.5 / 62})
    assert list(fused["q1"]) == ["d2", "d1", "d3"]  # best first


def test_rrf_weights_and_k() -> None:
    fused = fuse([DENSE, BM25], FusionMethod.RRF, weights=[0.8, 0.2], k=1)
    assert fused["q1"] == pytest.approx({"d1": 0.8 / 2, "d2": 0.8 / 3 + 0.2 / 2, "d3": 0.2 / 3})
    assert list(fused["q1"]) == ["d1", "d2", "d3"]


def test_rrf_ranks_tied_scores_in_trec_eval_order() -> None:
    # Equal scores rank by doc id descending (trec_eval's order): "b" is rank 1, "a" rank 2.
    tied = {"q1": {"a": 1.0, "b": 1.0}}
    fused = fuse([tied, {"q1": {}}], "rrf", weights=[1.0, 1.0], k=60)
    assert fused["q1"] == pytest.approx({"b": 1 / 61, "a": 1 / 62})


def test_minmax_by_hand() -> None:
    # dense: d1 -> 1, d2 -> 0; BM25: d2 -> 1, d3 -> 0; d3 is missing from dense and gets 0 there.
    fused = fuse([DENSE, BM25], "minmax", weights=[0.6, 0.4])
    assert fused["q1"] == pytest.approx({"d1": 0.6, "d2": 0.4, "d3": 0.0})


def test_minmax_constant_scores_contribute_zero() -> None:
    flat = {"q1": {"d1": 5.0, "d2": 5.0}}
    fused = fuse([flat, BM25], "minmax", weights=[0.5, 0.5])
    assert fused["q1"] == pytest.approx({"d1": 0.0, "d2": 0.5, "d3": 0.0})


def test_zscore_by_hand() -> None:
    a = {"q1": {"d1": 3.0, "d2": 1.0}}  # mean 2, std 1 -> +1, -1
    b = {"q1": {"d2": 2.0, "d3": 1.0}}  # mean 1.5, std 0.5 -> +1, -1
    fused = fuse([a, b], "zscore", weights=[0.3, 0.7])
    assert fused["q1"] == pytest.approx({"d1": 0.3, "d2": -0.3 + 0.7, "d3": -0.7})


def test_zscore_missing_document_scores_as_the_run_mean() -> None:
    # d3 is missing from run a: it gets 0 there (a's mean), so with a alone weighted it ranks
    # above d2, which a scored below its mean. This is ranx's behaviour, documented in fuse.py.
    a = {"q1": {"d1": 3.0, "d2": 1.0}}
    b = {"q1": {"d3": 1.0}}  # one document: std 0 -> normalised to 0
    fused = fuse([a, b], "zscore", weights=[1.0, 0.0])
    assert list(fused["q1"]) == ["d1", "d3", "d2"]
    assert fused["q1"]["d3"] == 0.0


def test_depth_cuts_each_query() -> None:
    dense = {"q1": {f"d{i}": float(i) for i in range(10)}}
    bm25 = {"q1": {f"d{i}": float(10 - i) for i in range(5, 15)}}
    fused = fuse([dense, bm25], "rrf", depth=4)
    assert len(fused["q1"]) == 4
    full = fuse([dense, bm25], "rrf", depth=100)
    assert list(fused["q1"]) == list(full["q1"])[:4]


def test_queries_are_the_union_and_inputs_are_not_modified() -> None:
    dense = {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}}
    bm25 = {"q1": {"d1": 2.0}}
    before = copy.deepcopy((dense, bm25))
    fused = fuse([dense, bm25], "minmax")
    assert set(fused) == {"q1", "q2"}
    assert (dense, bm25) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "borda"}, r"method: expected one of rrf, minmax, zscore, got 'borda'"),
        ({"weights": [1.0]}, r"weights: expected one weight per run \(2\), got 1"),
        ({"weights": [0.5, -0.1]}, r"weights: expected finite non-negative numbers"),
        ({"weights": [0.5, math.nan]}, r"weights: expected finite non-negative numbers"),
        ({"weights": [0.0, 0.0]}, r"weights: all 2 weights are 0"),
        ({"k": 0}, r"k: expected a positive integer, got 0"),
        ({"depth": 0}, r"depth: expected a positive integer, got 0"),
    ],
)
def test_fuse_errors_name_the_field(kwargs: dict, match: str) -> None:
    args = {"method": "rrf", **kwargs}
    with pytest.raises(ValueError, match=match):
        fuse([DENSE, BM25], **args)


def test_fuse_needs_two_runs() -> None:
    with pytest.raises(ValueError, match="runs: expected at least two runs to fuse, got 1"):
        fuse([DENSE], "rrf")


QRELS = {"q1": {"d2": 1}, "q2": {"d5": 1}}


def test_choose_fusion_picks_the_best_dev_setting() -> None:
    # dense finds d2 at rank 2 and misses d5; BM25 misses d2 and finds d5 at rank 1.
    dense = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}, "q2": {"d4": 0.9, "d6": 0.8}}
    bm25 = {"q1": {"d3": 9.0, "d1": 8.0}, "q2": {"d5": 9.0, "d4": 1.0}}
    choice = choose_fusion(QRELS, dense, bm25)
    assert isinstance(choice, FusionConfig)
    assert len(choice.grid) == 3 * 9
    best = max(g["dev_ndcg@10"] for g in choice.grid)
    assert choice.dev_ndcg10 == pytest.approx(best)
    chosen = [
        g for g in choice.grid if (g["method"], g["weight"]) == (choice.method.value, choice.dense_weight)
    ]
    assert chosen[0]["dev_ndcg@10"] == choice.dev_ndcg10


def test_choose_fusion_ties_prefer_rrf_then_the_larger_dense_weight() -> None:
    same = {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d5": 2.0, "d4": 1.0}}
    choice = choose_fusion(QRELS, same, copy.deepcopy(same))  # every setting ranks alike
    assert (choice.method, choice.dense_weight, choice.dev_ndcg10) == ("rrf", 0.9, 1.0)
    only_norm = choose_fusion(QRELS, same, same, methods=("zscore", "minmax"))
    assert (only_norm.method, only_norm.dense_weight) == ("minmax", 0.9)


def test_choose_fusion_follows_the_better_run() -> None:
    dense = {"q1": {"d2": 0.9, "d1": 0.1}, "q2": {"d5": 0.9, "d4": 0.1}}  # perfect
    bm25 = {"q1": {"d1": 9.0, "d2": 1.0}, "q2": {"d4": 9.0, "d5": 1.0}}  # wrong first
    choice = choose_fusion(QRELS, dense, bm25, methods=("minmax",), weights=(0.2, 0.8))
    assert (choice.method, choice.dense_weight, choice.dev_ndcg10) == ("minmax", 0.8, 1.0)
    assert [g["weight"] for g in choice.grid] == [0.2, 0.8]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ()}, r"methods: expected at least one fusion method"),
        ({"methods": ("rrf", "max")}, r"method: expected one of rrf, minmax, zscore, got 'max'"),
        ({"weights": ()}, r"weights: expected at least one dense weight"),
        ({"weights": (0.5, 1.5)}, r"weights: each dense weight must be in \[0, 1\].*\[1\.5\]"),
    ],
)
def test_choose_fusion_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        choose_fusion(QRELS, DENSE, BM25, **kwargs)


def _random_runs(seed: int) -> tuple[dict, dict]:
    """Two runs over the same 15 queries, 25 documents each from a pool of 40, no tied scores."""
    rng = random.Random(seed)
    runs = []
    for scale in (1.0, 20.0):  # a cosine-like and a BM25-like score range
        runs.append(
            {
                f"q{q}": {
                    d: scale * rng.random() for d in rng.sample([f"d{i}" for i in range(40)], 25)
                }
                for q in range(15)
            }
        )
    return runs[0], runs[1]


@pytest.mark.slow  # ranx compiles its numba kernels on first use (about 40 s, then cached)
@pytest.mark.parametrize(
    ("method", "norm", "ranx_method", "weights"),
    [
        ("rrf", None, "rrf", [1.0, 1.0]),  # ranx's RRF is unweighted: weight 1 each
        ("minmax", "min-max", "wsum", [0.3, 0.7]),
        ("zscore", "zmuv", "wsum", [0.3, 0.7]),
    ],
)
def test_agrees_with_ranx(method: str, norm: str | None, ranx_method: str, weights: list) -> None:
    ranx = pytest.importorskip("ranx")
    dense, bm25 = _random_runs(seed=7)
    params = {"k": 60} if ranx_method == "rrf" else {"weights": weights}
    expected = ranx.fuse(
        [ranx.Run(dense), ranx.Run(bm25)], norm=norm, method=ranx_method, params=params
    ).to_dict()
    ours = fuse([dense, bm25], method, weights=weights, depth=1000)
    assert set(ours) == set(expected)
    for qid in ours:
        assert ours[qid] == pytest.approx(dict(expected[qid]), rel=1e-9, abs=1e-12), qid
        # RRF ties (rank r in one run only, in either run) are ordered by doc id descending.
        ranked = sorted(((s, d) for d, s in ours[qid].items()), reverse=True)
        assert list(ours[qid]) == [d for _, d in ranked]


def test_significance_tests_hybrid_against_dense_and_bm25() -> None:
    from honed.evaluation.evidence import significance

    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    good = {"q1": {"d1": 1.0, "d2": 0.5}, "q2": {"d2": 1.0, "d1": 0.5}}
    bad = {"q1": {"d2": 1.0, "d1": 0.5}, "q2": {"d1": 1.0, "d2": 0.5}}
    systems = {"base@8": bad, "tuned@8": good, "bm25": bad, "hybrid": good}
    queries = {"q1": "one", "q2": "two"}
    tests = significance(qrels, systems, ["8"], queries, n_resamples=100)["tests"]
    pairs = [(t["system_a"], t["system_b"]) for t in tests if t["metric"] == "ndcg@10"]
    assert pairs[-2:] == [("tuned@8", "hybrid"), ("bm25", "hybrid")]
    by_pair = {(t["system_a"], t["system_b"], t["metric"]): t for t in tests}
    assert by_pair[("bm25", "hybrid", "ndcg@10")]["delta"] > 0  # delta = hybrid - bm25


def test_metrics_table_has_a_hybrid_row() -> None:
    from honed.report.markdown import metrics_table

    row = {m: 0.5 for m in ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10")}
    row |= {"recall@100": 0.5, "map@100": 0.5}
    metrics = {
        "base": {"test": {"8": row}},
        "bm25": {"test": {"bm25": row}},
        "hybrid": {"test": {"hybrid": {**row, "ndcg@10": 0.75}}},
    }
    table = metrics_table(metrics, "test")
    assert table.splitlines()[-1].startswith("| hybrid | - | 0.7500 | 0.5000 |")
