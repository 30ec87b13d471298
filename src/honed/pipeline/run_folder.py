"""The run folder: creating it safely, and what it records about the data and the machine."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from honed.data.beir import BeirData
from honed.data.splits import Splits, positives_only
from honed.files import (
    check_unlocked,
    clear_folder,
    folder_lock,
    is_leftover,
    refuse_existing,
    sha256_file,
)
from honed.types import Qrels

__all__ = [
    "data_summary",
    "environment",
    "prepare_run_dir",
    "read_run_values",
    "run_lock",
    "train_sample",
]

def _is_run_folder(path: Path) -> bool:
    config = path / "config.json"
    text = config.read_text(encoding="utf-8", errors="replace") if config.is_file() else ""
    return "honed_version" in text


def prepare_run_dir(out: str | Path, overwrite: bool) -> Path:
    """Create the run folder; refuse to touch an existing one unless ``overwrite`` and it is honed's.

    A folder that holds only a lock file and temporary files (a run killed before it wrote
    ``config.json``) counts as empty. Replacing a run keeps the lock file, so the folder stays
    held by the process that holds it (:func:`honed.files.folder_lock`).

    Raises:
        FileExistsError: the folder exists and is not empty (names the fix), or ``overwrite`` was
            given for a folder that is not a honed run folder (nothing is deleted then).
    """
    out = Path(out)
    if out.exists() and (
        not out.is_dir() or any(not is_leftover(p.name) for p in out.iterdir())
    ):
        refuse_existing(
            out, overwrite, ours=_is_run_folder, what="a honed run folder (no honed config.json)",
            exists="run folder exists and is not empty",
        )
    out.mkdir(parents=True, exist_ok=True)
    clear_folder(out)
    return out


def run_lock(out: str | Path) -> AbstractContextManager[Path]:
    """Hold the run folder ``out`` while a run writes it: a second run or resume is refused."""
    return folder_lock(out, "honed run", fix="choose another --out")


def _count(qrels: Qrels) -> dict[str, int]:
    return {
        "queries": len(qrels),
        "pairs": sum(1 for d in qrels.values() for s in d.values() if s >= 1),
        "queries_without_positive": sum(
            1 for d in qrels.values() if not any(s >= 1 for s in d.values())
        ),
    }



def data_summary(
    data: BeirData, splits: Mapping[str, Qrels], dropped: Sequence[str]
) -> dict[str, Any]:
    root = Path(data.path)
    candidates = [root / "corpus.jsonl", root / "queries.jsonl", *root.glob("qrels/*.tsv")]
    files = sorted(p for p in candidates if p.is_file())
    return {
        "path": str(root.resolve()),
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "splits": {name: _count(q) for name, q in splits.items()},
        "train_queries_dropped_as_leaked": sorted(dropped),
        "warnings": list(data.warnings),
        "files": {
            str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in files
        },
    }



def train_sample(full: Splits, sampled: Splits, config: Any) -> dict[str, Any]:
    """What ``--max-train-queries`` did, for data.json and the report: asked, available, kept."""
    return {
        "max_train_queries": config.max_train_queries,
        "seed": config.seed,
        "available": len(positives_only(full.train)),
        "kept": len(positives_only(sampled.train)),
    }


def environment() -> dict[str, str]:
    """Library versions and machine facts recorded in every run folder."""
    import sentence_transformers
    import torch
    import transformers

    from honed import __version__

    return {
        "honed": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
    }


def read_run_values(run_dir: Path) -> dict[str, Any]:
    """The resolved config a run folder was started with (``config.json``), to resume it."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        check_unlocked(run_dir, "honed run")  # a run still writing it: say so, not "not a run folder"
        raise FileNotFoundError(
            f"{config_path}: no such file, so {run_dir} is not a honed run folder; "
            "fix: pass the --out folder of an earlier `honed run`"
        )
    return dict(json.loads(config_path.read_text(encoding="utf-8")))
