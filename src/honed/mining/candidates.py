"""One query's candidate negatives: retrieve them, drop what must not be a negative, sample.

These are the steps of :func:`honed.mining.hard_negatives.mine_hard_negatives`, in its order;
each is pure and small. Shapes: query embeddings (n_queries, dim), document embeddings
(n_docs, dim), candidates (n_queries, depth) document rows and scores. Within one query the
steps pass a :data:`Ranked` list of ``(document row, score)`` pairs, best first.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from honed.mining.config import MiningConfig, SamplingStrategy
from honed.retrieval.dense import top_k
from honed.types import Qrels

__all__ = [
    "KnownPositives",
    "Ranked",
    "drop_known_positives",
    "known_positives",
    "margin_filter",
    "margin_threshold",
    "deeper_negatives",
    "rank_below",
    "retrieve_candidates",
    "same_text_positives",
    "sample_negatives",
]

Ranked = list[tuple[int, float]]  # one query's candidates: (document row, score), best first


@dataclass(frozen=True)
class KnownPositives:
    """What must never become a negative of one query: its positives' rows, and their texts.

    A document with a positive's text under another id is the positive again for the loss: a
    false negative, so it is dropped too.
    """

    rows: frozenset[int]
    texts: frozenset[str]


def retrieve_candidates(
    query_emb: np.ndarray, doc_emb: np.ndarray, positives: Qrels, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: every query's top documents over the whole corpus, best first.

    ``depth`` is widened by the most qrels of any query, so that dropping a query's known
    positives still leaves ``depth`` candidates; never beyond the corpus.

    Returns:
        Document rows and their scores, ``(n_queries, min(depth + most qrels, n_docs))`` each.

    Example:
        >>> docs = np.array([[0.2, 0.98], [0.9, 0.44], [0.5, 0.87]], dtype=np.float32)
        >>> retrieve_candidates(np.array([[1.0, 0.0]]), docs, {"q": {"a": 1}}, 1)[0].tolist()
        [[1, 2]]
    """
    most = max((len(docs) for docs in positives.values()), default=0)
    return top_k(query_emb, doc_emb, min(depth + most, len(doc_emb)))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def same_text_positives(positives: Qrels, queries: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Step 2a: query id -> the positives (score >= 1) of every query with the same text.

    Texts are compared lower-cased with whitespace collapsed. SciFact has query ids with the same
    text and different qrels: a positive of one must not become a negative of the other.

    Example:
        >>> grouped = same_text_positives({"1": {"a": 1}, "2": {"b": 1, "c": 0}}, {"1": "Q", "2": " q "})
        >>> sorted(grouped["1"]), grouped["1"] == grouped["2"]
        (['a', 'b'], True)
    """
    by_text: dict[str, set[str]] = {}
    for qid, docs in positives.items():
        by_text.setdefault(_norm(queries[qid]), set()).update(d for d, s in docs.items() if s >= 1)
    shared = {text: frozenset(docs) for text, docs in by_text.items()}
    return {qid: shared[_norm(queries[qid])] for qid in positives}


def known_positives(
    positive_ids: Iterable[str], index_of: Mapping[str, int], doc_texts: Sequence[str]
) -> KnownPositives:
    """Step 2b: the document rows of ``positive_ids`` and their texts."""
    rows = frozenset(index_of[d] for d in positive_ids)
    return KnownPositives(rows, frozenset(doc_texts[i] for i in rows))


def drop_known_positives(
    ranked: Ranked, known: KnownPositives, doc_texts: Sequence[str]
) -> tuple[Ranked, int, int]:
    """Step 2c: drop known positives, then documents with a known positive's text.

    Returns:
        The remaining candidates (order kept), how many were known positives, and how many had
        a known positive's text under another id.

    Example:
        >>> known = KnownPositives(frozenset({0}), frozenset({"pos"}))
        >>> drop_known_positives([(0, 0.9), (1, 0.8), (2, 0.7)], known, ["pos", "pos", "neg"])
        ([(2, 0.7)], 1, 1)
    """
    kept: Ranked = []
    n_known = n_same_text = 0
    for index, score in ranked:
        if index in known.rows:
            n_known += 1
        elif doc_texts[index] in known.texts:
            n_same_text += 1  # same text as a known positive under another id: a false negative
        else:
            kept.append((index, score))
    return kept, n_known, n_same_text


def margin_threshold(positive_score: float, margin: float) -> float:
    """Step 3a: the score above which a candidate is too close to the positive to be trusted.

    Example:
        >>> margin_threshold(0.8, 0.95), margin_threshold(0.8, 1.0)
        (0.76, inf)
    """
    # margin 1.0 is documented as "off": without this, candidates above the positive still drop.
    return margin * positive_score if margin < 1.0 else float("inf")


def margin_filter(ranked: Ranked, threshold: float) -> tuple[Ranked, int]:
    """Step 3b: drop candidates scoring above ``threshold``; returns the rest and how many dropped.

    Example:
        >>> margin_filter([(4, 0.9), (5, 0.5)], 0.76)
        ([(5, 0.5)], 1)
    """
    kept = [(index, score) for index, score in ranked if not score > threshold]
    return kept, len(ranked) - len(kept)


def sample_negatives(kept: list[int], config: MiningConfig, rng: random.Random) -> list[int]:
    """Step 4: ``config.num_negatives`` of the surviving rows ``kept``, in their rank order.

    Strategy ``top`` takes the first ones; ``random`` draws them with ``rng`` (called only when
    there are more survivors than negatives wanted, so the draws of other pairs do not shift).

    Example:
        >>> sample_negatives([7, 3, 9, 1], MiningConfig(num_negatives=2), random.Random(0))
        [7, 3]
    """
    if config.strategy is SamplingStrategy.RANDOM and len(kept) > config.num_negatives:
        return sorted(rng.sample(kept, config.num_negatives), key=kept.index)
    return kept[: config.num_negatives]


def rank_below(query_vec: np.ndarray, doc_emb: np.ndarray, skip: int) -> Ranked:
    """Step 4b: the whole corpus ranked for one query, less its first ``skip`` documents.

    Used to fill a short pair from further down; one ``(n_docs,)`` score row, bounded memory.

    Example:
        >>> rank_below(np.array([1.0, 0.0]), np.array([[0.2, 0.9], [0.9, 0.1], [0.5, 0.5]]), 1)
        [(2, 0.5), (0, 0.2)]
    """
    row = doc_emb @ query_vec  # (n_docs,)
    order = np.argsort(-row, kind="stable")[skip:]  # (n_docs - skip,)
    return list(zip(order.tolist(), row[order].tolist()))


def deeper_negatives(
    row: np.ndarray, seen: Sequence[int], threshold: float, known: KnownPositives,
    doc_texts: Sequence[str], wanted: int,
) -> list[int]:  # fmt: skip
    """Steps 4b, 2c and 3b at once: the best ``wanted`` documents outside ``seen`` (the candidates
    already examined) that are neither known positives (nor their texts) nor above ``threshold``,
    best first (ties by row). ``row``: ``(n_docs,)`` the query's score against every document.

    The same negatives as walking :func:`rank_below`'s ranking through
    :func:`drop_known_positives` and :func:`margin_filter`, without a Python loop or a sort over
    the whole corpus: the margin and the seen rows are masked in the score row at once and only
    the best few survivors are sorted (a short-text corpus of 29,427 documents filled 320 pairs
    in 12.7 s the other way, most of it in those loops).

    Example:
        >>> known = KnownPositives(frozenset({2}), frozenset())
        >>> deeper_negatives(np.array([0.2, 0.9, 0.5, 0.7]), [1], 0.75, known, ["a"] * 4, 5)
        [3, 0]
    """
    row = np.asarray(row, dtype=np.float64)  # (n_docs,)
    open_rows = ~(row > threshold)  # the margin filter, as margin_filter applies it
    open_rows[np.asarray(seen, dtype=np.int64)] = False
    candidates = np.flatnonzero(open_rows)  # (n_open,)
    take = wanted + len(known.rows) + 8  # room for known positives and a few same-text rows
    while True:
        if take < len(candidates):
            best = candidates[np.argpartition(-row[candidates], take)[:take]]
        else:
            best = candidates
        best = best[np.lexsort((best, -row[best]))]  # score descending, ties by row
        picked = [
            index for index in best.tolist()
            if index not in known.rows and doc_texts[index] not in known.texts
        ][:wanted]  # fmt: skip
        if len(picked) >= wanted or len(best) == len(candidates):
            return picked
        take *= 4
