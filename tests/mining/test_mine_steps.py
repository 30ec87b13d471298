"""Each step of the hard-negative chain (honed.mining.candidates, .hard_negatives), checked by hand.

retrieve candidates -> drop known positives (and same-text documents) -> margin filter ->
sample (fill from further down) -> training row -> report.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from honed.mining.candidates import (
    KnownPositives,
    deeper_negatives,
    drop_known_positives,
    known_positives,
    margin_filter,
    margin_threshold,
    rank_below,
    retrieve_candidates,
    same_text_positives,
    sample_negatives,
)
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import (
    MiningCorpus,
    Pick,
    QueryCandidates,
    mine_hard_negatives,
    mining_report,
    training_row,
)
from honed.mining.rows import MinedRow

# One query along the first axis; document j scores DOC_SCORES[j] against it.
DOC_SCORES = [0.2, 0.9, 0.5, 0.7]
QUERY = np.array([1.0, 0.0], dtype=np.float32)  # (dim,)
DOCS = np.array([[s, np.sqrt(1 - s * s)] for s in DOC_SCORES], dtype=np.float32)  # (4, 2)


def test_retrieve_candidates_widens_the_depth_by_the_most_qrels_of_a_query() -> None:
    positives = {"q": {"d1": 1, "d3": 0}}  # two qrels: depth 1 becomes 3
    rows, scores = retrieve_candidates(QUERY[None, :], DOCS, positives, depth=1)
    assert rows.tolist() == [[1, 3, 2]]  # (n_queries, 3), best first
    assert scores[0].tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_retrieve_candidates_never_asks_for_more_than_the_corpus() -> None:
    rows, _ = retrieve_candidates(QUERY[None, :], DOCS, {"q": {"d1": 1}}, depth=10)
    assert rows.shape == (1, 4)


def test_same_text_positives_groups_queries_by_normalised_text() -> None:
    grouped = same_text_positives(
        {"1": {"a": 1, "x": 0}, "2": {"b": 2}, "3": {"c": 1}},
        {"1": "Vitamin  D", "2": "vitamin d ", "3": "other"},
    )
    # "x" scores 0: not a positive
    assert grouped == {"1": {"a", "b"}, "2": {"a", "b"}, "3": {"c"}}


def test_known_positives_holds_rows_and_their_texts() -> None:
    known = known_positives(["b", "a"], {"a": 0, "b": 2, "c": 1}, ["text a", "text c", "text b"])
    assert known == KnownPositives(frozenset({0, 2}), frozenset({"text a", "text b"}))


def test_drop_known_positives_counts_ids_and_same_texts_apart() -> None:
    known = KnownPositives(frozenset({1}), frozenset({"pos"}))
    texts = ["a", "pos", "pos", "b"]  # row 2 is row 1's text under another id
    kept, n_known, n_same_text = drop_known_positives(
        [(1, 0.9), (3, 0.7), (2, 0.5), (0, 0.2)], known, texts
    )
    assert kept == [(3, 0.7), (0, 0.2)]
    assert (n_known, n_same_text) == (1, 1)


def test_margin_threshold_is_relative_and_off_at_one() -> None:
    assert margin_threshold(0.8, 0.95) == pytest.approx(0.76)
    assert margin_threshold(0.8, 1.0) == float("inf")


def test_margin_filter_drops_only_scores_above_the_threshold() -> None:
    kept, dropped = margin_filter([(3, 0.8), (2, 0.76), (0, 0.2)], 0.76)
    assert kept == [(2, 0.76), (0, 0.2)]  # equal to the threshold is kept
    assert dropped == 1


def test_sample_negatives_top_takes_the_first_in_rank_order() -> None:
    rng = random.Random(0)
    assert sample_negatives([5, 2, 8], MiningConfig(num_negatives=2, depth=2), rng) == [5, 2]
    assert rng.random() == random.Random(0).random()  # strategy top draws nothing


def test_sample_negatives_random_keeps_rank_order_and_is_seeded() -> None:
    config = MiningConfig(num_negatives=2, depth=4, strategy="random")
    kept = [5, 2, 8, 1]
    picked = sample_negatives(kept, config, random.Random(3))
    assert picked == sample_negatives(kept, config, random.Random(3))
    assert len(picked) == 2 and picked == sorted(picked, key=kept.index)


def test_sample_negatives_random_draws_nothing_when_short() -> None:
    rng = random.Random(0)
    config = MiningConfig(num_negatives=3, depth=3, strategy="random")
    assert sample_negatives([4, 1], config, rng) == [4, 1]
    assert rng.random() == random.Random(0).random()  # later pairs' draws do not shift


def test_rank_below_skips_the_documents_already_seen() -> None:
    assert [i for i, _ in rank_below(QUERY, DOCS, 2)] == [2, 0]  # ranking: 1, 3, 2, 0
    assert [s for _, s in rank_below(QUERY, DOCS, 0)] == pytest.approx([0.9, 0.7, 0.5, 0.2])


@pytest.mark.parametrize("seed", range(20))
def test_deeper_negatives_match_the_walk_down_the_whole_ranking(seed: int) -> None:
    """The vectorised fill picks what ranking everything, dropping known positives and their
    texts, and applying the margin would pick (random corpora, duplicate texts included)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    docs = rng.standard_normal((n, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    query = docs[0] + 0.3 * rng.standard_normal(8).astype(np.float32)
    texts = [f"t{int(i)}" for i in rng.integers(0, n // 2 + 1, n)]  # many shared texts
    rows = frozenset(int(i) for i in rng.choice(n, int(rng.integers(1, 4)), replace=False))
    known = KnownPositives(rows, frozenset(texts[i] for i in rows))
    skip, wanted = int(rng.integers(0, n)), int(rng.integers(1, 12))
    threshold = float(rng.uniform(-0.5, 1.0))
    ranking = rank_below(query, docs, 0)
    seen = [i for i, _ in ranking[:skip]]
    walked, _, _ = drop_known_positives(ranking[skip:], known, texts)
    walked, _ = margin_filter(walked, threshold)
    expected = [i for i, _ in walked[:wanted]]
    assert deeper_negatives(docs @ query, seen, threshold, known, texts, wanted) == expected


def test_training_row_takes_ids_texts_and_recomputed_scores() -> None:
    corpus = MiningCorpus(["d0", "d1", "d2", "d3"], ["t0", "t1", "t2", "t3"], DOCS)
    known = KnownPositives(frozenset({1}), frozenset({"t1"}))
    query = QueryCandidates("q", "the query", QUERY, [], known)
    row = training_row(query, 1, 0.9, [3, 0], corpus)
    assert (row.query_id, row.query) == ("q", "the query")
    assert (row.positive_id, row.positive, row.positive_score) == ("d1", "t1", 0.9)
    assert (row.negative_ids, row.negatives) == (("d3", "d0"), ("t3", "t0"))
    assert row.negative_scores == pytest.approx((0.7, 0.2))


def test_mining_report_sums_the_picks() -> None:
    picks = [
        Pick((3, 0), seen=4, known=1, duplicate=0, margin=1, filled=False),
        Pick((2,), seen=4, known=2, duplicate=1, margin=0, filled=True),  # short
        Pick((), seen=4, known=1, duplicate=0, margin=3, filled=False),  # no negative
    ]
    rows = [
        MinedRow("q", "q", "d1", "t1", 0.9, ("d3", "d0"), ("t3", "t0"), (0.7, 0.2)),
        MinedRow("q", "q", "d4", "t4", 0.6, ("d2",), ("t2",), (0.5,)),
    ]
    report = mining_report(picks, rows, queries=1, config=MiningConfig(num_negatives=2, depth=2))
    assert (report.pairs, report.queries, report.num_negatives) == (3, 1, 2)
    assert report.candidates_seen == 12
    assert (report.dropped_known_positive, report.dropped_duplicate_text) == (4, 1)
    assert report.dropped_margin == 4
    assert report.pairs_filled_from_deeper == 1
    assert (report.pairs_short, report.pairs_without_negatives) == (1, 1)
    positive = report.positive_score_quantiles
    assert (positive["min"], positive["max"]) == (0.6, 0.9)
    assert report.negative_score_quantiles["p50"] == 0.5
    assert report.config["strategy"] == "top"  # the enum as its string


def test_mining_report_of_nothing_has_no_quantiles() -> None:
    report = mining_report([], [], queries=0, config=MiningConfig())
    assert report.positive_score_quantiles == report.negative_score_quantiles == {}


def test_the_chain_rejects_embeddings_of_the_wrong_queries() -> None:
    with pytest.raises(
        ValueError, match=r"query_emb: expected 1 rows \(one per query of positives"
    ):
        mine_hard_negatives(
            {"q": {"d1": 1}}, {"q": "x"}, ["d0", "d1", "d2", "d3"], ["a", "b", "c", "d"],
            np.stack([QUERY, QUERY]), DOCS,
        )  # fmt: skip
