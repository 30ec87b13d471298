"""File helpers used everywhere, once each: atomic writes, sha256, refusing to overwrite.

Every file honed writes goes to a temporary name in the same folder and is renamed into place,
so a killed process leaves the previous file or the new one, never half of one. Temporary names
carry the pid and a random token: two processes writing the same file never share a temp file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "refuse_existing",
    "replace_folder",
    "sha256_file",
    "write_json",
    "write_jsonl",
    "write_text",
]


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. ``fsync``
    flushes the data to disk before the rename (for files a resume depends on).
    """
    path = Path(path)
    tmp = _temp_name(path)
    encoding = None if "b" in mode else "utf-8"
    try:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indented, UTF-8 kept as is): a half-written file never looks finished."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line atomically, keys in the order given (byte-stable reruns)."""
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_existing(
    path: str | Path,
    overwrite: bool,
    ours: Callable[[Path], bool] | None = None,
    what: str = "",
    exists: str = "exists",
) -> None:
    """Refuse an existing output unless ``overwrite``, and never overwrite what honed did not make.

    Args:
        path: the output file or folder.
        overwrite: the user passed ``--overwrite``.
        ours: for folders, whether ``path`` is one honed made (e.g. it holds ``index.json``);
            an empty folder always counts as free. None: any existing file may be replaced.
        what: the kind of folder ``ours`` looks for, for the message ("a honed index folder
            (no index.json)").
        exists: how the message names the conflict ("run folder exists and is not empty").

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false, or ``overwrite`` is true
            but ``ours`` says honed did not make it (nothing is deleted then).
    """
    path = Path(path)
    if not path.exists():
        return
    if not overwrite:
        raise FileExistsError(
            f"{path}: {exists}; fix: pass --overwrite to replace it, or choose another --out"
        )
    if ours is None or (path.is_dir() and not any(path.iterdir())):
        return
    if not path.is_dir() or not ours(path):
        raise FileExistsError(
            f"{path}: not {what}, so --overwrite will not delete it; fix: choose a new or empty "
            "--out folder"
        )


def replace_folder(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a folder under a temporary name with ``write(tmp)``, then swap it in for ``final``.

    A half-written folder never carries the final name: a kill during ``write`` leaves the old
    folder (or none) and a ``.tmp`` folder that the next call removes.
    """
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final
