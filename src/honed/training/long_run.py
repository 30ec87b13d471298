"""The one-line notice ``honed run`` gives before a run estimated at over an hour.

It does not refuse: a long run may be what the user wants. It says how long, and names the
options that make a run fit into less time, so that nobody cancels a run at minute 40 without
knowing there was a shorter one.
"""

from __future__ import annotations

__all__ = ["LONG_RUN_SECONDS", "long_run_notice"]

#: Runs estimated above this get the notice.
LONG_RUN_SECONDS = 3600.0


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def long_run_notice(
    seconds: float, what: str = "training", threshold: float = LONG_RUN_SECONDS
) -> str | None:
    """The notice for ``what`` estimated at ``seconds``, or None when it fits in ``threshold``.

    Raises:
        ValueError: ``seconds`` is negative or not a number.

    Example:
        >>> long_run_notice(1800.0) is None
        True
        >>> print(long_run_notice(3 * 3600.0))
        training is estimated at ~3.0 h, over an hour; to fit it into less time: --time-budget 30m (honed plans the run), --max-train-queries N (a sample of the training queries) or --epochs 1 (honed run --help)
    """
    if not seconds >= 0:  # also NaN
        raise ValueError(f"seconds: expected a number >= 0, got {seconds!r}")
    if seconds <= threshold:
        return None
    return (
        f"{what} is estimated at ~{_duration(seconds)}, over an hour; to fit it into less time: "
        "--time-budget 30m (honed plans the run), --max-train-queries N (a sample of the "
        "training queries) or --epochs 1 (honed run --help)"
    )
