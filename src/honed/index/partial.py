"""The folder an index build works in, ``OUT.partial``: its progress record, resume and refusals.

A build (:mod:`honed.index.build`) keeps::

    OUT.partial/
      progress.json    settings (model, corpus hash, count, batch size...) + rows done + file sizes
      ids.jsonl        one JSON id per encoded row
      index/           becomes OUT when finished
        full.npy       (count, dim) float32, preallocated, filled batch by batch (memory-mapped)
        texts.jsonl    one JSON string per encoded row

``progress.json`` is replaced atomically (written, fsynced, renamed) after each batch has landed
in the other three files, so it never names rows they do not hold. To resume, the two jsonl
files are cut back to the recorded sizes; a resume is refused when a setting that shaped the
rows already written differs (:data:`SETTING_NAMES`).

A build holds ``OUT.partial`` with :func:`build_lock` from before it reads the folder until it
is done, so a second build or ``--resume`` of the same ``OUT`` is refused with the holder's pid
(never told to pass ``--resume`` while the first one runs).
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from honed.files import atomic_open, check_unlocked, clear_folder, folder_lock, is_leftover

__all__ = ["PROGRESS", "SETTING_NAMES", "Progress", "build_lock", "check_idle", "partial_path",
           "partial_rows", "start", "write_progress"]  # fmt: skip

PROGRESS = "progress.json"

SETTING_NAMES = {
    "model_fingerprint": "model (fingerprint)",
    "dim": "embedding dim",
    "corpus": "corpus (hash of ids and texts)",
    "count": "document count",
    "batch_size": "--batch-size",
    "encode_precision": "--encode-precision",
}
"""The settings a resume must match, and how its refusal names each."""


@dataclass(frozen=True)
class Progress:
    """What ``progress.json`` records: the build's settings, rows done and the jsonl sizes."""

    settings: dict[str, Any]
    rows: int
    texts_bytes: int
    ids_bytes: int


def partial_path(out: str | Path) -> Path:
    """Where a build of ``out`` keeps its work until it is finished: ``OUT.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _what(out: str | Path) -> str:
    return f"the index build of {out}"


def build_lock(out: str | Path) -> AbstractContextManager[Path]:
    """Hold ``OUT.partial`` while a build of ``out`` works in it (removed when left empty)."""
    return folder_lock(partial_path(out), _what(out), remove_empty=True)


def check_idle(out: str | Path) -> None:
    """FolderLockedError now, before a model loads, when another process builds ``out``."""
    check_unlocked(partial_path(out), _what(out))


def _read_progress(partial: Path) -> Progress | None:
    try:
        values = json.loads((partial / PROGRESS).read_text(encoding="utf-8"))
        return Progress(
            dict(values["settings"]),
            int(values["rows"]),
            int(values["texts_bytes"]),
            int(values["ids_bytes"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def partial_rows(out: str | Path) -> tuple[int, int] | None:
    """``(rows encoded, documents)`` of an interrupted build of ``out``, or None when none is there.

    Raises:
        FolderLockedError: the build is not interrupted: another process is running it.
    """
    check_idle(out)
    progress = _read_progress(partial_path(out))
    if progress is None or not (partial_path(out) / "index").is_dir():
        return None
    return progress.rows, int(progress.settings.get("count", 0))


def write_progress(partial: Path, progress: Progress) -> None:
    """Replace progress.json atomically (write, fsync, rename): a kill leaves the old or the new."""
    record = {
        "settings": progress.settings,
        "rows": progress.rows,
        "texts_bytes": progress.texts_bytes,
        "ids_bytes": progress.ids_bytes,
    }
    with atomic_open(partial / PROGRESS, fsync=True) as handle:
        json.dump(record, handle, indent=2)


def _create(partial: Path, settings: dict[str, Any]) -> Progress:
    """A new partial folder: preallocated full.npy, empty jsonl files, no rows done."""
    (partial / "index").mkdir(parents=True)
    shape = (settings["count"], settings["dim"])
    np.lib.format.open_memmap(partial / "index" / "full.npy", "w+", np.float32, shape).flush()
    (partial / "index" / "texts.jsonl").touch()
    (partial / "ids.jsonl").touch()
    progress = Progress(settings, 0, 0, 0)
    write_progress(partial, progress)
    return progress


def start(partial: Path, settings: dict[str, Any], resume: bool) -> Progress:
    """Open the partial folder to continue, or create it; refuse one that cannot be continued.

    Raises:
        FileExistsError: ``partial`` is not a honed build, or is one and ``resume`` is False.
        ValueError: ``partial`` was started with other ``settings``, or is damaged.
    """
    progress = _read_progress(partial) if partial.exists() else None
    found = {p.name for p in partial.iterdir() if not is_leftover(p.name)} if partial.exists() else set()
    if progress is None and found - {"index", "ids.jsonl"}:
        raise FileExistsError(
            f"{partial}: exists but has no readable {PROGRESS}, so it is not an interrupted honed "
            f"build; fix: delete or move {partial}"
        )
    if progress is not None and not (partial / "index").is_dir():
        progress = None  # a build killed after its rename into place: bookkeeping only
    if progress is None:  # new, or killed before its first progress.json: nothing to keep
        clear_folder(partial)  # but the lock
        return _create(partial, settings)
    done = f"{progress.rows:,} of {progress.settings.get('count', 0):,} documents encoded"
    if not resume:
        raise FileExistsError(
            f"{partial}: left by an interrupted build ({done}); fix: pass --resume to continue "
            f"it, or delete {partial} to start over"
        )
    changed = [k for k in settings if progress.settings.get(k) != settings[k]]
    if changed:
        key = changed[0]
        raise ValueError(
            f"{partial}: cannot resume, it was started with another {SETTING_NAMES.get(key, key)} "
            f"({progress.settings.get(key)!r} then, {settings[key]!r} now); fix: resume with the "
            f"same model, corpus, --batch-size and --encode-precision, or delete {partial} to start over"
        )
    _truncate(partial / "index" / "texts.jsonl", progress.texts_bytes, partial)
    _truncate(partial / "ids.jsonl", progress.ids_bytes, partial)
    return progress


def _truncate(file: Path, size: int, partial: Path) -> None:
    """Cut ``file`` back to ``size`` bytes: lines written after the last recorded batch go."""
    if not file.is_file() or file.stat().st_size < size:
        raise ValueError(
            f"{file}: shorter than {PROGRESS} records ({size} bytes), the interrupted build is "
            f"damaged; fix: delete {partial} to start over"
        )
    os.truncate(file, size)
