"""The shared shapes of honed, defined once: judgments, runs and metric tables.

Qrels and runs are plain nested dicts, as in ranx and pytrec_eval, so that any tool's output can
be scored and honed's output read by any tool.
"""

from __future__ import annotations

__all__ = ["Metrics", "Qrels", "Run", "SplitMetrics", "SplitRuns"]

Qrels = dict[str, dict[str, int]]
"""query id -> document id -> graded relevance (0 = judged not relevant)."""

Run = dict[str, dict[str, float]]
"""query id -> document id -> score (higher ranks first)."""

Metrics = dict[str, float]
"""metric name (``"ndcg@10"``) -> value."""

SplitMetrics = dict[str, dict[str, Metrics]]
"""split -> dim (``"384"``, or ``"bm25"`` / ``"hybrid"`` for those systems) -> metrics."""

SplitRuns = dict[str, dict[str, Run]]
"""split -> dim -> run."""
