"""What an index folder proves about itself at load: checksums, finite vectors, unique ids.

A build records the sha256 of every file it wrote in ``index.json`` (``"sha256"``), written
last. :meth:`honed.index.index.Index.load` checks them once, streaming each file in 1 MiB
blocks (all but ``texts.jsonl``, which is only read row by row for display, and whose rows
before a damaged line stay readable), then scans the float arrays in chunks for NaN/inf and the
ids for duplicates: a
changed, damaged or hand-edited file is refused with the rebuild command instead of making a
document vanish from the results (a NaN row scores NaN and sorts last) or printing another
document's text (a duplicate id). An index built before checksums existed loads with a warning
and the finite and duplicate checks only.

Cost: one read of each file at load, e.g. ~1.5 GB for a million 384-dim documents (a few
seconds from a warm page cache); ``Index.load(..., verify=False)`` skips it for a folder that
was verified already.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from honed.files import sha256_file

__all__ = [
    "CHECKSUMMED", "check_finite", "check_unique", "record_checksums", "verify_checksums",
    "verify_folder",
]

CHECKSUMMED = ("full.npy", "short.npy", "short_scale.npy", "ids.json", "texts.jsonl", "short.hnsw")
"""The files of an index folder whose sha256 index.json records (bm25/ has checks of its own)."""

_READ_LAZILY = {"texts.jsonl"}  # recorded, not read at load (see the module docstring)
_CHUNK_ROWS = 1 << 16  # 65,536 rows at a time: 100 MB of 384-dim float32


def record_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the :data:`CHECKSUMMED` files present in ``folder``."""
    return {name: sha256_file(folder / name) for name in CHECKSUMMED if (folder / name).is_file()}


def verify_checksums(folder: Path, recorded: Any, hint: str) -> None:
    """Refuse a file whose sha256 is not the one recorded at build time; warn when none were.

    Args:
        folder: the index folder.
        recorded: index.json's ``"sha256"`` value (``{name: hex}``), or None for an older index.
        hint: the rebuild command, for the messages.

    Raises:
        ValueError: a recorded file's bytes changed, or ``recorded`` is not a mapping.
    """
    if recorded is None:
        warnings.warn(
            f"{folder}: index.json records no checksums (built by an older honed), so its files "
            f"cannot be verified; {hint} to record them",
            stacklevel=4,
        )
        return
    if not isinstance(recorded, Mapping):
        raise ValueError(f"{folder / 'index.json'}: sha256 must be a mapping of files; {hint}")
    for name, digest in recorded.items():
        file = folder / str(name)
        if name not in _READ_LAZILY and file.is_file() and sha256_file(file) != digest:
            raise ValueError(
                f"{file}: its sha256 differs from the one recorded when the index was built "
                f"(the file was changed or damaged since); {hint}"
            )


def check_finite(file: Path, array: np.ndarray, ids: Sequence[str], hint: str) -> None:
    """Refuse a float array (memory-mapped) with a NaN or infinite value, read in chunks."""
    if array.dtype.kind != "f":
        return
    for start in range(0, array.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(array[start : start + _CHUNK_ROWS])  # (<= 65,536, width)
        finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            who = f" (document {ids[row]!r})" if array.ndim == 2 and row < len(ids) else ""
            raise ValueError(
                f"{file}: row {row}{who} holds NaN or infinite values, so that document could "
                f"never be found; {hint}"
            )


def check_unique(file: Path, ids: Sequence[str], hint: str) -> None:
    """Refuse ids that are not unique: a duplicate would show another document's text."""
    seen: dict[Any, int] = {}
    for row, doc_id in enumerate(ids):
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool):
            raise ValueError(f"{file}: id at row {row} is {doc_id!r}, not a string; {hint}")
        if doc_id in seen:
            raise ValueError(
                f"{file}: id {doc_id!r} appears twice (rows {seen[doc_id]} and {row}), so a "
                f"search would show one document's text for the other; {hint}"
            )
        seen[doc_id] = row


def verify_folder(
    folder: Path, ids: Sequence[str], arrays: Mapping[str, np.ndarray | None], hint: str
) -> None:
    """Every check of this module on an opened index folder: checksums, unique ids, finite arrays.

    Run after the structural checks (shapes, headers), whose messages say more about a
    truncated file than a checksum mismatch does.

    Args:
        folder: the index folder (its index.json holds the checksums, if any).
        ids: the ids read from ids.json.
        arrays: file name -> the memory-mapped array (None when absent).
        hint: the rebuild command, for the messages.
    """
    record = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    verify_checksums(folder, record.get("sha256") if isinstance(record, dict) else None, hint)
    check_unique(folder / "ids.json", ids, hint)
    for name, array in arrays.items():
        if array is not None:
            check_finite(folder / name, array, ids, hint)
