"""Kill a real `honed run` (SIGKILL, SIGTERM, SIGINT) at several points and resume it.

The resumed run must end with the same test metrics as an uninterrupted one (CPU, fp32, 1e-4).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from honed.cli.main import main


def _args(data: Path, out: Path, model: Path) -> list[str]:
    return [
        "run", str(data), "--out", str(out), "--base", str(model), "--epochs", "6",
        "--batch-size", "4", "--mini-batch-size", "4", "--precision", "fp32", "--negatives", "2",
        "--depth", "10", "--dev-fraction", "0.25", "--min-dev-queries", "4",
    ]


@pytest.fixture(scope="module")
def reference(mini_beir: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_args(mini_beir, out, tiny_model_path)) == 0
    return json.loads((out / "metrics" / "tuned.json").read_text())


def _reached(out: Path, point: str) -> bool:
    if point == "checkpoint":
        return any((out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    status = out / "status.json"
    try:
        return point in json.loads(status.read_text())["completed"]
    except (OSError, ValueError, KeyError):
        return False


def _kill_at(args: list[str], out: Path, point: str, sig: signal.Signals) -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "honed.cli.main", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not _reached(out, point):
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "sig"),
    [
        ("baseline", signal.SIGKILL),
        ("checkpoint", signal.SIGKILL),
        ("checkpoint", signal.SIGTERM),
        ("checkpoint", signal.SIGINT),
        ("save", signal.SIGKILL),
    ],
)
def test_resume_after_kill_matches_uninterrupted(
    point: str, sig: signal.Signals, reference, mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = _kill_at(_args(mini_beir, out, tiny_model_path), out, point, sig)
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
    if code == 0:
        pytest.skip(f"the run finished before it could be killed at {point}")  # machine too fast
    assert "report" not in status.get("completed", [])  # it really was interrupted
    assert main(["run", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics" / "tuned.json").read_text())
    for split in ("dev", "test"):
        for metric, value in reference[split]["32"].items():
            assert resumed[split]["32"][metric] == pytest.approx(value, abs=1e-4), (split, metric)
    assert not (out / "checkpoints").exists() and (out / "model" / "config.json").is_file()


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--resume", str(tmp_path)]) == 1
    assert "not a honed run folder" in capsys.readouterr().err


def test_resume_refuses_changed_inputs(mini_beir_copy: Path, tiny_model_path: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _kill_at(_args(mini_beir_copy, out, tiny_model_path), out, "baseline", signal.SIGKILL) != 0
    with (mini_beir_copy / "queries.jsonl").open("a") as handle:
        handle.write('{"_id": "q99", "text": "a new query"}\n')
    assert main(["run", "--resume", str(out)]) == 1
    assert "changed since this run started" in capsys.readouterr().err


def test_run_needs_data_and_out_or_resume(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 1
    assert "--resume" in capsys.readouterr().err
