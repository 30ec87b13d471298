"""The dev evaluator: full-corpus retrieval on the dev split at every Matryoshka dim.

It scores with honed's own metrics and shares its corpus encoding with the final evaluation
through the embedding cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.evaluation import SentenceEvaluator

from honed.encoding.dims import truncate
from honed.encoding.encoder import EmbeddingCache, model_fingerprint
from honed.evaluation.metrics import evaluate
from honed.retrieval.dense import search

__all__ = ["DevEvaluator", "dev_metrics"]


class DevEvaluator(SentenceEvaluator):  # type: ignore[misc]
    """Full-corpus retrieval on the dev split at every dim; primary metric ``dev_ndcg@10`` at full dim.

    The corpus goes through the shared :class:`EmbeddingCache`, keyed by the weights' fingerprint, so
    the final test evaluation of the kept epoch finds its corpus encoding already there.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        doc_ids: Sequence[str],
        doc_texts: Sequence[str],
        dims: Sequence[int],
        cache: EmbeddingCache,
    ) -> None:
        super().__init__()
        self.queries, self.qrels, self.dims, self.cache = queries, qrels, tuple(dims), cache
        self.doc_ids, self.doc_texts = doc_ids, doc_texts
        self.primary_metric = "dev_ndcg@10"
        self.history: list[dict[str, float]] = []

    def __call__(
        self,
        model: SentenceTransformer,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        metrics = dev_metrics(
            model, self.queries, self.qrels, self.doc_ids, self.doc_texts, self.dims, self.cache
        )
        self.history.append({"epoch": float(epoch), "step": float(steps), **metrics})
        return metrics


def dev_metrics(
    model: SentenceTransformer,
    queries: Mapping[str, str],
    qrels: Mapping[str, Any],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    dims: Sequence[int],
    cache: EmbeddingCache,
) -> dict[str, float]:
    """nDCG@10 (and Recall@10) on ``qrels`` at every dim, corpus encoded through ``cache``."""
    fingerprint = model_fingerprint(model)  # weights change during training: no memo
    qids = sorted(qrels)
    # disk=False: weights in training are new every epoch; no later run could reuse these.
    # A bar over the corpus: on a large one this is the longest part of an epoch's end.
    doc_emb = cache.encode(model, doc_texts, True, fingerprint, disk=False)  # (n_docs, dim)
    query_emb = cache.encode(model, [queries[q] for q in qids], fingerprint=fingerprint, disk=False)
    metrics: dict[str, float] = {}
    for dim in dims:
        run = search(truncate(query_emb, dim), truncate(doc_emb, dim), qids, doc_ids, k=10)
        scores = evaluate(dict(qrels), run, ["ndcg@10", "recall@10"])
        suffix = "" if dim == max(dims) else f"@{dim}d"
        metrics[f"dev_ndcg@10{suffix}"] = scores["ndcg@10"]
        metrics[f"dev_recall@10{suffix}"] = scores["recall@10"]
    model.train()
    return metrics
