"""``run_pipeline`` and ``resume_pipeline``: the public entry points of ``honed run``."""

from __future__ import annotations

import json
from pathlib import Path

from honed.pipeline.config import Notify, RunConfig
from honed.pipeline.results import RunResult

__all__ = ["resume_pipeline", "run_pipeline"]

def resume_pipeline(run_dir: str | Path, notify: Notify | None = None) -> RunResult:
    """Continue an interrupted ``honed run`` from its last completed stage or checkpoint.

    Load, baseline and mining are recomputed (deterministic, about a minute); training continues
    from the newest complete epoch checkpoint; a saved model is not trained again.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json`` (not a honed run folder).
        ValueError: an input file changed since the run started (its sha256 differs).
    """
    from honed.pipeline.stages import Run as _Run

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path}: no such file, so {run_dir} is not a honed run folder; "
            "fix: pass the --out folder of an earlier `honed run`"
        )
    values = json.loads(config_path.read_text(encoding="utf-8"))
    config = RunConfig.from_dict({**values, "out": str(run_dir), "overwrite": False})
    return _Run(config, notify or (lambda message: None), resume=True).execute()



def run_pipeline(config: RunConfig, notify: Notify | None = None) -> RunResult:
    """Run every stage of ``honed run`` and write the run folder; returns the result.

    Example:
        >>> result = run_pipeline(RunConfig(data="data/scifact", out="runs/scifact"))
        >>> result.verdict["recommendation"]
        'tuned'
    """
    from honed.pipeline.stages import Run as _Run

    return _Run(config, notify or (lambda message: None)).execute()
