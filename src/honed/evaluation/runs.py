"""Runs of a system on each split, and their metrics: the one place where embeddings become runs.

A run is ``split -> dim -> Run`` (:data:`honed.types.SplitRuns`); metrics are
``split -> dim -> metric -> value``. Dense runs are exact top-k over the truncated,
re-normalised embeddings at each Matryoshka dim; BM25 runs are bm25s's, under the dim key
``"bm25"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from honed.data.beir import BeirData
from honed.encoding.dims import truncate
from honed.evaluation.metrics import DEFAULT_METRICS, evaluate
from honed.retrieval.dense import BM25Retriever, search
from honed.types import Qrels, SplitMetrics, SplitRuns

__all__ = ["bm25_metrics", "bm25_runs", "dense_metrics", "dense_runs", "metrics_of"]

def dense_runs(
    query_emb: Mapping[str, np.ndarray],
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
    k: int = 100,
) -> SplitRuns:
    """Top-``k`` runs of a dense model on each split at each dim (truncated, re-normalised)."""
    out: SplitRuns = {}
    for name, qrels in splits.items():
        qids = sorted(qrels)
        q = np.stack([query_emb[qid] for qid in qids])  # (n_queries, dim)
        out[name] = {
            str(dim): search(truncate(q, dim), truncate(doc_emb, dim), qids, doc_ids, k=k)
            for dim in dims
        }
    return out



def bm25_runs(
    data: BeirData, doc_ids: Sequence[str], doc_texts: Sequence[str], splits: Mapping[str, Qrels]
) -> SplitRuns:
    """BM25 (bm25s) runs on each split, under the 'dim' key ``"bm25"``."""
    retriever = BM25Retriever(doc_ids, doc_texts)
    return {
        name: {"bm25": retriever.search(sorted(q), [data.queries[i] for i in sorted(q)], k=100)}
        for name, q in splits.items()
    }



def metrics_of(
    runs: SplitRuns, splits: Mapping[str, Qrels], metrics: Sequence[str] = DEFAULT_METRICS
) -> SplitMetrics:
    """Aggregate metrics of every run: split -> dim -> metric -> value."""
    return {
        split: {dim: evaluate(splits[split], run, metrics) for dim, run in by_dim.items()}
        for split, by_dim in runs.items()
    }



def dense_metrics(
    query_emb: Mapping[str, np.ndarray],
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> SplitMetrics:
    """Metrics of a dense model on each split at each dim, from precomputed embeddings."""
    return metrics_of(dense_runs(query_emb, doc_emb, doc_ids, splits, dims), splits, metrics)



def bm25_metrics(
    data: BeirData,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    splits: Mapping[str, Qrels],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> SplitMetrics:
    """BM25 (bm25s) on each split; reported under the key ``"bm25"`` as its 'dim'."""
    return metrics_of(bm25_runs(data, doc_ids, doc_texts, splits), splits, metrics)
