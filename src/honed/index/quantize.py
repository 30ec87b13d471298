"""The fast tier of a two-stage index: short Matryoshka vectors, optionally quantised, and their scores.

A Matryoshka model's first ``d`` dimensions are an embedding of their own, so a corpus can be
searched at ``d`` dims to shortlist candidates that the full vectors then re-rank. This module
holds the short codes and scores queries against them; :mod:`honed.index.store` stores them.

Bytes per document in the fast tier, for a shortlist dim ``d`` (384-dim float32 is 1,536 B):

| precision | bytes per doc | at d = 128 | scoring |
|---|---|---:|---|
| float32 | ``4 d`` | 512 | dot product (BLAS) |
| int8 | ``d`` (+ ``4 d`` bytes of scales per corpus) | 128 | int8 x int8 -> int32 dot product |
| binary | ``ceil(d / 8)`` | 16 | ``d - 2 * hamming``: the dot product of the sign vectors |

int8 is symmetric and per dimension: ``scale[j] = max_i |x[i, j]| / 127`` over the corpus, so no
document value is clipped. The query is folded with the scales and quantised on its own range,
which keeps every score an integer dot product (exact and fast) and changes only its order by
rounding.
"""

from __future__ import annotations

import logging
import math
import warnings
from enum import Enum

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Quantization",
    "as_quantization",
    "bytes_per_doc",
    "fast_scores",
    "int8_scales",
    "quantize",
    "top_rows",
]


class Quantization(str, Enum):
    """How the shortlist vectors are stored."""

    FLOAT32 = "float32"
    INT8 = "int8"
    BINARY = "binary"


def as_quantization(precision: Quantization | str) -> Quantization:
    """``precision`` as a :class:`Quantization`; ValueError naming the allowed values."""
    try:
        return Quantization(precision)
    except ValueError:
        allowed = ", ".join(q.value for q in Quantization)
        raise ValueError(f"precision: expected one of {allowed}, got {precision!r}") from None


def bytes_per_doc(dim: int, precision: Quantization | str) -> int:
    """Bytes one document takes in the fast tier at ``dim`` dims.

    >>> bytes_per_doc(128, "float32"), bytes_per_doc(128, "int8"), bytes_per_doc(128, "binary")
    (512, 128, 16)
    """
    precision = as_quantization(precision)
    if precision is Quantization.FLOAT32:
        return 4 * dim
    if precision is Quantization.INT8:
        return dim
    return math.ceil(dim / 8)


def int8_scales(short: np.ndarray) -> np.ndarray:
    """Per-dimension symmetric int8 scales ``max |x| / 127`` of ``short`` ``(n, d)``, shape ``(d,)``.

    A dimension that is zero in every row gets scale 1 (any scale codes it as 0). For a corpus
    read in chunks, take ``np.maximum`` of the chunks' scales.
    """
    peak = np.abs(np.asarray(short, dtype=np.float32)).max(axis=0)  # (d,)
    return np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)


def quantize(
    short: np.ndarray, precision: Quantization | str, scales: np.ndarray | None = None
) -> np.ndarray:
    """Fast-tier codes of L2-normalised ``short`` ``(n, d)`` float vectors.

    Returns:
        float32 ``(n, d)``; int8 ``(n, d)`` (``round(x / scales)``, needs ``scales``); or binary
        ``(n, ceil(d / 8))`` uint8, the sign bits packed by ``np.packbits`` (bit set = positive).
    """
    precision = as_quantization(precision)
    short = np.asarray(short, dtype=np.float32)
    if precision is Quantization.FLOAT32:
        return short
    if precision is Quantization.BINARY:
        return np.packbits(short > 0, axis=1)  # (n, ceil(d / 8))
    if scales is None:
        raise ValueError("int8 quantisation needs the corpus scales (int8_scales)")
    return np.clip(np.rint(short / scales), -127, 127).astype(np.int8)  # (n, d)


def _int8_query(query_short: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Queries folded with the document scales and quantised per row to int8: ``(n_q, d)``."""
    folded = query_short * scales  # (n_q, d): q . (codes * scales) == (q * scales) . codes
    peak = np.abs(folded).max(axis=1, keepdims=True)  # (n_q, 1)
    peak[peak == 0] = 1.0
    return np.rint(folded / peak * 127).astype(np.int8)


def _int8_dot(codes: np.ndarray, query_codes: np.ndarray) -> np.ndarray:
    """``query_codes @ codes.T`` accumulated in int32: ``(n_q, n_docs)``.

    numpy has no int8 GEMM (its integer matmul is a plain loop, ~8x slower than BLAS float32),
    so this uses torch's int8 kernel, a dependency anyway. Integer sums are exact, so numpy's
    loop, used when torch lacks the kernel, returns the same numbers, only slower.
    """
    import torch

    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is None:  # pragma: no cover - torch < 2.2
        logger.info("torch has no _int_mm: int8 scoring runs in numpy (same scores, slower)")
        return query_codes.astype(np.int32) @ codes.T.astype(np.int32)
    with warnings.catch_warnings():  # a read-only memmap: torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        docs = torch.from_numpy(codes)
    queries = torch.from_numpy(np.ascontiguousarray(query_codes.T))  # (d, n_q)
    return int_mm(docs, queries).numpy().T  # (n_q, n_docs)


def _popcount(values: np.ndarray) -> np.ndarray:
    counter = getattr(np, "bitwise_count", None)  # numpy >= 2.0
    if counter is not None:
        return counter(values)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # pragma: no cover
    return table[values.view(np.uint8)]  # pragma: no cover


def _binary_scores(codes: np.ndarray, query_codes: np.ndarray, dim: int) -> np.ndarray:
    """``dim - 2 * hamming(query, doc)``, the dot product of the +-1 sign vectors: ``(n_q, n_docs)``."""
    width = codes.shape[1]
    if width % 8 == 0:  # 64 bits at a time: 8x fewer xor/popcount operations than bytes
        codes, query_codes = (
            codes.view(np.uint64),
            np.ascontiguousarray(query_codes).view(np.uint64),
        )
    scores = np.empty((query_codes.shape[0], codes.shape[0]), dtype=np.float32)
    for row, query in enumerate(query_codes):
        hamming = _popcount(codes ^ query).sum(axis=1, dtype=np.int32)  # (n_docs,)
        scores[row] = dim - 2 * hamming
    return scores


def fast_scores(
    query_short: np.ndarray,
    codes: np.ndarray,
    precision: Quantization | str,
    scales: np.ndarray | None = None,
) -> np.ndarray:
    """Scores of L2-normalised ``query_short`` ``(n_q, d)`` against fast-tier ``codes``.

    Returns:
        ``(n_q, n_docs)`` scores in which a higher value means more similar. Only their order
        is meaningful for int8 and binary (integers on another scale than cosine).
    """
    precision = as_quantization(precision)
    query_short = np.asarray(query_short, dtype=np.float32)
    if precision is Quantization.FLOAT32:
        return query_short @ codes.T  # (n_q, n_docs)
    if precision is Quantization.BINARY:
        return _binary_scores(codes, np.packbits(query_short > 0, axis=1), query_short.shape[1])
    if scales is None:
        raise ValueError("int8 scoring needs the corpus scales (int8_scales)")
    return _int8_dot(codes, _int8_query(query_short, scales))


def shortlist_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` best scores of each row of ``scores`` ``(n_q, n)``, ascending.

    The set :func:`top_rows` returns, without ranking it: a shortlist is re-ranked anyway, and
    sorting 5,000 candidates by score costs more than finding them (argpartition is O(n)).
    Ascending row order makes the gather of their full vectors walk memory forwards.
    """
    n = scores.shape[1]
    k = min(k, n)
    return np.sort(np.argpartition(scores, n - k, axis=1)[:, n - k :], axis=1)  # (n_q, k)


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` best scores of each row of ``scores`` ``(n_q, n)``, best first.

    ``argpartition`` finds them in O(n); only those ``k`` are sorted, equal scores by lower
    index first, so results are reproducible.
    """
    n = scores.shape[1]
    k = min(k, n)
    part = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # (n_q, k), unordered
    part_scores = np.take_along_axis(scores, part, axis=1)  # (n_q, k)
    order = np.lexsort((part, -part_scores), axis=1)  # (n_q, k)
    return np.take_along_axis(part, order, axis=1)
