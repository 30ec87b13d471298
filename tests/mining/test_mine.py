"""Tests for honed.mining.hard_negatives: each mining step on hand-made embeddings whose right answer is known.

Embeddings are built so that query ``i`` scores document ``j`` exactly ``scores[i][j]``: query
``i`` is the unit vector ``e_i`` and document ``j`` is ``(scores[0][j], ..., scores[n-1][j], r_j)``
with ``r_j`` chosen to make it unit length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from honed.mining.config import MiningConfig, SamplingStrategy
from honed.mining.hard_negatives import MiningResult, mine_hard_negatives
from honed.mining.rows import MinedRow, read_mined, write_mined

QUANTILE_KEYS = {"min", "p05", "p25", "p50", "p75", "p95", "max"}


def _embed(scores: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(query_emb, doc_emb) such that ``query_emb[i] @ doc_emb[j] == scores[i][j]``."""
    s = np.asarray(scores, dtype=np.float64)  # (n_queries, n_docs)
    n_queries = s.shape[0]
    rest = 1.0 - (s**2).sum(axis=0)  # (n_docs,)
    assert (rest >= 0).all(), "scores of one document must have a squared sum <= 1"
    query_emb = np.eye(n_queries, n_queries + 1, dtype=np.float32)  # (n_queries, n_queries + 1)
    doc_emb = np.concatenate([s.T, np.sqrt(rest)[:, None]], axis=1).astype(np.float32)
    return query_emb, doc_emb  # doc_emb: (n_docs, n_queries + 1)


def _mine_one(
    scores: Sequence[float],
    positives: dict[str, int],
    texts: Sequence[str] | None = None,
    **config: object,
) -> MiningResult:
    """Mine for a single query ``q`` over documents ``d0..dN`` scored ``scores``."""
    doc_ids = [f"d{i}" for i in range(len(scores))]
    doc_texts = list(texts) if texts is not None else [f"text {i}" for i in range(len(scores))]
    query_emb, doc_emb = _embed([scores])
    return mine_hard_negatives(
        {"q": positives}, {"q": "the query"}, doc_ids, doc_texts, query_emb, doc_emb,
        MiningConfig(**config),  # type: ignore[arg-type]
    )


def _row(**overrides: object) -> MinedRow:
    fields: dict[str, object] = {
        "query_id": "q1", "query": "what is ünïcode?", "positive_id": "d1", "positive": "pos text",
        "positive_score": 0.8125, "negative_ids": ("d2", "d3"), "negatives": ("neg a", "neg b"),
        "negative_scores": (0.5, 0.25),
    }
    fields.update(overrides)
    return MinedRow(**fields)  # type: ignore[arg-type]


# --- the embedding helper itself -----------------------------------------------------------------


def test_embed_helper_produces_the_requested_unit_vectors() -> None:
    query_emb, doc_emb = _embed([[0.9, 0.1], [0.2, 0.6]])
    np.testing.assert_allclose(query_emb @ doc_emb.T, [[0.9, 0.1], [0.2, 0.6]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(doc_emb, axis=1), 1.0, atol=1e-6)


# --- drop known positives ------------------------------------------------------------------------


def test_every_known_positive_of_the_query_is_excluded_from_every_pair() -> None:
    # d0 and d1 are both positives of q; d1 outscores d0, so for the pair (q, d0) it would be
    # the top "negative" if only the pair's own positive were excluded.
    result = _mine_one([0.9, 0.95, 0.5, 0.4, 0.3], {"d0": 1, "d1": 2}, num_negatives=2, margin=1.0)
    assert [(r.positive_id, r.negative_ids) for r in result.rows] == [
        ("d0", ("d2", "d3")),
        ("d1", ("d2", "d3")),
    ]
    assert result.report.dropped_known_positive == 4  # both positives, seen by both pairs


def test_positives_of_another_query_with_the_same_text_are_excluded() -> None:
    # q1 and q2 are the same claim under two ids with different qrels (SciFact has such pairs):
    # d1, a positive of q2, must not become a negative of q1.
    query_emb, doc_emb = _embed([[0.6, 0.5, 0.4, 0.3], [0.5, 0.6, 0.2, 0.1]])
    result = mine_hard_negatives(
        {"q1": {"d0": 1}, "q2": {"d1": 1}},
        {"q1": "Same  claim.", "q2": "same claim."},
        ["d0", "d1", "d2", "d3"],
        ["a", "b", "c", "d"],
        query_emb,
        doc_emb,
        MiningConfig(num_negatives=1, margin=1.0),
    )
    assert {r.query_id: r.negative_ids for r in result.rows} == {"q1": ("d2",), "q2": ("d2",)}


def test_judged_not_relevant_documents_may_become_negatives() -> None:
    # Score 0 in the qrels means "judged not relevant": a fine negative, not a positive.
    result = _mine_one([0.9, 0.6, 0.5], {"d0": 1, "d1": 0}, num_negatives=1, margin=1.0)
    assert [r.positive_id for r in result.rows] == ["d0"]
    assert result.rows[0].negative_ids == ("d1",)
    assert result.report.pairs == 1
    assert result.report.dropped_known_positive == 1


def test_document_with_the_text_of_a_positive_under_another_id_is_dropped() -> None:
    # d2 repeats the positive d0's text; d5 repeats the text of q's *other* positive d4.
    texts = ["same text", "b", "same text", "c", "other positive", "other positive"]
    scores = [0.9, 0.7, 0.8, 0.5, 0.2, 0.6]
    result = _mine_one(scores, {"d0": 1, "d4": 1}, texts, num_negatives=2, margin=1.0)
    by_positive = {r.positive_id: r for r in result.rows}
    assert by_positive["d0"].negative_ids == ("d1", "d3")
    assert by_positive["d4"].negative_ids == ("d1", "d3")
    assert result.report.dropped_duplicate_text == 4  # d2 and d5, for both pairs
    for row in result.rows:
        assert not {"same text", "other positive"} & set(row.negatives)


# --- margin filter ---------------------------------------------------------------------------


MARGIN_SCORES = [0.8, 0.9, 0.78, 0.7, 0.5, 0.3]  # d0 is the positive


def test_margin_drops_candidates_above_margin_times_the_positive_score() -> None:
    # threshold 0.95 * 0.8 = 0.76: d1 (0.9) and d2 (0.78) are too close to the positive.
    result = _mine_one(MARGIN_SCORES, {"d0": 1}, num_negatives=2, margin=0.95)
    assert result.rows[0].negative_ids == ("d3", "d4")
    assert result.report.dropped_margin == 2


def test_smaller_margin_drops_more() -> None:
    # threshold 0.85 * 0.8 = 0.68: d3 (0.7) goes too.
    result = _mine_one(MARGIN_SCORES, {"d0": 1}, num_negatives=2, margin=0.85)
    assert result.rows[0].negative_ids == ("d4", "d5")
    assert result.report.dropped_margin == 3


def test_margin_one_disables_the_filter() -> None:
    # 1.0 is documented as "off": even a candidate scoring above the positive is kept.
    result = _mine_one(MARGIN_SCORES, {"d0": 1}, num_negatives=2, margin=1.0)
    assert result.rows[0].negative_ids == ("d1", "d2")
    assert result.report.dropped_margin == 0


# --- sampling strategies --------------------------------------------------------------------


def test_top_strategy_picks_the_highest_scoring_survivors_in_order() -> None:
    rng = np.random.default_rng(3)
    scores = [0.95] + rng.uniform(0.0, 0.9, size=12).tolist()  # d0 is the positive
    result = _mine_one(scores, {"d0": 1}, num_negatives=4, margin=1.0, strategy="top")
    best = sorted(range(1, len(scores)), key=lambda i: -scores[i])[:4]
    row = result.rows[0]
    assert row.negative_ids == tuple(f"d{i}" for i in best)
    np.testing.assert_allclose(row.negative_scores, [scores[i] for i in best], atol=1e-6)
    assert list(row.negative_scores) == sorted(row.negative_scores, reverse=True)


RANDOM_SCORES = [0.99] + np.linspace(0.9, 0.0, 30).tolist()  # d0 positive, 30 candidates


def _random_pick(seed: int) -> tuple[str, ...]:
    result = _mine_one(
        RANDOM_SCORES, {"d0": 1}, num_negatives=3, depth=30, margin=1.0, strategy="random",
        seed=seed,
    )
    return result.rows[0].negative_ids


def test_random_strategy_is_deterministic_for_a_seed() -> None:
    assert _random_pick(7) == _random_pick(7)


def test_random_strategy_differs_across_seeds() -> None:
    picks = {_random_pick(seed) for seed in range(5)}
    assert len(picks) > 1
    top = _mine_one(RANDOM_SCORES, {"d0": 1}, num_negatives=3, depth=30, margin=1.0)
    assert top.rows[0].negative_ids == ("d1", "d2", "d3")
    assert any(pick != ("d1", "d2", "d3") for pick in picks)


def test_random_strategy_keeps_ranking_order_and_stays_inside_the_depth() -> None:
    # depth 10 + 1 positive: candidates are the 11 best documents, i.e. d0..d10.
    result = _mine_one(
        RANDOM_SCORES, {"d0": 1}, num_negatives=3, depth=10, margin=1.0, strategy="random", seed=1
    )
    row = result.rows[0]
    assert len(row.negative_ids) == 3
    assert all(1 <= int(d[1:]) <= 10 for d in row.negative_ids)
    assert list(row.negative_scores) == sorted(row.negative_scores, reverse=True)


def test_strategy_is_coerced_from_a_string() -> None:
    assert MiningConfig(strategy="random").strategy is SamplingStrategy.RANDOM  # type: ignore[arg-type]


# --- filling from deeper, short pairs, pairs with nothing -----------------------------------------

# d0 is the positive (0.9). depth 2 + 1 positive = a window of 3: d1 (margin), d0 (known), d2.
FILL_SCORES = [0.9, 0.95, 0.85, 0.3, 0.2]


def test_fill_walks_past_the_depth_when_too_few_survive() -> None:
    result = _mine_one(FILL_SCORES, {"d0": 1}, num_negatives=2, depth=2, margin=0.95)
    assert result.rows[0].negative_ids == ("d2", "d3")
    report = result.report
    assert report.candidates_seen == 3
    assert (report.dropped_margin, report.dropped_known_positive) == (1, 1)
    assert report.pairs_filled_from_deeper == 1
    assert report.pairs_short == 0


def test_without_fill_the_pair_is_short_but_kept() -> None:
    result = _mine_one(FILL_SCORES, {"d0": 1}, num_negatives=2, depth=2, margin=0.95, fill=False)
    assert len(result.rows) == 1
    assert result.rows[0].negative_ids == ("d2",)
    assert result.report.pairs_short == 1
    assert result.report.pairs_filled_from_deeper == 0


def test_pair_still_short_after_the_whole_corpus_is_counted_short() -> None:
    # The window already covers the whole corpus, so there is nothing deeper to walk.
    result = _mine_one([0.9, 0.95, 0.5, 0.4], {"d0": 1}, num_negatives=3, depth=3, margin=0.95)
    assert result.rows[0].negative_ids == ("d2", "d3")
    assert result.report.pairs_short == 1
    assert result.report.pairs_filled_from_deeper == 0


def test_walk_that_finds_nothing_deeper_is_not_counted_as_filled() -> None:
    # Window of 3 (d1 margin, d0 known, d2 kept); the only deeper document d3 repeats d0's text.
    texts = ["positive", "a", "b", "positive"]
    result = _mine_one([0.9, 0.95, 0.5, 0.1], {"d0": 1}, texts, num_negatives=2, depth=2)
    assert result.rows[0].negative_ids == ("d2",)
    assert result.report.pairs_filled_from_deeper == 0
    assert result.report.pairs_short == 1


def test_pair_with_no_possible_negative_is_counted_and_not_emitted() -> None:
    # Every document is a positive of q or repeats a positive's text.
    texts = ["A", "B", "A"]
    result = _mine_one([0.9, 0.8, 0.7], {"d0": 1, "d1": 1}, texts, num_negatives=1, depth=1)
    assert result.rows == ()
    report = result.report
    assert report.pairs == 2
    assert report.pairs_without_negatives == 2
    assert report.pairs_short == 0
    assert report.positive_score_quantiles == {}
    assert report.negative_score_quantiles == {}


# --- the whole report, row order --------------------------------------------------------------


def _two_query_result() -> MiningResult:
    # q1: positives d0, d1; q2: positive d4 with a duplicate d5 and a margin-dropped d3.
    scores = [
        [0.6, 0.5, 0.4, 0.1, 0.0, 0.0, 0.3, 0.2],  # q1
        [0.0, 0.1, 0.2, 0.7, 0.6, 0.5, 0.3, 0.1],  # q2
    ]
    texts = ["t0", "t1", "t2", "t3", "t4", "t4", "t6", "t7"]
    query_emb, doc_emb = _embed(scores)
    return mine_hard_negatives(
        {"q2": {"d4": 1}, "q1": {"d1": 1, "d0": 2}},
        {"q1": "first", "q2": "second"},
        [f"d{i}" for i in range(8)], texts, query_emb, doc_emb,
        MiningConfig(num_negatives=8, depth=8, margin=0.9, fill=False),
    )


def test_report_counts_add_up() -> None:
    result = _two_query_result()
    report = result.report
    kept = sum(len(r.negative_ids) for r in result.rows)
    dropped = report.dropped_known_positive + report.dropped_duplicate_text + report.dropped_margin
    # Every pair looks at the whole 8-document corpus; all survivors fit in num_negatives=8.
    assert report.candidates_seen == 3 * 8
    assert report.candidates_seen == kept + dropped
    assert report.dropped_known_positive == 2 + 2 + 1
    assert report.dropped_duplicate_text == 1
    assert report.dropped_margin == 1  # d3 (0.7) > 0.9 * 0.6 for q2; nothing for q1
    assert report.pairs == len(result.rows) + report.pairs_without_negatives == 3
    assert report.queries == 2
    assert report.num_negatives == 8
    assert report.pairs_short == 3
    assert report.config == {
        "num_negatives": 8, "depth": 8, "margin": 0.9, "strategy": "top", "fill": False, "seed": 42,
    }


def test_report_quantiles_are_present_and_match_the_scores() -> None:
    result = _two_query_result()
    report = result.report
    assert set(report.positive_score_quantiles) == QUANTILE_KEYS
    assert set(report.negative_score_quantiles) == QUANTILE_KEYS
    negatives = [s for r in result.rows for s in r.negative_scores]
    assert report.negative_score_quantiles["min"] == pytest.approx(min(negatives), abs=1e-6)
    assert report.negative_score_quantiles["max"] == pytest.approx(max(negatives), abs=1e-6)
    assert report.positive_score_quantiles["min"] == pytest.approx(0.5, abs=1e-6)
    assert report.positive_score_quantiles["max"] == pytest.approx(0.6, abs=1e-6)
    values = [report.negative_score_quantiles[k] for k in ("min", "p25", "p50", "p75", "max")]
    assert values == sorted(values)


def test_rows_are_sorted_by_query_then_positive_and_carry_texts_and_scores() -> None:
    result = _two_query_result()
    assert [(r.query_id, r.positive_id) for r in result.rows] == [
        ("q1", "d0"), ("q1", "d1"), ("q2", "d4"),
    ]
    row = result.rows[0]
    assert (row.query, row.positive) == ("first", "t0")
    assert row.positive_score == pytest.approx(0.6, abs=1e-6)
    texts = ["t0", "t1", "t2", "t3", "t4", "t4", "t6", "t7"]
    assert row.negatives == tuple(texts[int(d[1:])] for d in row.negative_ids)
    assert row.negative_scores == pytest.approx((0.4, 0.3, 0.2, 0.1, 0.0, 0.0), abs=1e-6)


def test_query_ids_sort_as_strings() -> None:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((6, 4)).astype(np.float32)  # (6, 4)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    positives = {"q2": {"d0": 1}, "q10": {"d1": 1}, "q1": {"d3": 1, "d2": 1}}
    queries = {q: f"text of {q}" for q in positives}
    result = mine_hard_negatives(
        positives, queries, [f"d{i}" for i in range(6)], [f"t{i}" for i in range(6)],
        docs[:3], docs, MiningConfig(num_negatives=1, depth=2, margin=1.0),
    )
    assert [(r.query_id, r.positive_id) for r in result.rows] == [
        ("q1", "d2"), ("q1", "d3"), ("q10", "d1"), ("q2", "d0"),
    ]


def test_query_embeddings_must_have_one_row_per_query() -> None:
    query_emb, doc_emb = _embed([[0.9, 0.1]])
    with pytest.raises(ValueError, match=r"query_emb: expected 2 rows .* got 1"):
        mine_hard_negatives(
            {"q1": {"d0": 1}, "q2": {"d1": 1}}, {"q1": "a", "q2": "b"}, ["d0", "d1"], ["x", "y"],
            query_emb, doc_emb,
        )


def test_mining_does_not_mutate_its_inputs() -> None:
    positives = {"q": {"d0": 1, "d1": 0}}
    query_emb, doc_emb = _embed([[0.9, 0.6, 0.5]])
    before = (json.dumps(positives), query_emb.copy(), doc_emb.copy())
    ids, texts = ["d0", "d1", "d2"], ["a", "b", "c"]
    mine_hard_negatives(positives, {"q": "x"}, ids, texts, query_emb, doc_emb)
    assert json.dumps(positives) == before[0]
    np.testing.assert_array_equal(query_emb, before[1])
    np.testing.assert_array_equal(doc_emb, before[2])


# --- MiningConfig validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_negatives": 0}, r"num_negatives: expected an integer >= 1, got 0"),
        ({"num_negatives": 5, "depth": 4}, r"depth: expected at least num_negatives \(5\), got 4"),
        ({"margin": 0.0}, r"margin: expected a value in \(0, 1\] .* got 0\.0"),
        ({"margin": 1.5}, r"margin: expected a value in \(0, 1\] .* got 1\.5"),
        ({"strategy": "hardest"}, r"'hardest' is not a valid SamplingStrategy"),
    ],
)
def test_mining_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MiningConfig(**kwargs)  # type: ignore[arg-type]


# --- write_mined / read_mined --------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    short = _row(query_id="q2", negative_ids=("d9",), negatives=("x",), negative_scores=(0.1,))
    rows = (_row(), short)
    path = tmp_path / "mined.jsonl"
    write_mined(rows, path)
    assert read_mined(path) == rows
    assert not (tmp_path / "mined.jsonl.tmp").exists()
    assert "ünïcode" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes


def test_write_mined_is_byte_identical_for_identical_input(tmp_path: Path) -> None:
    result = _two_query_result()
    write_mined(result.rows, tmp_path / "a.jsonl")
    write_mined(_two_query_result().rows, tmp_path / "b.jsonl")
    first = (tmp_path / "a.jsonl").read_bytes()
    assert first == (tmp_path / "b.jsonl").read_bytes()
    assert first.count(b"\n") == len(result.rows)
    assert read_mined(tmp_path / "a.jsonl") == result.rows


def test_read_mined_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "mined.jsonl"
    write_mined([_row()], path)
    path.write_text("\n" + path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")
    assert read_mined(path) == (_row(),)


def test_read_mined_missing_file(tmp_path: Path) -> None:
    message = r"nope\.jsonl: no such file; fix: run `honed mine`"
    with pytest.raises(FileNotFoundError, match=message):
        read_mined(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        ("{not json", "JSONDecodeError"),
        (json.dumps({"query_id": "q1"}), "KeyError"),
        (json.dumps(["a", "list"]), "TypeError"),
    ],
)
def test_read_mined_bad_line_names_file_and_line(tmp_path: Path, bad_line: str, error: str) -> None:
    path = tmp_path / "mined.jsonl"
    write_mined([_row()], path)
    path.write_text(path.read_text(encoding="utf-8") + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"mined\.jsonl:2: not a mined row \({error}.*fix: regen"):
        read_mined(path)


def test_read_mined_rejects_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "mined.jsonl"
    obj = json.loads(json.dumps(_row().__dict__)) | {"extra": 1}
    path.write_text(json.dumps(obj) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mined\.jsonl:1: not a mined row \(TypeError"):
        read_mined(path)


def test_fills_scored_in_small_chunks_match_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short pairs of many queries are filled from score rows computed a few queries at a time
    (bounded memory on a large corpus): the chunk size changes nothing."""
    import honed.mining.hard_negatives as miner

    rng = np.random.default_rng(3)
    docs = rng.standard_normal((120, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    ids, texts = [f"d{i}" for i in range(120)], [f"text {i % 90}" for i in range(120)]
    positives = {f"q{i:02d}": {f"d{i}": 1, f"d{i + 40}": 1} for i in range(30)}
    queries = {q: f"query {q}" for q in positives}
    q_emb = np.stack([docs[i] + 0.5 * docs[i + 40] for i in range(30)]).astype(np.float32)
    q_emb /= np.linalg.norm(q_emb, axis=1, keepdims=True)
    config = MiningConfig(num_negatives=4, depth=6, margin=0.9)
    whole = mine_hard_negatives(positives, queries, ids, texts, q_emb, docs, config)
    monkeypatch.setattr(miner, "FILL_SCORES", 120 * 3)  # three queries' rows at a time
    chunked = mine_hard_negatives(positives, queries, ids, texts, q_emb, docs, config)
    assert whole.report.pairs_filled_from_deeper > 5
    assert chunked.rows == whole.rows and chunked.report == whole.report
