"""Argument checks shared by the folder index, its builds and the PostgreSQL replica.

Both backends take the same queries and integers, so they refuse bad ones with the same
messages; each message says what was expected and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from honed.encoding.dims import truncate

__all__ = ["check_ids", "check_queries", "check_shortlist", "check_shortlist_dim", "positive"]


def positive(name: str, value: Any) -> int:
    """``value`` as an int when it is a positive integer (not a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_queries(query_emb: np.ndarray, dim: int) -> np.ndarray:
    """``query_emb`` as ``(n_q, dim)`` float32, renormalised; ValueError naming the fix if not."""
    query_emb = np.asarray(query_emb)
    if query_emb.ndim != 2 or query_emb.shape[1] != dim:
        raise ValueError(
            f"query_emb must be (n_queries, {dim}), got shape {query_emb.shape}; "
            "fix: encode queries with the index's model (one row per query: reshape(1, -1))"
        )
    if not np.isfinite(query_emb).all():
        raise ValueError("query_emb contains NaN or infinite values: check the encoder output")
    return truncate(query_emb, dim)  # (n_q, dim) float32, normalised


def check_shortlist(k: Any, shortlist: Any) -> tuple[int, int]:
    """``(k, shortlist)`` when both are positive and ``shortlist >= k``, else ValueError."""
    k, shortlist = positive("k", k), positive("shortlist", shortlist)
    if shortlist < k:
        raise ValueError(
            f"shortlist ({shortlist}) must be >= k ({k}): the re-rank returns only shortlisted documents; fix: raise --shortlist"
        )
    return k, shortlist


def check_shortlist_dim(shortlist_dim: int, dim: int) -> None:
    """ValueError unless ``1 <= shortlist_dim <= dim`` (the model's embedding dim)."""
    positive("shortlist_dim", shortlist_dim)
    if shortlist_dim > dim:
        raise ValueError(
            f"shortlist_dim {shortlist_dim} is larger than the model's embedding dim {dim}; "
            f"fix: pick --shortlist-dim <= {dim}, e.g. one of the Matryoshka dims it was trained at"
        )


def check_ids(ids: Sequence[str], n: int, what: str) -> None:
    """ValueError unless ``ids`` holds ``n > 0`` unique ids, one per row of ``what``."""
    if len(ids) != n:
        raise ValueError(
            f"ids has {len(ids)} entries but there are {n} {what}: pass one id per row"
        )
    if n == 0:
        raise ValueError("the corpus is empty: an index needs at least one document")
    if len(set(ids)) != n:
        raise ValueError("ids contains duplicates: every document needs a unique id")
