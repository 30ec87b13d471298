"""``honed diagnose`` per split: the base model on train, dev, test (and user queries), and shift.

The verdict is decided on dev (as ``honed run`` chooses on dev), but a dev split carved from
train says nothing about whether test, or the users, ask the same kind of question. So every
split is measured the same way: the base model's dense and BM25 nDCG@10, the share of queries
whose first positive is outside its top 10, and, for unlabelled user queries too, the mean
cosine of each query's best document (``top-1 score``: a model that reads one kind of query
more confidently than another scores it higher). :func:`honed.data.shift.compare_splits` then
compares the splits' texts and embeddings, quoting these scores in its warning line.

At most ``MAX_SPLIT_QUERIES`` queries per split are measured (a seeded sample): the mean of a
per-query score over 1,000 queries has a standard error near 0.01, finer than any threshold
here, and a 15,000-query train split would otherwise cost as much encoding as the corpus.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from honed.data.beir import BeirData
from honed.data.shift import SplitShift, compare_splits
from honed.diagnosis.measure import measure_difficulty
from honed.encoding.encoder import EmbeddingCache
from honed.evaluation.runs import bm25_metrics, dense_metrics
from honed.types import Qrels

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MAX_SPLIT_QUERIES", "SplitMeasure", "measure_splits"]

MAX_SPLIT_QUERIES = 1000
_BLOCK = 1 << 24  # floats per block of the (queries, docs) score matrix: 64 MB


@dataclass(frozen=True)
class SplitMeasure:
    """The base model on one split; the labelled scores are None for user queries.

    Attributes:
        name: ``"train"``, ``"dev"``, ``"test"`` or ``"user"``.
        queries: queries measured (at most ``MAX_SPLIT_QUERIES``).
        total: queries in the split (with a positive, for labelled splits).
        top1_score: mean cosine of each query's best document.
        dense_ndcg10: the base model's nDCG@10.
        bm25_ndcg10: BM25's nDCG@10.
        miss_top10_share: share of queries whose first positive is outside the top 10.
    """

    name: str
    queries: int
    total: int
    top1_score: float
    dense_ndcg10: float | None = None
    bm25_ndcg10: float | None = None
    miss_top10_share: float | None = None


def _sample(qids: Sequence[str], seed: int) -> list[str]:
    ordered = sorted(qids)
    if len(ordered) <= MAX_SPLIT_QUERIES:
        return ordered
    return sorted(random.Random(seed).sample(ordered, MAX_SPLIT_QUERIES))


def _top1(query_emb: np.ndarray, doc_emb: np.ndarray) -> float:
    """Mean over queries of the best document's score, in blocks of bounded memory."""
    block = max(1, _BLOCK // max(1, len(doc_emb)))
    best = [
        (query_emb[i : i + block] @ doc_emb.T).max(axis=1)  # (block,)
        for i in range(0, len(query_emb), block)
    ]
    return float(np.concatenate(best).mean())


def measure_splits(
    data: BeirData,
    splits: Mapping[str, Qrels],
    user: Mapping[str, str] | None,
    model: SentenceTransformer,
    cache: EmbeddingCache,
    corpus: tuple[Sequence[str], Sequence[str], np.ndarray],
    seed: int,
) -> tuple[tuple[SplitMeasure, ...], SplitShift | None]:
    """The base model's scores on each split and the shift of each against test and ``user``.

    Args:
        data: the dataset (query texts).
        splits: ``name -> qrels`` with positives only (train, dev, test).
        user: ``"line N" -> text`` of real user queries, or None.
        model: the base model.
        cache: the embedding cache (the corpus is already in it).
        corpus: ``(doc_ids, doc_texts, doc_emb)`` with ``doc_emb`` of shape ``(n_docs, dim)``.
        seed: the sampling seed.
    """
    doc_ids, doc_texts, doc_emb = corpus
    sampled = {name: {q: qrels[q] for q in _sample(list(qrels), seed)}
               for name, qrels in splits.items() if qrels}
    texts = {name: {q: data.queries[q] for q in qrels} for name, qrels in sampled.items()}
    if user:
        texts["user"] = {q: user[q] for q in _sample(list(user), seed)}
    emb = {name: cache.encode(model, list(t.values())) for name, t in texts.items()}  # (n, dim)
    dim = doc_emb.shape[1]
    dense = dense_metrics({q: e for name in sampled for q, e in zip(texts[name], emb[name])},
                          doc_emb, doc_ids, sampled, [dim], ["ndcg@10"])
    bm25 = bm25_metrics(data, doc_ids, doc_texts, sampled, ["ndcg@10"])
    out = []
    for name, t in texts.items():
        top1 = _top1(emb[name], doc_emb)
        total = len(user or {}) if name == "user" else len(splits[name])
        if name == "user":
            out.append(SplitMeasure(name, len(t), total, top1))
            continue
        miss = measure_difficulty(emb[name], doc_emb, list(t), doc_ids, sampled[name])
        out.append(SplitMeasure(name, len(t), total, top1, dense[name][str(dim)]["ndcg@10"],
                                bm25[name]["bm25"]["ndcg@10"], miss.miss_top10_share))
    references = [name for name in ("test", "user") if name in texts]
    scores = {
        m.name: {"top-1 score": m.top1_score,
                 **({"nDCG@10": m.dense_ndcg10} if m.dense_ndcg10 is not None else {})}
        for m in out
    }
    shift = compare_splits(texts, references, emb, scores) if len(texts) > 1 and references else None
    return tuple(out), shift
