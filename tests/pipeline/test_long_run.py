"""The notice before a run estimated at over an hour (#15): said, never a refusal."""

from __future__ import annotations

import math

import pytest

from honed.training.long_run import LONG_RUN_SECONDS, long_run_notice


def test_no_notice_up_to_an_hour() -> None:
    assert long_run_notice(0.0) is None
    assert long_run_notice(LONG_RUN_SECONDS) is None


def test_the_notice_names_the_budget_options_in_one_line() -> None:
    notice = long_run_notice(26.5 * 3600)
    assert notice is not None and "\n" not in notice
    assert notice.startswith("training is estimated at ~26.5 h, over an hour")
    for option in ("--time-budget", "--max-train-queries N", "--epochs"):
        assert option in notice
    assert long_run_notice(70 * 60.0, "the run") == (
        "the run is estimated at ~70 min, over an hour; to fit it into less time: --time-budget "
        "30m (honed plans the run), --max-train-queries N (a sample of the training queries) or "
        "--epochs 1 (honed run --help)"
    )


def test_a_lower_threshold_is_honoured() -> None:
    assert long_run_notice(600.0, threshold=300.0) is not None


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_a_bad_estimate_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"seconds: expected a number >= 0, got"):
        long_run_notice(bad)
