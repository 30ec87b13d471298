"""Kill every writing command at random write points, and run two writers at once (#17).

A child process runs the real command with ``os.replace``, ``os.rename``, ``os.fsync`` and
``open()`` for writing wrapped: the N-th call (N drawn with a fixed seed from the write points an uninterrupted run
makes) either sends the process SIGKILL or SIGINT, or *pauses* it there, lock held. After a
kill, the output must be absent, the previous version, or resumable (``--resume``, or the same
command again) to exactly what an uninterrupted run writes. While a child is paused, a second
writer on the same output, run folder or cache runs in this process: it must be refused with
the child's pid (a reader of the cache is served meanwhile). The paused child is then killed,
which must release its lock. The ``--store`` upload gets the same treatment in
``tests/index/test_pgstore.py`` (it needs the PostgreSQL server started there).

Each command costs one import of torch per child (~9 s on a 2-core machine), so each gets two
children: one paused (the concurrency check), then killed with SIGKILL; one stopped by SIGINT.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import default_sigint
from honed.cli.main import main
from honed.files import LOCK_FILE

CHILD = r"""
import builtins, io, os, signal, sys, threading, time

at, action, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
calls = 0

def writes(function, args, kwargs):
    if function.__name__ != "open":
        return True
    mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
    return any(c in str(mode) for c in "wax+")

def hooked(real):
    def call(*args, **kwargs):
        global calls
        if threading.current_thread() is threading.main_thread() and writes(real, args, kwargs):
            calls += 1
            if calls == at:
                if action == "pause":
                    fd = os.open(flag, os.O_WRONLY | os.O_CREAT)  # not a hooked write point
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
                    while True:  # here, lock held, until the test kills this process
                        time.sleep(0.05)
                os.kill(os.getpid(), getattr(signal, action))
        return real(*args, **kwargs)
    return call

for name in ("replace", "rename", "fsync"):
    setattr(os, name, hooked(getattr(os, name)))
builtins.open = io.open = hooked(io.open)  # files opened for writing
if sys.argv[4] == "-c":
    exec(sys.argv[5])
else:
    from honed.cli.main import main
    sys.exit(main(sys.argv[4:]))
"""

WRITE_POINTS = ("replace", "rename", "fsync")  # and open() for writing
TOTALS: dict[str, Any] = {"kills": 0, "paused": 0, "refusals": 0, "points": [], "writes": {}}


@contextlib.contextmanager
def _count_writes() -> Iterator[list[int]]:
    """Count the main thread's write points in this process (the child counts the same way)."""
    count = [0]
    real = {name: getattr(os, name) for name in WRITE_POINTS}
    real_open = io.open

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
            opens = function is not real_open or any(c in str(mode) for c in "wax+")
            if threading.current_thread() is threading.main_thread() and opens:
                count[0] += 1
            return function(*args, **kwargs)

        return call

    for name, function in real.items():
        setattr(os, name, wrap(function))
    builtins.open = io.open = wrap(real_open)
    try:
        yield count
    finally:
        for name, function in real.items():
            setattr(os, name, function)
        builtins.open = io.open = real_open


def _point(seed: int, total: int) -> int:
    """A write point drawn with ``seed`` from the first 90% (the child may write a little less)."""
    return random.Random(seed).randint(1, max(1, int(total * 0.9)))


def _child(at: int, action: str, flag: Path, args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    TOTALS["points"].append(("cache" if args[0] == "-c" else args[0], action, at))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(at), action, str(flag), *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip



def _killed(proc: subprocess.Popen[str], action: str) -> None:
    """Wait for a SIGKILL/SIGINT child; it must have died of the signal, or exited 130."""
    _, err = proc.communicate(timeout=300)
    expected = {"SIGKILL": [-9], "SIGINT": [130, -2]}[action]
    assert proc.returncode in expected or proc.returncode == 0, (proc.returncode, err[-2000:])
    TOTALS["kills"] += proc.returncode != 0


@contextlib.contextmanager
def _paused(at: int, flag: Path, args: list[str]) -> Iterator[int]:
    """A child paused at write point ``at`` (its pid), SIGKILLed when the block ends."""
    proc = _child(at, "pause", flag, args)
    try:
        deadline = time.monotonic() + 300
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), f"the child never reached write point {at}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
        TOTALS["paused"] += 1
        yield proc.pid
    finally:
        proc.kill()
        proc.communicate(timeout=60)
        TOTALS["kills"] += 1


def _refused(argv: list[str], pid: int, capsys: pytest.CaptureFixture[str]) -> str:
    """``main(argv)`` must exit 1 with one line naming ``pid`` as the holder."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and f"already running in process {pid}" in lines[0], err
    assert f"kill {pid}" in lines[0] and "Traceback" not in err
    TOTALS["refusals"] += 1
    return lines[0]


def _files(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


# --------------------------------------------------------------------------- honed index

INDEX_FILES = ("full.npy", "ids.json", "texts.jsonl", "short.npy")


@pytest.fixture(scope="module")
def index_ref(tiny_model_path: Path, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ref") / "ix"
    argv = ["index", str(tiny_model_path), str(mini_beir), "--shortlist-dim", "16", "--batch-size", "4"]
    with _count_writes() as count:
        assert main([*argv, "--out", str(out)]) == 0
    TOTALS["writes"]["index"] = count[0]  # the write points of an uninterrupted run
    return argv, _files(out, INDEX_FILES), count[0]


def _index_recovers(argv: list[str], out: Path, want: dict[str, bytes]) -> None:
    """Absent (then resumable to the same bytes) or complete; never a half index at OUT."""
    from honed.index.partial import partial_path, partial_rows

    if not out.exists():
        assert main([*argv, "--out", str(out), "--resume"]) == 0
        assert not partial_path(out).exists()
    elif partial_path(out).exists():  # killed after the rename: bookkeeping the next build clears
        assert partial_rows(out) is None
    assert _files(out, INDEX_FILES) == want


@pytest.mark.slow
def test_index_build_killed_or_raced(
    index_ref: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, want, total = index_ref
    out = tmp_path / "ix"
    with _paused(_point(1, total), tmp_path / "flag", [*argv, "--out", str(out)]) as pid:
        fresh = _refused([*argv, "--out", str(out)], pid, capsys)
        assert "--resume" not in fresh  # #17: it told the user to resume a running build
        _refused([*argv, "--out", str(out), "--resume"], pid, capsys)  # #17: corrupt index
    _index_recovers(argv, out, want)  # the SIGKILL released the lock
    out = tmp_path / "ix2"
    proc = _child(_point(2, total), "SIGINT", tmp_path / "flag2", [*argv, "--out", str(out)])
    _killed(proc, "SIGINT")
    _index_recovers(argv, out, want)


# --------------------------------------------------------------------------- honed run

RUN_FLAGS = [
    "--epochs", "2", "--batch-size", "4", "--mini-batch-size", "4", "--precision", "fp32",
    "--negatives", "2", "--depth", "10", "--dev-fraction", "0.25", "--min-dev-queries", "4",
    "--no-cache",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_ref(tiny_model_path: Path, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory):
    argv = ["run", str(mini_beir), "--base", str(tiny_model_path), *RUN_FLAGS]
    out = tmp_path_factory.mktemp("ref") / "run"
    with _count_writes() as count:
        assert main([*argv, "--out", str(out)]) == 0
    TOTALS["writes"]["run"] = count[0]  # the write points of an uninterrupted run
    return argv, json.loads((out / "metrics" / "tuned.json").read_text()), count[0]


def _run_recovers(argv: list[str], out: Path, want: dict[str, Any]) -> None:
    """Resumable when config.json was written, else a plain rerun into the leftover folder."""
    if not (out / "report.json").is_file():
        if (out / "config.json").is_file():
            assert main(["run", "--resume", str(out)]) == 0
        else:  # killed before its first file: the folder holds a lock file at most
            assert all(p.name == LOCK_FILE or p.name.endswith(".tmp") for p in out.iterdir())
            assert main([*argv, "--out", str(out)]) == 0
    got = json.loads((out / "metrics" / "tuned.json").read_text())
    for split in ("dev", "test"):
        for metric, value in want[split]["32"].items():
            assert got[split]["32"][metric] == pytest.approx(value, abs=1e-4), (split, metric)
    assert not (out / "checkpoints").exists() and not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_run_killed_or_raced(run_ref: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, want, total = run_ref
    out = tmp_path / "run"
    with _paused(_point(5, total), tmp_path / "flag", [*argv, "--out", str(out)]) as pid:
        _refused([*argv, "--out", str(out), "--overwrite"], pid, capsys)
        _refused(["run", "--resume", str(out)], pid, capsys)
    _run_recovers(argv, out, want)
    out = tmp_path / "run2"
    _killed(_child(_point(14, total), "SIGINT", tmp_path / "flag2", [*argv, "--out", str(out)]), "SIGINT")
    _run_recovers(argv, out, want)


def test_a_run_killed_before_its_first_file_can_be_started_again(
    tmp_path: Path, mini_beir: Path
) -> None:
    """A folder left with only a lock file and a temp file is free (it used to need --overwrite,
    which then refused: no config.json)."""
    from honed.pipeline.run_folder import prepare_run_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text("12345\n")
    (out / ".config.json.12345.ab12cd34.tmp").write_text('{"half')
    prepare_run_dir(out, overwrite=False)
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]


# --------------------------------------------------------------------------- honed mine / train


@pytest.fixture(scope="module")
def mine_ref(tiny_model_path: Path, mini_beir: Path, tmp_path_factory: pytest.TempPathFactory):
    # --no-cache: the kill points are mine's own writes (the cache writer has its own test
    # above); with the disk cache the reference run leaves vectors that the children read back,
    # so their write points would not be the reference's.
    argv = ["mine", str(mini_beir), "--base", str(tiny_model_path), "--no-cache", "--negatives",
            "2", "--depth", "10", "--precision", "fp32"]  # fmt: skip
    out = tmp_path_factory.mktemp("ref") / "mined.jsonl"
    with _count_writes() as count:
        assert main([*argv, "--out", str(out)]) == 0
    old = out.with_name("old.jsonl")
    assert main([*argv[:-4], "--negatives", "1", "--out", str(old)]) == 0  # a previous version
    TOTALS["writes"]["mine"] = count[0]  # the write points of an uninterrupted run
    return argv, out.read_bytes(), old.read_bytes(), count[0]


@pytest.mark.slow
def test_mine_killed_or_raced(mine_ref: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv, want, old, total = mine_ref
    for seed, action in ((5, "pause"), (7, "SIGINT")):
        folder = tmp_path / action
        folder.mkdir()
        out = folder / "mined.jsonl"
        out.write_bytes(old)  # --overwrite of a previous file: the old one or the new, never half
        args = [*argv, "--out", str(out), "--overwrite"]
        if action == "pause":
            with _paused(_point(seed, total), tmp_path / "flag", args) as pid:
                _refused(args, pid, capsys)  # same output folder (mining_report.json beside)
        else:
            _killed(_child(_point(seed, total), action, tmp_path / "flag2", args), action)
        assert out.read_bytes() in (old, want)
        assert main(args) == 0 and out.read_bytes() == want  # and the command runs again
        assert not (folder / LOCK_FILE).exists()  # (a SIGKILL may leave a hidden .tmp file)


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v for f in sorted(folder.rglob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.fixture(scope="module")
def train_ref(mine_ref: Any, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ref")
    (root / "mined.jsonl").write_bytes(mine_ref[1])
    argv = ["train", str(root / "mined.jsonl"), "--base", str(tiny_model_path), "--epochs", "1",
            "--batch-size", "4", "--mini-batch-size", "4", "--precision", "fp32"]  # fmt: skip
    with _count_writes() as count:
        assert main([*argv, "--out", str(root / "model")]) == 0
    TOTALS["writes"]["train"] = count[0]  # the write points of an uninterrupted run
    return argv, _weights(root / "model"), count[0]


@pytest.mark.slow
def test_train_killed_or_raced(
    train_ref: Any, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    argv, want, total = train_ref
    for seed, action in ((9, "pause"), (6, "SIGINT")):
        out = tmp_path / action / "model"
        shutil.copytree(tiny_model_path, out)  # the previous version: the base model's folder
        before = _weights(out)
        args = [*argv, "--out", str(out), "--overwrite"]
        if action == "pause":
            with _paused(_point(seed, total), tmp_path / "flag", args) as pid:
                _refused(args, pid, capsys)
        else:
            _killed(_child(_point(seed, total), action, tmp_path / "flag2", args), action)
        if out.exists():  # the previous model or the new one, each whole
            got = _weights(out)
            assert got.keys() == before.keys()
            same = all(np.array_equal(got[k], before[k]) for k in got)
            assert same or all(np.allclose(got[k], want[k], atol=1e-6) for k in got)
        assert main(args) == 0  # leftovers (OUT.tmp, OUT.checkpoints) never block a rerun
        got = _weights(out)
        assert all(np.allclose(got[k], want[k], atol=1e-6) for k in want)
        assert not (out.parent / (out.name + ".tmp")).exists()


# --------------------------------------------------------------------------- embedding cache

CACHE_WRITER = r"""
import numpy as np
from honed.encoding.disk_cache import DiskCache, text_digest
disk = DiskCache(ROOT, {"fingerprint": "crash"})
for shard in range(30):
    texts = [f"text {i}" for i in range(shard * 5, shard * 5 + 5)]
    rows = np.zeros((5, 8), dtype=np.float32)
    rows[np.arange(5), [int(t.split()[1]) % 8 for t in texts]] = 1.0
    disk.append([text_digest(t) for t in texts], rows)
"""


def _expected_row(i: int) -> np.ndarray:
    row = np.zeros(8, dtype=np.float32)
    row[i % 8] = 1.0
    return row


def _cache_is_sound(root: Path, complete: bool) -> int:
    from honed.encoding.disk_cache import DiskCache, text_digest

    disk = DiskCache(root, {"fingerprint": "crash"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged or unverifiable shard would warn
        found = disk.lookup([text_digest(f"text {i}") for i in range(150)])
    for i, vector in found.items():
        np.testing.assert_array_equal(vector, _expected_row(i))
    assert not complete or len(found) == 150
    return len(found)


@pytest.mark.parametrize(("seed", "action"), [(11, "SIGKILL"), (12, "SIGINT"), (13, "SIGKILL"), (14, "SIGINT")])
def test_cache_writer_killed(seed: int, action: str, tmp_path: Path) -> None:
    code = CACHE_WRITER.replace("ROOT", repr(str(tmp_path)))
    total = 2 + 30 * 6  # meta.json once; per shard: vectors, keys, checksums opened and renamed
    _killed(_child(_point(seed, total), action, tmp_path / "flag", ["-c", code]), action)
    partly = _cache_is_sound(tmp_path, complete=False)  # every visible shard is whole and right
    assert partly < 150
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
    _cache_is_sound(tmp_path, complete=True)  # the leftovers never get in the way


def test_cache_write_while_another_writer_holds_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers are never blocked; a writer waits for the lock, then gives up with a warning."""
    import honed.encoding.disk_cache as disk_cache
    from honed.encoding.disk_cache import DiskCache, text_digest

    code = CACHE_WRITER.replace("ROOT", repr(str(tmp_path)))
    with _paused(16, tmp_path / "flag", ["-c", code]) as pid:  # in the third shard's write
        assert _cache_is_sound(tmp_path, complete=False) == 10  # two whole shards are served
        monkeypatch.setattr(disk_cache, "LOCK_WAIT_S", 0.5)
        disk = DiskCache(tmp_path, {"fingerprint": "crash"})
        with pytest.raises(OSError, match=f"already running in process {pid}"):
            disk.append([text_digest("late")], np.eye(1, 8, dtype=np.float32))
        TOTALS["refusals"] += 1
    disk.append([text_digest("late")], np.eye(1, 8, dtype=np.float32))  # the kill freed it
    assert _cache_is_sound(tmp_path, complete=False) == 10


def test_totals_for_the_reliability_doc() -> None:
    """Not a check: prints what this file did, for docs/reliability.md (run with -s)."""
    print(f"\ncrash-consistency totals: {TOTALS}")
