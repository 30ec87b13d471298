"""Matryoshka dims: which prefixes of an embedding are trained and served, and how to cut one.

A Matryoshka model is trained so that the first ``d`` coordinates, re-normalised, are an
embedding on their own. The default dims halve from the full width (384 -> 256 -> 128 -> 64):
each halving halves the index and the scan, and below 64 the quality drop of MiniLM-size
models outgrows the saving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["matryoshka_dims", "resolve_dims", "truncate"]


def matryoshka_dims(full: int, smallest: int = 64) -> tuple[int, ...]:
    """Default Matryoshka dims: the full width, then powers of two below it down to ``smallest``.

    >>> matryoshka_dims(384)
    (384, 256, 128, 64)
    """
    dims = [full]
    power = 1 << (full - 1).bit_length()  # smallest power of two >= full
    while power // 2 >= smallest:
        power //= 2
        if power < full:
            dims.append(power)
    return tuple(dims)


def resolve_dims(dims: Sequence[int] | None, width: int) -> tuple[int, ...]:
    """The dims to train and evaluate at: ``dims`` checked against the model's ``width``, or
    :func:`matryoshka_dims` of it.

    Called right after the model loads and before any encoding: a dim wider than the model used
    to fail only when the first embeddings were cut, after the whole corpus was encoded.

    Raises:
        ValueError: a dim that is not a positive integer or is larger than ``width``.

    Example:
        >>> resolve_dims(None, 384), resolve_dims([128, 64], 384)
        ((384, 256, 128, 64), (128, 64))
    """
    if dims is None:
        return matryoshka_dims(width)
    chosen = tuple(dims)
    if not chosen or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in chosen):
        raise ValueError(f"dims: expected positive integers, got {chosen}")
    too_wide = [d for d in chosen if d > width]
    if too_wide:
        example = ",".join(map(str, matryoshka_dims(width, min(64, max(1, width // 4)))))
        raise ValueError(
            f"dims: {too_wide[0]} is larger than the model's embedding width {width} (expected "
            f"dims <= {width}, got {chosen}); fix: pass --dims with values up to {width}, e.g. "
            f"--dims {example}"
        )
    return chosen


def truncate(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Keep the first ``dim`` columns of Matryoshka embeddings and L2-renormalise them.

    Args:
        embeddings: ``(n, width)`` array.
        dim: number of leading dimensions to keep, ``1 <= dim <= width``.

    Returns:
        ``(n, dim)`` float32 array whose rows have unit L2 norm.

    Raises:
        ValueError: ``embeddings`` is not 2-D, ``dim`` is out of range, or a truncated row has
            zero norm.

    Example:
        >>> truncate(np.array([[3.0, 4.0, 12.0]]), 2)
        array([[0.6, 0.8]], dtype=float32)
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (n, width) array, got shape {embeddings.shape}")
    width = embeddings.shape[1]
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if dim > width:
        raise ValueError(
            f"dim {dim} is larger than the embedding width {width}: pick a dim <= {width}"
        )
    head = embeddings[:, :dim].astype(np.float32)  # (n, dim), a copy: the input is untouched
    norms = np.linalg.norm(head, axis=1, keepdims=True)  # (n, 1)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(
            f"row {int(zero[0])} has zero norm in its first {dim} dimensions "
            f"({zero.size} such rows): cannot renormalise; use a larger dim"
        )
    return head / norms
