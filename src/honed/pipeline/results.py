"""What ``honed run`` returns and ``report.json`` holds: the types that ``report/`` reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from honed.types import SplitMetrics

__all__ = ["RunResult"]

@dataclass(frozen=True)
class RunResult:
    """The outcome of ``honed run``; ``report.json`` is this, serialised."""

    run_dir: str
    config: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, SplitMetrics]  # system (base, bm25, tuned, hybrid) -> split -> dim -> metric
    mining: dict[str, Any]
    training: dict[str, Any]
    timings: dict[str, float]
    encode_stats: dict[str, int]
    verdict: dict[str, Any]
    environment: dict[str, str]
    evidence: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # the budget planner; {} in older runs
    # stage -> {estimate_seconds, corrected_seconds, actual_seconds} (honed.pipeline.run_estimates)
    estimates: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: dict[str, Any] | None = None  # the --time-budget plan (honed.pipeline.budget)
    # 1 + the times the run was resumed; ``timings`` add up every session's seconds per stage.
    sessions: int = 1
