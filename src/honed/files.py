"""File helpers used everywhere, once each: atomic writes, sha256, refusing to overwrite, locks.

Every file honed writes goes to a temporary name in the same folder and is renamed into place,
so a killed process leaves the previous file or the new one, never half of one. Temporary names
carry the pid and a random token: two processes writing the same file never share a temp file.

Every folder honed writes is held with :func:`folder_lock` while it is written: an OS lock
(``flock``) on ``.honed.lock`` inside it, which the kernel releases when the process exits or is
killed, so a second writer is refused (naming the holder's pid) and a stale lock never blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

try:  # POSIX; elsewhere folders are written without a lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "FolderLockedError",
    "atomic_open",
    "check_unlocked",
    "clear_folder",
    "folder_lock",
    "is_leftover",
    "refuse_existing",
    "replace_folder",
    "sha256_file",
    "write_json",
    "write_jsonl",
    "write_text",
]


LOCK_FILE = ".honed.lock"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def is_leftover(name: str) -> bool:
    """A lock file, or a temporary file of :func:`atomic_open` that a killed process left behind."""
    return name == LOCK_FILE or (name.startswith(".") and name.endswith(".tmp"))


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


def clear_folder(folder: str | Path, keep: str = LOCK_FILE) -> None:
    """Remove everything in ``folder`` but ``keep`` (its lock: removing it would free the folder)."""
    for entry in Path(folder).iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class FolderLockedError(FileExistsError):
    """Another process holds the lock of a folder honed would write (see :func:`folder_lock`)."""


def _holder(lock: Path) -> str:
    """The pid written in a lock file, for the refusal ("unknown" while the holder writes it)."""
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _refusal(folder: Path, what: str, lock: Path, fix: str) -> FolderLockedError:
    pid = _holder(lock)
    stop = f"stop it (kill {pid})" if pid != "unknown" else f"stop the process that holds {lock}"
    return FolderLockedError(
        f"{folder}: {what} is already running in process {pid} (it holds {lock.name}); fix: "
        f"wait for it to finish or {stop}{', or ' + fix if fix else ''}"
    )


def _try_lock(folder: Path, lock: Path) -> int | None:
    """An fd holding ``lock`` exclusively, or None when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:  # the holder before us may have removed the file after we opened it
        same = os.stat(lock).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise InterruptedError  # retry on the file that is there now
    return fd


def _acquire(folder: Path, lock: Path, what: str, wait: float, fix: str) -> int:
    # At least a moment: a check_unlocked probe holds the lock for microseconds.
    deadline = time.monotonic() + max(wait, 0.2)
    for attempt in range(1000):
        try:
            fd = _try_lock(folder, lock)
        except (InterruptedError, FileNotFoundError):  # the folder or file went meanwhile
            if attempt == 999:
                raise
            continue
        if fd is not None:
            return fd
        if time.monotonic() >= deadline:
            raise _refusal(folder, what, lock, fix)
        time.sleep(0.05)
    raise _refusal(folder, what, lock, fix)


@contextmanager
def folder_lock(
    folder: str | Path,
    what: str,
    *,
    fix: str = "",
    wait: float = 0.0,
    lock_name: str = LOCK_FILE,
    remove_empty: bool = False,
) -> Iterator[Path]:
    """Hold ``folder`` (created if needed) for this process while the block runs.

    The lock is ``flock`` on ``folder/lock_name``, which holds the holder's pid: the kernel
    releases it when the process exits or is killed, so a killed run never blocks the next one.
    The file is removed on exit; ``remove_empty`` also removes ``folder`` if nothing else is left
    in it (a work folder such as ``OUT.partial``).

    Args:
        folder: the folder to hold.
        what: the work, for the refusal ("honed run", "the index build of OUT").
        fix: another way out, appended to the refusal's fix ("choose another --out").
        wait: seconds to wait for the holder to finish before refusing (0: refuse at once).
        lock_name: the lock file's name inside ``folder``.
        remove_empty: remove ``folder`` on exit when it is empty.

    Raises:
        FolderLockedError: another process holds the lock (the message names its pid).
        FileExistsError: ``folder`` exists and is not a folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder; fix: choose another path")
    if fcntl is None:  # pragma: no cover
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    lock = folder / lock_name
    fd = _acquire(folder, lock, what, wait, fix)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        try:  # before the lock goes: a waiting process then opens a new file, never this one
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                lock.unlink()
            if remove_empty:
                folder.rmdir()
        except OSError:  # already gone, not empty, or a read-only folder
            pass
        os.close(fd)


def check_unlocked(folder: str | Path, what: str, fix: str = "", lock_name: str = LOCK_FILE) -> None:
    """Refuse now, as :func:`folder_lock` would, when another process holds ``folder``.

    A probe that creates nothing: for refusing before a model loads or a long encoding starts.

    Raises:
        FolderLockedError: another process holds the lock (the message names its pid).
    """
    lock = Path(folder) / lock_name
    if fcntl is None or not lock.is_file():
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _refusal(Path(folder), what, lock, fix) from None
    finally:
        os.close(fd)
