"""The parts of ``report.html`` written in Python: verdict, warnings, tables, timings.

Everything a reader must not miss is rendered here, as plain HTML that needs no script: the
verdict in the words of ``report.md`` (the one decider, :mod:`honed.pipeline.verdict`, wrote
them; nothing here decides) and the leakage, shift and overfitting warnings. The charts and the
query explorer are drawn by ``assets/report.js`` from the data that :mod:`honed.report.html`
embeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from honed.evaluation.deployment import verdict_headline
from honed.report.markdown import COLUMNS, HEADERS

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = [
    "metrics_html",
    "run_facts",
    "timings_html",
    "verdict_html",
    "warnings_of",
    "warnings_html",
]


def verdict_html(run: RunResult) -> str:
    """The headline, the verdict's sentences and the model to use, as report.md has them."""
    verdict = run.verdict
    items = "".join(f"<li>{escape(s)}</li>" for s in verdict["sentences"])
    if verdict["recommendation"] == "tuned":
        model = f"<code>{escape(run.run_dir)}/model</code> (tuned)"
    else:
        model = f"<code>{escape(str(run.config['base_model']))}</code> (base)"
    return (
        f'<p class="headline">{escape(verdict_headline(verdict))}</p>'
        f"<ul>{items}</ul><p>Model: {model}</p>"
    )


def _leakage_warnings(leak: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = len(leak["exact"]) + len(leak["near"])
    out = []
    if leak["allowed"] and found:
        out.append(
            (
                "alert",
                f"Leakage: {len(leak['exact'])} exact and {len(leak['near'])} near duplicates of "
                "test queries were KEPT in training (--allow-leakage): the test metrics are NOT "
                "clean.",
            )
        )
    elif leak.get("dropped_from_training"):
        out.append(
            (
                "note",
                f"Leakage: {leak['dropped_from_training']} training queries duplicated test "
                f"queries ({len(leak['exact'])} exact, {len(leak['near'])} near) and were dropped "
                "from train/dev, so the test metrics stay clean.",
            )
        )
    shared = leak.get("shared_positives") or {}
    if shared.get("test_queries_with_a_training_positive"):
        out.append(
            (
                "note",
                f"Seen text: {shared['test_queries_with_a_training_positive']} of "
                f"{shared['test_queries']} test queries have a relevant document that is also a "
                "training positive.",
            )
        )
    return out


def warnings_of(run: RunResult) -> list[tuple[str, str]]:
    """``(level, sentence)`` for each warning of the run; level is alert, warn or note."""
    evidence = run.evidence or {}
    out: list[tuple[str, str]] = []
    if "leakage" in evidence:
        out += _leakage_warnings(evidence["leakage"])
    if evidence.get("overfitting_warning"):
        out.append(("warn", f"Overfitting: {evidence['overfitting_warning']}"))
    # Every split against test (dev too, as `honed check` says) covers train vs test: one line,
    # not the same finding twice; runs recorded before "splits" existed keep their train line.
    if "splits" in evidence:
        for warning in (evidence.get("splits") or {}).get("warnings", []):
            out.append(("warn", f"Splits vs test: {warning}"))
    else:
        for warning in (evidence.get("shift") or {}).get("warnings", []):
            out.append(("warn", f"Train/test shift: {warning}"))
    out += [("warn", f"Data: {w}") for w in run.data.get("warnings", [])]
    return out


def warnings_html(warnings: Sequence[tuple[str, str]]) -> str:
    """The warnings box under the verdict, or a line saying that every check passed."""
    if not warnings:
        return (
            '<p class="ok">No leakage, train/test shift or overfitting warning: the checks of '
            "report.md found nothing to flag.</p>"
        )
    rows = "".join(f'<li class="{level}">{escape(text)}</li>' for level, text in warnings)
    return f'<ul class="warnings">{rows}</ul>'


def metrics_html(metrics: Mapping[str, Any], split: str) -> str:
    """Every system at every dim on ``split`` (the table of report.md), tuned with its change."""
    head = "".join(f"<th>{h}</th>" for h in HEADERS)
    rows = []

    def row(
        system: str, dim: str, values: Mapping[str, float], base: Mapping[str, float] | None
    ) -> str:
        cells = "".join(
            f"<td>{values[c]:.4f}"
            + (f' <span class="delta">({values[c] - base[c]:+.3f})</span>' if base else "")
            + "</td>"
            for c in COLUMNS
        )
        return f'<tr class="{system}"><th>{system}</th><td>{dim}</td>{cells}</tr>'

    dims = sorted(metrics["base"][split], key=int, reverse=True)
    if "bm25" in metrics:
        rows.append(row("BM25", "-", metrics["bm25"][split]["bm25"], None))
    rows += [row("base", d, metrics["base"][split][d], None) for d in dims]
    if "tuned" in metrics:
        base = metrics["base"][split]
        rows += [row("tuned", d, metrics["tuned"][split][d], base[d]) for d in dims]
    if "hybrid" in metrics:
        rows.append(row("hybrid", "-", metrics["hybrid"][split]["hybrid"], None))
    return (
        f'<table class="metrics"><thead><tr><th>system</th><th>dim</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def timings_html(run: RunResult) -> str:
    """Seconds per stage and the environment, at the foot of the page."""
    estimates = getattr(run, "estimates", None) or {}  # older runs have none

    def estimated(stage: str) -> str:
        value = estimates.get(stage, {}).get("estimate_seconds")
        return "" if value is None else f" (estimated {value:.1f})"

    stages = "".join(
        f"<tr><th>{escape(k)}</th><td>{v:.1f}{estimated(k)}</td></tr>"
        for k, v in run.timings.items()
    )
    total = sum(run.timings.values())
    env = "".join(
        f"<li>{escape(str(k))}: {escape(str(v))}</li>" for k, v in run.environment.items()
    )
    return (
        f'<table class="small"><tbody>{stages}<tr><th>total</th><td>{total:.1f}</td></tr>'
        f'</tbody></table><ul class="env">{env}</ul>'
    )


def run_facts(run: RunResult) -> str:
    """One line under the title: data, base model, dims, queries per split."""
    data, splits = run.data, run.data.get("splits", {})
    per_split = ", ".join(f"{name} {s['queries']}" for name, s in splits.items())
    dims = ", ".join(map(str, run.training.get("dims", [])))
    return escape(
        f"{data['documents']:,} documents, queries: {per_split}. Base model "
        f"{run.config['base_model']}; Matryoshka dims {dims}."
    )
