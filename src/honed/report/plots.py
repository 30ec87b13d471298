"""The run's plots (``plots/*.png``) from a :class:`~honed.pipeline.results.RunResult`.

matplotlib is imported inside the functions: it is needed only when a report is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["write_plots"]


def _evidence_plots(evidence: Mapping[str, Any], folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    test = evidence["test"]
    deltas = list(test["ndcg_delta"].values())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(deltas, bins=40, color="tab:blue")
    ax.axvline(0, color="black", linewidth=0.8)
    better, worse = sum(d > 1e-9 for d in deltas), sum(d < -1e-9 for d in deltas)
    ax.set_title(f"Per-query nDCG@10 change, tuned - base ({better} better, {worse} worse)")
    ax.set_xlabel("nDCG@10 change")
    ax.set_ylabel("test queries")
    fig.tight_layout()
    paths = [folder / "per_query_delta.png"]
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    pairs = [(a or 150, b or 150) for a, b in test["first_rank"].values()]
    ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], s=10, alpha=0.5)
    ax.plot([1, 150], [1, 150], color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("base: rank of first relevant (150 = not in top 100)")
    ax.set_ylabel("tuned: rank of first relevant")
    ax.set_title("Below the diagonal: tuned ranks it higher")
    fig.tight_layout()
    paths.append(folder / "first_rank.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def write_plots(run: RunResult, folder: Path) -> list[Path]:
    """``ndcg_vs_dim.png`` and ``training_curve.png``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, style in (("test", "-"), ("dev", ":")):
        dims = sorted(int(d) for d in run.metrics["base"][split])  # ascending, for the x axis
        for system in ("base", "tuned"):
            if system in run.metrics:
                ys = [run.metrics[system][split][str(d)]["ndcg@10"] for d in dims]
                ax.plot(dims, ys, style, marker="o", label=f"{system} ({split})")
        if "bm25" in run.metrics:
            ax.axhline(
                run.metrics["bm25"][split]["bm25"]["ndcg@10"],
                linestyle=style,
                color="grey",
                label=f"BM25 ({split})",
            )
        if "hybrid" in run.metrics:
            ax.axhline(
                run.metrics["hybrid"][split]["hybrid"]["ndcg@10"],
                linestyle=style,
                color="tab:green",
                label=f"hybrid ({split})",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_xlabel("embedding dimension (Matryoshka prefix)")
    ax.set_ylabel("nDCG@10")
    ax.set_title("Retrieval quality vs dimension")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(folder / "ndcg_vs_dim.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    written.append(_training_plot(run.training, folder / "training_curve.png"))
    if run.evidence:
        written += _evidence_plots(run.evidence, folder)
    return written


def _training_plot(training: Mapping[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    curve = training["curve"]
    for key in [k for k in curve[0] if k.startswith("dev_ndcg@10")]:
        ax.plot([c["epoch"] for c in curve], [c.get(key) for c in curve], marker="o", label=key)
    ax.set_xlabel("epoch (0 = untuned)")
    ax.set_ylabel("dev nDCG@10")
    ax.grid(alpha=0.3)
    losses = training["loss_curve"]
    if losses:
        twin = ax.twinx()
        twin.plot(
            [p["epoch"] for p in losses],
            [p["loss"] for p in losses],
            color="grey",
            alpha=0.5,
            label="train loss",
        )
        twin.set_ylabel("train loss")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
