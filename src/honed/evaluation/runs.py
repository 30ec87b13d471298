"""Runs of a system on each split, and their metrics: the one place where embeddings become runs.

A run is ``split -> dim -> Run`` (:data:`honed.types.SplitRuns`); metrics are
``split -> dim -> metric -> value``. Dense runs are exact top-k over the truncated,
re-normalised embeddings at each Matryoshka dim; BM25 runs are bm25s's, under the dim key
``"bm25"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from honed.data.beir import BeirData
from honed.encoding.dims import truncate
from honed.evaluation.metrics import DEFAULT_METRICS, evaluate
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.dense import search
from honed.types import Qrels, Run, SplitMetrics, SplitRuns

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.encoding.encoder import EmbeddingCache

__all__ = [
    "bm25_metrics",
    "bm25_runs",
    "dense_metrics",
    "dense_runs",
    "encode_queries",
    "metrics_of",
    "model_runs",
    "read_trec_run",
]

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



def encode_queries(
    cache: EmbeddingCache,
    model: SentenceTransformer,
    data: BeirData,
    qids: Sequence[str],
    disk: bool = True,
) -> dict[str, np.ndarray]:
    """``qid -> (dim,)`` embedding of each query, through the cache."""
    emb = cache.encode(model, [data.queries[q] for q in qids], disk=disk)  # (n, dim)
    return dict(zip(qids, emb))


def model_runs(
    cache: EmbeddingCache,
    model: SentenceTransformer,
    data: BeirData,
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
) -> tuple[SplitRuns, np.ndarray]:
    """Encode the corpus and the splits' queries, and return the dense runs and the corpus array.

    The one "load, encode, search" path of ``honed evaluate``, ``compare``, ``plan`` and
    ``evaluate --hybrid``: the corpus is encoded once (with a progress bar) for every dim.
    """
    doc_ids, doc_texts = data.documents()
    doc_emb = cache.encode(model, doc_texts, show_progress_bar=True)  # (n_docs, dim)
    qids = sorted({q for qrels in splits.values() for q in qrels})
    q_emb = encode_queries(cache, model, data, qids)
    return dense_runs(q_emb, doc_emb, doc_ids, splits, dims), doc_emb


def read_trec_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``) as a Run.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line without 6 columns or with a non-numeric score (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run file")
    run: Run = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            qid, _, doc_id, _, score = fields[:5]
            run.setdefault(qid, {})[doc_id] = float(score)
        except ValueError as err:
            raise ValueError(
                f"{path}:{line_no}: expected 'qid Q0 docid rank score tag', got {line[:80]!r}; "
                "fix: write the run in TREC format"
            ) from err
    return run
