"""Overfitting check: dev nDCG@10 falling at the end of training while the loss keeps dropping."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["overfitting_warning"]


def _sorted_records(
    records: Sequence[Mapping[str, float]], name: str, key: str
) -> list[tuple[float, float]]:
    """``(epoch, value)`` pairs of ``records`` sorted by epoch, after validation."""
    pairs = []
    for i, record in enumerate(records):
        for field in ("epoch", key):
            if field not in record:
                raise ValueError(f"{name}[{i}] has no {field!r} key: got keys {sorted(record)}")
        pair = (float(record["epoch"]), float(record[key]))
        if not all(math.isfinite(x) for x in pair):
            raise ValueError(f"{name}[{i}] has a non-finite value: {dict(record)}")
        pairs.append(pair)
    return sorted(pairs)



def overfitting_warning(
    curve: Sequence[Mapping[str, float]], losses: Sequence[Mapping[str, float]]
) -> str | None:
    """Warn when dev nDCG@10 falls at the end of training while the training loss keeps dropping.

    The falling window runs from the last dev evaluation before the trailing decline to the
    final one. The training loss "keeps dropping" when its mean inside that window is below its
    mean over the preceding evaluation interval (or, when no loss was logged before the window,
    when the second half of the window's losses averages below the first half).

    Args:
        curve: ``[{"epoch": e, "dev_ndcg@10": v}, ...]``; epoch 0 is the untuned model.
        losses: ``[{"epoch": e, "loss": l}, ...]`` logged during training.

    Returns:
        A one-sentence warning naming the epochs and values, or None when the curve does not
        fall at the end, the loss does not drop, or there are too few points to tell.

    Raises:
        ValueError: a record lacks a key or holds a non-finite value, or two dev evaluations
            share an epoch.

    Example:
        >>> curve = [{"epoch": 0, "dev_ndcg@10": 0.5}, {"epoch": 1, "dev_ndcg@10": 0.6},
        ...          {"epoch": 2, "dev_ndcg@10": 0.55}]
        >>> losses = [{"epoch": 0.5, "loss": 0.9}, {"epoch": 1.0, "loss": 0.7},
        ...           {"epoch": 1.5, "loss": 0.5}, {"epoch": 2.0, "loss": 0.4}]
        >>> overfitting_warning(curve, losses)[:47]
        'dev nDCG@10 fell from 0.600 at epoch 1 to 0.550'
    """
    points = _sorted_records(curve, "curve", "dev_ndcg@10")
    logged = _sorted_records(losses, "losses", "loss")
    epochs = [e for e, _ in points]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"curve has two dev evaluations at one epoch: epochs {epochs}")
    start = len(points) - 1
    while start > 0 and points[start][1] < points[start - 1][1] - 1e-9:
        start -= 1
    if start == len(points) - 1:
        return None  # the last evaluation did not fall
    (e_start, v_start), (e_end, v_end) = points[start], points[-1]
    inside = [loss for e, loss in logged if e_start < e <= e_end]
    e_before = points[start - 1][0] if start > 0 else -math.inf
    before = [loss for e, loss in logged if e_before < e <= e_start]
    if not before:  # no earlier interval: compare the halves of the window itself
        before, inside = inside[: len(inside) // 2], inside[len(inside) // 2 :]
    if not before or not inside or np.mean(inside) >= np.mean(before):
        return None
    return (
        f"dev nDCG@10 fell from {v_start:.3f} at epoch {e_start:g} to {v_end:.3f} at epoch "
        f"{e_end:g} while the mean training loss kept dropping ({np.mean(before):.3f} -> "
        f"{np.mean(inside):.3f}): the model is likely overfitting; keep the epoch-{e_start:g} "
        "checkpoint or train for fewer epochs"
    )
