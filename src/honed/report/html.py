"""``report.html``: the run's report as one self-contained page, with charts and a query explorer.

One file that opens from disk with no network: the style sheet, the script and the data are
inlined (``assets/`` beside this module are package data), and the charts are SVG drawn by that
script. The verdict and the warnings are rendered here in the words of ``report.md``
(:mod:`honed.report.html_sections`); the script draws metric vs dimension, the training curve,
the deployment planner's Pareto front, the per-query explorer and the mining plot from the
embedded JSON.

The page reads only the :class:`~honed.pipeline.results.RunResult` and files of the run folder:
``metrics/explorer_test.json`` and ``mining_samples.json``, written by
:mod:`honed.pipeline.explorer_data`. A folder from an older honed has neither: the page then
says what is missing and how to get it.

Example:
    >>> write_html(run, Path("runs/scifact"))  # doctest: +SKIP
    PosixPath('runs/scifact/report.html')
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from honed.evaluation.significance import TIE_TOLERANCE
from honed.files import write_text
from honed.index.planner import PlanResult
from honed.pipeline.results import RunResult
from honed.report.html_sections import (
    metrics_html,
    run_facts,
    timings_html,
    verdict_html,
    warnings_html,
    warnings_of,
)

__all__ = [
    "EXPLORER_FILE",
    "MINING_SAMPLES_FILE",
    "REPORT_HTML",
    "html_from_folder",
    "render_html",
    "write_html",
]

REPORT_HTML = "report.html"
EXPLORER_FILE = "metrics/explorer_test.json"
MINING_SAMPLES_FILE = "mining_samples.json"

_RECOMPUTE = (
    "fix: `honed run --resume {run_dir}` recomputes it from the saved model (load, baseline, "
    "mining and evaluation run again; the model is not trained again) and writes report.html"
)


def _asset(name: str) -> str:
    return (resources.files("honed.report") / "assets" / name).read_text(encoding="utf-8")


def _read(path: Path) -> dict[str, Any] | None:
    """A JSON file of the run folder, or None when it is absent (older runs)."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err}); fix: delete it and run `honed run --resume "
            f"{path.parent}` to write it again"
        ) from None
    return value if isinstance(value, dict) else None


def _outcome(base: float, tuned: float) -> str:
    # The paired tests' tolerance: the explorer's counts equal report.md's wins / ties / losses.
    delta = tuned - base
    return "win" if delta > TIE_TOLERANCE else "loss" if delta < -TIE_TOLERANCE else "tie"


def _explorer(out: Path) -> dict[str, Any]:
    record = _read(out / EXPLORER_FILE)
    if record is None:
        return {
            "missing": f"{out / EXPLORER_FILE} is missing: this run folder was written by an "
            "older honed, which did not record each query's top 10. "
            + _RECOMPUTE.format(run_dir=out)
        }
    for query in record["queries"].values():
        query["outcome"] = _outcome(query["base_ndcg"], query["tuned_ndcg"])
    return record


def _mining(out: Path) -> dict[str, Any]:
    samples = _read(out / MINING_SAMPLES_FILE)
    if samples is None:
        return {
            "missing": f"{out / MINING_SAMPLES_FILE} is missing (an older run folder): the "
            "counts above come from report.json; the score distributions need the mined scores. "
            + _RECOMPUTE.format(run_dir=out)
        }
    return samples


def _plan(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The planner's test rows with the Pareto fronts marked, or None when it did not run."""
    if not plan or "test" not in plan:
        return None
    test = PlanResult.from_dict(plan["test"])
    return {
        "rows": plan["test"]["rows"],
        "front_bytes": [r.name for r in test.pareto("bytes_per_doc")],
        "front_latency": [r.name for r in test.pareto("latency_ms_median")],
        "recommended": test.recommended.name,
        "reference": test.reference.name,
        "dev_recommended": plan.get("dev", {}).get("recommended", {}).get("name"),
    }


def _payload(run: RunResult, out: Path) -> dict[str, Any]:
    """What the script draws: metrics, training curve, plan, explorer and mining samples."""
    training = run.training
    return {
        "metrics": {
            system: {
                split: {dim: values["ndcg@10"] for dim, values in by_dim.items()}
                for split, by_dim in splits.items()
            }
            for system, splits in run.metrics.items()
        },
        "curve": training.get("curve", []),
        "loss_curve": training.get("loss_curve", []),
        "best_epoch": training.get("best_epoch"),
        "plan": _plan(run.plan),
        "plan_skipped": (run.plan or {}).get("skipped"),
        "explorer": _explorer(out),
        "mining": _mining(out),
        "mining_report": run.mining,
    }


def _json_for_script(payload: Any) -> str:
    # Inside <script>, "</script>" or "<!--" in a query or snippet would end the element early;
    # escaping every "<" as \u003c keeps the JSON valid and the HTML parser blind to it.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def render_html(run: RunResult, out: Path) -> str:
    """The whole page for the run in folder ``out`` (which holds the explorer and mining files)."""
    name = Path(run.data["path"]).name
    page = Template(_asset("report.html"))
    return page.substitute(
        title=f"honed run report: {name}",
        facts=run_facts(run),
        verdict=verdict_html(run),
        warnings=warnings_html(warnings_of(run)),
        test_table=metrics_html(run.metrics, "test"),
        dev_table=metrics_html(run.metrics, "dev"),
        timings=timings_html(run),
        style=_asset("report.css"),
        script=_asset("report.js"),
        data=_json_for_script(_payload(run, Path(out))),
    )


def write_html(run: RunResult, out: Path) -> Path:
    """Write ``out / report.html`` atomically; returns its path."""
    path = Path(out) / REPORT_HTML
    write_text(path, render_html(run, Path(out)))
    return path


def html_from_folder(run_dir: str | Path) -> Path:
    """``honed report RUN_DIR --html``: render report.html from the folder's report.json.

    Raises:
        FileNotFoundError: no ``report.json`` (not a finished run folder).
        ValueError: report.json is not a run's report.
    """
    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; fix: point at a finished `honed run` folder"
        )
    try:
        run = RunResult(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: not a honed run report ({err}); fix: point at the --out folder of `honed run`"
        ) from None
    return write_html(run, run_dir)
