"""The planner's result as markdown, ``plan.json`` and a plot of quality against cost.

:func:`render_plan` is the table ``honed plan`` prints (Pareto-front rows marked) and the
recommendation; :func:`write_plan` writes it, the JSON record and ``plan.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

from honed.files import write_text
from honed.index.noise import few_queries_warning
from honed.index.planner import PlanResult
from honed.index.quantize import Quantization

__all__ = ["render_plan", "write_plan"]


def _interval(result: PlanResult) -> str:
    """``"; 95% CI of the per-query difference [-0.0040, +0.0010]"`` ("" in older plans)."""
    rec = result.recommended
    if rec.ci_low is None or rec.ci_high is None:
        return ""
    return f"; 95% CI of the per-query difference [{rec.ci_low:+.4f}, {rec.ci_high:+.4f}]"


def _rule(result: PlanResult) -> str:
    """The rule the recommendation was chosen by, with the number of queries it rests on."""
    ref, n = result.reference, result.decided_on_queries
    on = result.chosen_on or result.split
    if not result.n_resamples:  # recorded before the noise rule
        return f"Rule: the cheapest configuration within {result.tolerance:.0%} of {ref.name}."
    rule = (
        f"Rule: the cheapest configuration whose paired bootstrap 95% lower bound of per-query "
        f"nDCG@10 minus {ref.name} stays above -{result.tolerance:.0%} of {ref.name}'s nDCG@10, "
        f"on {n} {on} queries ({result.n_resamples} resamples); looking within "
        f"{result.tolerance:.0%} is not enough."
    )
    warning = few_queries_warning(n, on)
    return rule + (f"\n\n{warning}" if warning else "")


def _recommendation(result: PlanResult) -> str:
    ref, rec = result.reference, result.recommended
    head = f"Recommended: **{rec.name}**"
    if result.chosen_on and result.chosen_on != result.split:
        head = (
            f"Recommended (chosen on {result.chosen_on}, where it is the cheapest configuration "
            f"not shown worse than {ref.name} by more than {result.tolerance:.0%}): "
            f"**{rec.name}**; on {result.split}"
        )
    return (
        f"{head}: {rec.bytes_per_doc:,} B/doc in the fast tier "
        f"({ref.bytes_per_doc / rec.bytes_per_doc:.0f}x fewer than {ref.name}), nDCG@10 "
        f"{rec.ndcg_at_10:.4f} vs {ref.ndcg_at_10:.4f} ({rec.ndcg_at_10 - ref.ndcg_at_10:+.4f}"
        f"{_interval(result)}), median {rec.latency_ms_median:.2f} ms vs "
        f"{ref.latency_ms_median:.2f} ms per query.\n\n{_rule(result)}"
    )


def render_plan(result: PlanResult) -> str:
    """The result as markdown: the table (Pareto-front rows marked) and the recommendation."""
    on_bytes = {r.name for r in result.pareto("bytes_per_doc")}
    on_latency = {r.name for r in result.pareto("latency_ms_median")}
    lines = [
        f"{result.split} split: {result.n_queries} queries, {result.n_docs:,} documents, full dim "
        f"{result.dim}; final ranking min(100, shortlist) deep; latency per query, one at a time.",
        "",
        "| configuration | bytes/doc | nDCG@10 | Recall@10 | Recall@100 | median ms | p95 ms | front |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result.rows:
        front = ",".join(
            m for m, s in (("bytes", on_bytes), ("latency", on_latency)) if r.name in s
        )
        lines.append(
            f"| {r.name} | {r.bytes_per_doc:,} | {r.ndcg_at_10:.4f} | {r.recall_at_10:.4f} | "
            f"{r.recall_at_100:.4f} | {r.latency_ms_median:.2f} | {r.latency_ms_p95:.2f} | {front} |"
        )
    lines += ["", _recommendation(result)]
    return "\n".join(lines) + "\n"


def _plot(result: PlanResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    floor = result.reference.ndcg_at_10 * (1 - result.tolerance)
    for ax, cost, label in (
        (axes[0], "bytes_per_doc", "fast-tier bytes per document (log)"),
        (axes[1], "latency_ms_median", "median latency per query, ms"),
    ):
        for precision, marker in zip(Quantization, "osd"):
            rows = [r for r in result.rows if r.precision is precision and not r.exact]
            ax.scatter(
                [getattr(r, cost) for r in rows],
                [r.ndcg_at_10 for r in rows],
                marker=marker,
                alpha=0.6,
                label=f"two-stage {precision.value}",
            )
        exact = [r for r in result.rows if r.exact]
        ax.scatter(
            [getattr(r, cost) for r in exact],
            [r.ndcg_at_10 for r in exact],
            marker="x",
            color="black",
            label="exact",
        )
        front = result.pareto(cost)
        ax.step(
            [getattr(r, cost) for r in front],
            [r.ndcg_at_10 for r in front],
            where="post",
            color="gray",
            linewidth=1,
            label="Pareto front",
        )
        rec = result.recommended
        ax.scatter(
            [getattr(rec, cost)],
            [rec.ndcg_at_10],
            marker="*",
            s=200,
            color="red",
            label=f"recommended: {rec.name}"
            + (f" (chosen on {result.chosen_on})" if result.chosen_on else ""),
        )
        ax.axhline(floor, linestyle=":", color="red", linewidth=1)
        ax.set_xlabel(label)
        if cost == "bytes_per_doc":
            ax.set_xscale("log")
    axes[0].set_ylabel(f"nDCG@10 ({result.split})")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"two-stage Matryoshka search: quality vs cost (dotted: -{result.tolerance:.0%})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plan(
    result: PlanResult,
    out: str | Path,
    plot_dir: str | Path | None = None,
    markdown: bool = True,
) -> list[Path]:
    """Write ``plan.md`` (unless not ``markdown``) and ``plan.json`` into the folder ``out``, and
    ``plan.png`` into ``plot_dir`` (default: ``out``); returns the paths written.

    Example:
        >>> write_plan(result, "runs/scifact/metrics", plot_dir="runs/scifact/plots", markdown=False)  # doctest: +SKIP
    """
    folder, plots = Path(out), Path(plot_dir or out)
    for path in (folder, plots):
        path.mkdir(parents=True, exist_ok=True)
    written = []
    if markdown:
        written.append(folder / "plan.md")
        write_text(written[-1], render_plan(result))
    written.append(folder / "plan.json")
    write_text(written[-1], json.dumps(result.to_dict(), indent=2) + "\n")
    return [*written, _plot(result, plots / "plan.png")]
