"""Mined rows as the ``datasets.Dataset`` the sentence-transformers trainer reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from honed.training.config import LossName

if TYPE_CHECKING:
    from datasets import Dataset

    from honed.mining.rows import MinedRow

__all__ = ["build_dataset"]


def build_dataset(rows: Sequence[MinedRow], loss: LossName) -> Dataset:
    """Training rows as a ``datasets.Dataset``: columns anchor, positive, negative_1..N.

    Rows with fewer negatives than the longest row repeat theirs cyclically (a repeated negative
    only re-weights that logit; it is never a false negative). TripletLoss and GISTEmbedLoss take
    one negative per row (sentence-transformers' GIST refuses more than three columns), so each
    (query, positive, negative) becomes its own row.
    """
    from datasets import Dataset

    if not rows:
        raise ValueError(
            "rows: expected at least one mined row, got none; fix: check the training split"
        )
    if loss in (LossName.TRIPLET, LossName.GIST):
        triples = [(r.query, r.positive, n) for r in rows for n in r.negatives]
        return Dataset.from_dict(
            {
                "anchor": [t[0] for t in triples],
                "positive": [t[1] for t in triples],
                "negative": [t[2] for t in triples],
            }
        )
    width = max(len(r.negatives) for r in rows)
    columns: dict[str, list[str]] = {
        "anchor": [r.query for r in rows],
        "positive": [r.positive for r in rows],
    }
    for j in range(width):
        columns[f"negative_{j + 1}"] = [r.negatives[j % len(r.negatives)] for r in rows]
    return Dataset.from_dict(columns)
