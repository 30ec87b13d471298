"""Was fine-tuning worth it? Three plain kinds, with the uncertainty that decides between them.

The tuned model is chosen on dev (choosing on test would make the test score a dev score); the
test split then confirms the choice or does not. :func:`judge_fine_tuning` says which:

* **worth it**: the tuned model gained on dev, and on test it beats the base model by a
  significant margin (the paired randomization test on per-query nDCG@10 of
  :mod:`honed.evaluation.significance`, ``p < 0.05``, with a positive difference);
* **not confirmed**: it gained on dev, but on test the difference is within noise or negative.
  The first line says so and what to try: more training data, fewer epochs, a look at the
  train/test shift (``honed check``);
* **not worth it**: no gain on dev; keep the base model (or BM25 when it wins on dev).

A dev split under ``SMALL_DEV`` (100) queries is named as the likely reason when the verdict is
not "worth it": the standard error of a mean nDCG@10 difference over n queries is about
``sd / sqrt(n)`` with a per-query sd of the difference near 0.2-0.3 on the datasets honed was
tried on, so 39 dev queries cannot tell a 2-point gain (0.02) from noise (se 0.03-0.05), while
100 queries bring the standard error to 0.02-0.03, the size of the gains fine-tuning brings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["SMALL_DEV", "FineTuneJudgement", "VerdictKind", "judge_fine_tuning"]

SMALL_DEV = 100
SIGNIFICANCE = 0.05  # the paired test's usual two-sided level; PairedTest.significant uses it


class VerdictKind(str, Enum):
    """The three verdicts a run can reach about fine-tuning."""

    WORTH_IT = "worth it"
    NOT_CONFIRMED = "not confirmed"
    NOT_WORTH_IT = "not worth it"


@dataclass(frozen=True)
class FineTuneJudgement:
    """The kind and the first line of the verdict (report.md, the summary, the model card)."""

    kind: VerdictKind
    line: str


def _points(delta: float) -> str:
    return f"{round(delta * 100, 1) + 0.0:+.1f}"


def _small_dev(dev_queries: int | None) -> str:
    if dev_queries is None or dev_queries >= SMALL_DEV:
        return ""
    return (
        f" The dev split has only {dev_queries} queries (under {SMALL_DEV}): too few to tell a "
        "small gain from noise, which may be why."
    )


def _confirmed(test: Mapping[str, Any] | None) -> bool:
    return bool(test) and test["delta"] > 0 and test["p_value"] < SIGNIFICANCE  # type: ignore[index]


def judge_fine_tuning(
    base_dev: float,
    tuned_dev: float,
    test: Mapping[str, Any] | None,
    dev_queries: int | None = None,
    shift: bool = False,
) -> FineTuneJudgement:
    """The kind of the verdict and its first line, from dev nDCG@10 and the test's paired test.

    Args:
        base_dev: the base model's dev nDCG@10 at full dim.
        tuned_dev: the tuned model's.
        test: the paired test of tuned vs base on test nDCG@10 (a
            :class:`~honed.evaluation.significance.PairedTest` as a dict: ``delta``,
            ``p_value``, ``sentence``), or None when there is none (then nothing is confirmed).
        dev_queries: queries in the dev split, named as the reason when under ``SMALL_DEV``.
        shift: whether the train/test shift check warned (the advice then points at it).

    Example:
        >>> test = {"delta": -0.013, "p_value": 0.5, "sentence": "-1.3 nDCG@10, p = 0.500"}
        >>> judge_fine_tuning(0.60, 0.62, test, dev_queries=39).kind.value
        'not confirmed'
    """
    gain = tuned_dev - base_dev
    dev = f"{_points(gain)} nDCG@10 on dev ({base_dev:.3f} -> {tuned_dev:.3f}" + (
        f", {dev_queries} queries)" if dev_queries is not None else ")"
    )
    if gain <= 0:
        return FineTuneJudgement(
            VerdictKind.NOT_WORTH_IT,
            f"Not worth it: fine-tuning did not help ({dev}); keep the base model."
            + _small_dev(dev_queries),
        )
    if _confirmed(test):
        return FineTuneJudgement(
            VerdictKind.WORTH_IT,
            f"Worth it: fine-tuning gained {dev} and test confirms it ({test['sentence']}).",  # type: ignore[index]
        )
    on_test = (
        "there is no paired test on test"
        if not test
        else f"on test it is {'worse' if test['delta'] < 0 else 'within noise'} "
        f"({test['sentence']})"
    )
    advice = (
        "first look at the shift warning: the training queries look unlike the test queries"
        if shift
        else "check that the training queries look like the test queries (honed check)"
    )
    return FineTuneJudgement(
        VerdictKind.NOT_CONFIRMED,
        f"Not confirmed: fine-tuning gained {dev}, but {on_test}; the tuned model is not shown "
        f"to beat the base model. Try more training data or fewer epochs, and {advice}."
        + _small_dev(dev_queries),
    )
