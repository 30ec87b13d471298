"""The folder lock every writer takes (honed.files.folder_lock): refusal with the pid, release on kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from honed.files import (
    LOCK_FILE,
    FolderLockedError,
    check_unlocked,
    clear_folder,
    folder_lock,
    is_leftover,
)

HOLDER = """
import sys, time
from pathlib import Path
from honed.files import folder_lock
with folder_lock(sys.argv[1], "the test holder"):
    Path(sys.argv[2]).write_text("held")
    time.sleep(600)
"""


def _start_holder(folder: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), "the holder did not take the lock"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    holder = _start_holder(folder, tmp_path)
    try:
        with pytest.raises(
            FolderLockedError,
            match=rf"out: the work is already running in process {holder.pid} \(it holds "
            rf"\.honed\.lock\); fix: wait for it to finish or stop it \(kill {holder.pid}\), or "
            "choose another --out$",
        ):
            with folder_lock(folder, "the work", fix="choose another --out"):
                pass
        with pytest.raises(FolderLockedError, match=f"process {holder.pid}"):
            check_unlocked(folder, "the work")  # the probe that creates nothing
        assert (folder / LOCK_FILE).read_text().strip() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the lock: the next writer takes it, the stale file is reused
    check_unlocked(folder, "the work")
    with folder_lock(folder, "the work"):
        assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (folder / LOCK_FILE).exists() and folder.is_dir()


def test_wait_takes_the_lock_once_the_holder_exits(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    holder = _start_holder(folder, tmp_path)
    subprocess.Popen(
        [sys.executable, "-c", f"import os, time; time.sleep(0.5); os.kill({holder.pid}, {signal.SIGTERM})"]
    )
    started = time.monotonic()
    with folder_lock(folder, "a cache write", wait=30):
        assert time.monotonic() - started < 20
    holder.wait()


def test_remove_empty_and_a_path_that_is_a_file(tmp_path: Path) -> None:
    work = tmp_path / "ix.partial"
    with folder_lock(work, "the index build", remove_empty=True):
        assert (work / LOCK_FILE).is_file()
    assert not work.exists()  # nothing left behind by a build that wrote nothing
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(FileExistsError, match="file: exists and is not a folder"):
        with folder_lock(file, "honed run"):
            pass


def test_the_same_process_cannot_take_it_twice(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "honed run"):
        with pytest.raises(FolderLockedError, match=f"process {os.getpid()}"):
            with folder_lock(tmp_path, "honed run"):
                pass


def test_clear_folder_keeps_the_lock_and_leftovers_are_recognised(tmp_path: Path) -> None:
    with folder_lock(tmp_path, "honed run"):
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "x").write_text("x")
        (tmp_path / "config.json").write_text("{}")
        clear_folder(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]
    assert is_leftover(LOCK_FILE) and is_leftover(".config.json.123.ab12cd34.tmp")
    assert not is_leftover("config.json") and not is_leftover(".hidden")
