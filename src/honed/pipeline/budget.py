"""``honed run --time-budget``: plan the run to finish within a duration, cutting in a fixed order.

The planner is a pure function of a cost function (knobs -> seconds, from
:mod:`honed.training.cost_model`), so it can be tested without a model. It aims at
``TARGET`` x the budget, leaving room for the estimate's error, and cuts in this order:

1. **epochs**, one at a time down to 1. The run keeps its best dev epoch, and the dev curve
   flattens: on SciFact (docs/benchmarks.md) epochs 3, 4 and 5 all reached 0.788 dev nDCG@10.
   At equal steps, one pass over every training query also sees more distinct data than
   several passes over a sample, so epochs go before queries.
2. **the second round**: an epoch on re-mined rows plus a corpus re-encoding and mining, kept
   only when it beats the first round on dev (+1.5 dev points on SciFact): worth less than the
   first round's pass over all the data.
3. **a seeded sample of the training queries**, the most that fits (not below
   ``MIN_TRAIN_QUERIES``): fewer distinct queries is a real loss of information.
4. **a shorter max_seq_length** (128, then 64 tokens), the queries sampled again from all of
   them: last, because it truncates the texts the model is evaluated on (SciFact's abstracts run
   past 256 tokens, and the base model gained 1.7 dev points at 512).

The order rests on those SciFact measurements and on that reasoning; the quality lost per minute
saved by each cut has not been measured cut by cut.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "BudgetPlan", "Knobs", "format_minutes", "parse_duration", "plan_budget",
]

TARGET = 0.9  # plan to 90% of the budget: the estimate may be ~10-35% off
MIN_TRAIN_QUERIES = 100  # below this a run learns little; the planner says it does not fit
SHORTER_LENGTHS = (128, 64)  # max_seq_length steps, tried in order when still over
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh])")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``20m``, ``2h``, ``1h30m`` or ``1.5h``.

    Raises:
        ValueError: not such a duration, or not positive.

    Example:
        >>> parse_duration("1h30m")
        5400.0
    """
    spec = str(text).strip().lower().replace(" ", "")
    parts = _DURATION.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec:
        raise ValueError(
            f"--time-budget: expected a duration such as 90s, 20m, 2h or 1h30m, got {text!r}; "
            "fix: give a number with its unit (s, m or h)"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(
            f"--time-budget: expected a duration above zero, got {text!r}; fix: e.g. 20m"
        )
    return seconds


def format_minutes(seconds: float) -> str:
    """``"45 s"``, ``"2.5 min"``, ``"18 min"``, ``"1.6 h"``: how budgets and estimates are printed."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Knobs:
    """What the planner may cut; None = not cut (all queries, the model's own length)."""

    epochs: int
    remine_epochs: int
    max_train_queries: int | None
    max_seq_length: int | None


@dataclass(frozen=True)
class BudgetPlan:
    """The planned run: its knobs, its estimate and what was cut, in order."""

    budget_seconds: float
    knobs: Knobs
    estimated_seconds: float
    fits: bool
    cuts: tuple[str, ...]
    train_queries: int  # training queries available before any sample
    model_length: int  # the model's own max_seq_length

    def sentence(self) -> str:
        """E.g. "budget 20 min: 3 epochs on 4,000 of 14,979 training queries, max_seq_length
        128, no second round; estimated 18 min"."""
        k = self.knobs
        queries = k.max_train_queries or self.train_queries
        head = f"budget {format_minutes(self.budget_seconds)}: {k.epochs} epoch" + (
            "s" if k.epochs != 1 else ""
        )
        head += (
            f" on {queries:,} of {self.train_queries:,} training queries"
            if queries < self.train_queries
            else f" on all {self.train_queries:,} training queries"
        )
        head += f", max_seq_length {k.max_seq_length or self.model_length}"
        head += ", no second round" if k.remine_epochs == 0 else f", second round {k.remine_epochs}"
        tail = f"; estimated {format_minutes(self.estimated_seconds)}"
        if not self.fits:
            tail += " (over the budget even with every cut: the baseline and evaluation remain)"
        return head + tail

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cuts": list(self.cuts), "sentence": self.sentence()}


def _most_queries(
    knobs: Knobs, cost: Callable[[Knobs], float], target: float, upper: int, available: int
) -> Knobs:
    """The most training queries, up to ``upper`` and not below ``MIN_TRAIN_QUERIES``, that fit.

    By bisection (the cost rises with the queries); ``available`` of them means no sample (None).
    """

    def with_queries(n: int) -> Knobs:
        return replace(knobs, max_train_queries=None if n >= available else n)

    low = min(MIN_TRAIN_QUERIES, upper)
    if cost(with_queries(upper)) <= target:
        return with_queries(upper)
    if cost(with_queries(low)) > target:
        return with_queries(low)
    high = upper
    while high - low > max(1, upper // 200):  # to 0.5% of the queries
        middle = (low + high) // 2
        if cost(with_queries(middle)) <= target:
            low = middle
        else:
            high = middle
    return with_queries(low)

def plan_budget(
    budget_seconds: float,
    cost: Callable[[Knobs], float],
    start: Knobs,
    train_queries: int,
    model_length: int,
) -> BudgetPlan:
    """The run with the fewest cuts, in the module's order, whose ``cost`` fits the budget.

    Example:
        >>> plan = plan_budget(500, lambda k: 100 * k.epochs + 50 * k.remine_epochs,
        ...                    Knobs(5, 1, None, None), 1000, 256)
        >>> plan.knobs.epochs, plan.knobs.remine_epochs
        (4, 1)
    """
    if not budget_seconds > 0 or math.isinf(budget_seconds):
        raise ValueError(f"budget_seconds: expected a positive number, got {budget_seconds}")
    target = TARGET * budget_seconds
    knobs, cuts = start, []
    while cost(knobs) > target and knobs.epochs > 1:
        knobs = replace(knobs, epochs=knobs.epochs - 1)
    if knobs.epochs != start.epochs:
        cuts.append(f"epochs {start.epochs} -> {knobs.epochs}")
    if cost(knobs) > target and knobs.remine_epochs:
        knobs = replace(knobs, remine_epochs=0)
        cuts.append("second round off")
    lengths = [n for n in SHORTER_LENGTHS if n < (start.max_seq_length or model_length)]
    upper = min(train_queries, start.max_train_queries or train_queries)
    knobs = _most_queries(knobs, cost, target, upper, train_queries)
    while cost(knobs) > target and lengths:
        shorter = replace(knobs, max_seq_length=lengths.pop(0))
        knobs = _most_queries(shorter, cost, target, upper, train_queries)
    if knobs.max_train_queries != start.max_train_queries:
        cuts.append(f"{knobs.max_train_queries} of {train_queries} training queries")
    if knobs.max_seq_length != start.max_seq_length:
        cuts.append(f"max_seq_length {knobs.max_seq_length}")
    estimated = cost(knobs)
    return BudgetPlan(
        budget_seconds=budget_seconds,
        knobs=knobs,
        estimated_seconds=estimated,
        fits=estimated <= budget_seconds,
        cuts=tuple(cuts),
        train_queries=train_queries,
        model_length=model_length,
    )
