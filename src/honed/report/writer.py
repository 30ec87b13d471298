"""Write a run folder's report: ``report.md``, ``report.html``, ``plots/*.png`` and the model card."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from honed.files import write_text
from honed.report.html import write_html
from honed.report.markdown import render_markdown
from honed.report.model_card import write_model_card
from honed.report.plots import write_plots

if TYPE_CHECKING:
    from honed.pipeline.results import RunResult

__all__ = ["write_report"]


def write_report(run: RunResult, out: Path) -> Path:
    """Write ``report.md``, ``report.html``, ``plots/*.png`` and the model card; returns report.md's path."""
    write_plots(run, out / "plots")
    if (out / "model").is_dir() and "tuned" in run.metrics:
        write_model_card(run, out / "model")
    path = out / "report.md"
    write_text(path, render_markdown(run))  # atomic: a killed re-render leaves the old report
    write_html(run, out)
    return path
