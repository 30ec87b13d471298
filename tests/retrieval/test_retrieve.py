"""Tests for honed.retrieval.dense: truncation, exact dense search and the BM25 wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from honed.encoding.dims import truncate
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.dense import search, top_k

# Three unit-norm docs in 2-D and two queries; cosine order is obvious by eye.
DOCS = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)  # (3, 2)
QUERIES = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # (2, 2)
DOC_IDS = ["d0", "d1", "d2"]
QUERY_IDS = ["qa", "qb"]


def _random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- truncate ---------------------------------------------------------------------------------


def test_truncate_keeps_leading_columns_and_renormalises() -> None:
    emb = np.array([[3.0, 4.0, 12.0], [0.0, 2.0, 1.0]])
    out = truncate(emb, 2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(truncate(_random_unit(np.random.default_rng(0), 5, 8), 3), axis=1),
        1.0,
        rtol=1e-6,
    )
    assert emb[0, 0] == 3.0  # input untouched


def test_truncate_full_width_is_allowed() -> None:
    emb = _random_unit(np.random.default_rng(1), 4, 6)
    np.testing.assert_allclose(truncate(emb, 6), emb, rtol=1e-6)


@pytest.mark.parametrize(
    ("emb", "dim", "match"),
    [
        (np.ones((2, 4)), 8, r"dim 8 is larger than the embedding width 4"),
        (np.ones((2, 4)), 0, r"dim must be a positive integer, got 0"),
        (np.ones((2, 4)), 2.5, r"dim must be a positive integer, got 2.5"),
        (np.ones(4), 2, r"embeddings must be a 2-D \(n, width\) array, got shape \(4,\)"),
        (np.array([[1.0, 1.0], [0.0, 0.0]]), 2, r"row 1 has zero norm in its first 2 dim"),
    ],
)
def test_truncate_errors(emb: np.ndarray, dim: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        truncate(emb, dim)


# --- top_k / search ---------------------------------------------------------------------------


def test_top_k_handmade() -> None:
    indices, scores = top_k(QUERIES, DOCS, k=2)
    assert indices.tolist() == [[0, 1], [2, 1]]
    np.testing.assert_allclose(scores, [[1.0, 0.6], [1.0, 0.8]], rtol=1e-6)


def test_top_k_caps_k_at_corpus_size_and_orders_ties_by_doc_index() -> None:
    docs = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    indices, scores = top_k(QUERIES, docs, k=10)
    assert indices.shape == scores.shape == (2, 4)
    assert indices.tolist() == [[1, 3, 0, 2], [0, 2, 1, 3]]


def test_search_handmade() -> None:
    run = search(QUERIES, DOCS, QUERY_IDS, DOC_IDS, k=2)
    assert run["qa"] == pytest.approx({"d0": 1.0, "d1": 0.6})
    assert run["qb"] == pytest.approx({"d2": 1.0, "d1": 0.8})
    assert list(run["qb"]) == ["d2", "d1"]  # rank order
    assert all(type(s) is float for docs in run.values() for s in docs.values())


def test_search_exclude() -> None:
    exclude = {"qa": {"d0", "not-in-corpus"}, "q-unknown": ["d1"]}
    run = search(QUERIES, DOCS, QUERY_IDS, DOC_IDS, k=2, exclude=exclude)
    assert list(run["qa"]) == ["d1", "d2"]
    assert list(run["qb"]) == ["d2", "d1"]
    # Excluding leaves fewer docs than k: the excluded ones still never appear.
    run = search(QUERIES, DOCS, QUERY_IDS, DOC_IDS, k=3, exclude={"qb": ["d1", "d2"]})
    assert list(run["qb"]) == ["d0"]
    assert len(run["qa"]) == 3


def test_chunking_gives_the_same_results() -> None:
    rng = np.random.default_rng(0)
    queries, docs = _random_unit(rng, 23, 16), _random_unit(rng, 200, 16)
    qids, dids = [f"q{i}" for i in range(23)], [f"d{i}" for i in range(200)]
    whole_idx, whole_scores = top_k(queries, docs, k=10, chunk_size=4096)
    for chunk_size in (1, 5, 23):
        idx, sc = top_k(queries, docs, k=10, chunk_size=chunk_size)
        np.testing.assert_array_equal(idx, whole_idx)
        np.testing.assert_allclose(sc, whole_scores, atol=1e-6)
    exclude = {"q3": ["d1", "d5"], "q20": ["d7"]}
    whole = search(queries, docs, qids, dids, k=10, exclude=exclude)
    chunked = search(queries, docs, qids, dids, k=10, chunk_size=4, exclude=exclude)
    assert [list(r) for r in chunked.values()] == [list(r) for r in whole.values()]
    for qid in qids:
        assert chunked[qid] == pytest.approx(whole[qid], abs=1e-6)


def test_search_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    queries, docs = _random_unit(rng, 7, 8), _random_unit(rng, 50, 8)
    indices, _ = top_k(queries, docs, k=5, chunk_size=3)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :5]  # (7, 5)
    np.testing.assert_array_equal(indices, expected)


def test_search_no_queries() -> None:
    assert search(np.empty((0, 2)), DOCS, [], DOC_IDS) == {}
    indices, scores = top_k(np.empty((0, 2)), DOCS, k=2)
    assert indices.shape == scores.shape == (0, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"k must be a positive integer, got 0"),
        ({"chunk_size": -1}, r"chunk_size must be a positive integer, got -1"),
        ({"query_emb": np.ones((2, 3))}, r"query_emb has dim 3 but doc_emb has dim 2"),
        ({"doc_emb": np.ones(3)}, r"doc_emb must be a 2-D \(n, dim\) array, got shape \(3,\)"),
        ({"doc_emb": np.empty((0, 2))}, r"doc_emb has no rows: the corpus is empty"),
        ({"query_emb": np.array([[np.nan, 0], [0, 1]])}, r"query_emb contains NaN or infinite"),
        ({"query_ids": ["qa"]}, r"query_ids has 1 ids but the embeddings have 2 rows"),
        ({"doc_ids": ["d0", "d1", "d0"]}, r"doc_ids contains the id 'd0' more than once"),
    ],
)
def test_search_errors(kwargs: dict, match: str) -> None:
    args = {"query_emb": QUERIES, "doc_emb": DOCS, "query_ids": QUERY_IDS, "doc_ids": DOC_IDS}
    with pytest.raises(ValueError, match=match):
        search(**(args | kwargs))


# --- BM25 -------------------------------------------------------------------------------------

CORPUS_IDS = ["common", "rare", "other"]
CORPUS = [
    "the cell protein is found in the cell and the protein binds",
    "zebrafish photoreceptor regeneration depends on the cell",
    "a study of mice and diets",
]


def test_bm25_ranks_rare_word_match_first() -> None:
    bm25 = BM25Retriever(CORPUS_IDS, CORPUS)
    run = bm25.search(["q1"], ["cell regeneration in zebrafish"], k=10)
    assert list(run["q1"]) == ["rare", "common"]  # k > corpus size; "other" shares no term
    assert run["q1"]["rare"] > run["q1"]["common"] > 0
    assert all(type(s) is float for s in run["q1"].values())


def test_bm25_query_without_known_terms_gets_nothing() -> None:
    bm25 = BM25Retriever(CORPUS_IDS, CORPUS, stopwords=None)
    assert bm25.search(["q1", "q2"], ["unicorn", ""], k=2) == {"q1": {}, "q2": {}}
    assert bm25.search([], [], k=2) == {}


def test_bm25_parameters_change_scores() -> None:
    query = (["q1"], ["cell protein"])
    default = BM25Retriever(CORPUS_IDS, CORPUS).search(*query)
    no_length_norm = BM25Retriever(CORPUS_IDS, CORPUS, k1=2.0, b=0.0).search(*query)
    assert default["q1"]["common"] != pytest.approx(no_length_norm["q1"]["common"])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((["a"], ["x", "y"]), {}, r"doc_ids has 1 ids but texts has 2 texts"),
        (([], []), {}, r"the corpus is empty"),
        ((["a", "a"], ["x", "y"]), {}, r"doc_ids contains the id 'a' more than once"),
        ((["a"], ["x"]), {"k1": -1.0}, r"k1 must be >= 0, got -1.0"),
        ((["a"], ["x"]), {"b": 1.5}, r"b must be in \[0, 1\], got 1.5"),
        ((["a"], ["x"]), {"stopwords": "klingon"}, r"klingon not recognized"),  # from bm25s
    ],
)
def test_bm25_constructor_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BM25Retriever(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((["q1"], ["a", "b"]), r"query_ids has 1 ids but queries has 2 texts"),
        ((["q1", "q1"], ["a", "b"]), r"query_ids contains the id 'q1' more than once"),
        ((["q1"], ["a"], 0), r"k must be a positive integer, got 0"),
    ],
)
def test_bm25_search_errors(args: tuple, match: str) -> None:
    bm25 = BM25Retriever(CORPUS_IDS, CORPUS)
    with pytest.raises(ValueError, match=match):
        bm25.search(*args)
