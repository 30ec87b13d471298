"""trec_eval's ranking order, shared by metrics, fusion and the per-query evidence.

A run is a dict of scores; its ranking is score descending, then document id descending, as
trec_eval sorts. Every place that turns scores into ranks uses this one function, so a metric,
a fused run and a "first relevant rank" can never disagree about ties.
"""

from __future__ import annotations

__all__ = ["ranked_ids"]


def ranked_ids(qid: str, scores: dict[str, float], depth: int | None) -> list[str]:
    """Doc ids of one query's run in trec_eval order (score desc, doc id desc), cut at ``depth``."""
    for doc_id, score in scores.items():
        if score != score:  # NaN would make the sort order undefined
            raise ValueError(
                f"run score for query {qid!r}, document {doc_id!r} is NaN: "
                "scores must be real numbers; check the model output for NaNs"
            )
    # Sorting (score, doc id) pairs in reverse gives score descending, then doc id descending.
    ranked = sorted(((s, d) for d, s in scores.items()), reverse=True)
    if depth is not None:
        ranked = ranked[:depth]
    return [doc_id for _, doc_id in ranked]
