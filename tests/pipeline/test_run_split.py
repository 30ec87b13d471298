"""``honed run`` under ``torchrun``: two CPU processes (gloo) give the run folder of one process.

The same mined rows, splits and base metrics as a single process; tuned metrics within a stated
tolerance (the two runs train on the same rows with the same effective batch, 4 rows in each of
2 processes vs 8 in one, but the DDP sampler composes the batches differently); only the first
process writes and prints; ``--resume`` works under ``torchrun``; a failure in one process ends
the launch with one message instead of a hang.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from honed.cli.main import main

FAIL_WORKER = Path(__file__).with_name("_torchrun_run_fail.py")
# The tiny model is random: two training runs that differ only in batch composition end within
# a few hundredths of nDCG@10 of each other on the mini dataset's 4 dev and 8 test queries
# (measured: 0.003 apart); a broken split (wrong rows, one process's gradients lost) moves it more.
TUNED_TOLERANCE = 0.05


def _args(data: Path, out: Path, model: Path, batch_size: int) -> list[str]:
    return [
        "run", str(data), "--out", str(out), "--base", str(model), "--device", "cpu",
        "--precision", "fp32", "--dev-fraction", "0.25", "--min-dev-queries", "4",
        "--negatives", "2", "--depth", "10", "--epochs", "2", "--batch-size", str(batch_size),
        "--mini-batch-size", "4", "--encode-batch-size", "4", "--no-cache", "--dims", "32,16,8",
    ]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    from torchrun_helpers import gloo_env

    return gloo_env(**extra)


def _torchrun(args: list[str], env: dict[str, str], expect_ok: bool = True) -> tuple[int, str]:
    import torch

    from torchrun_helpers import free_port, torchrun

    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend, which CPU collectives need")
    launch = ["--nproc_per_node", "2", "--master_port", str(free_port())]
    result = torchrun([*launch, *args], env, timeout=300)
    if expect_ok:
        assert result.returncode == 0, result.stdout[-4000:]
    return result.returncode, str(result.stdout)


def _metrics(run: Path, system: str) -> dict:
    return json.loads((run / "metrics" / f"{system}.json").read_text(encoding="utf-8"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _same_rows(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) > 0
    for row, expected in zip(got, want):
        assert {k: v for k, v in row.items() if "score" not in k} == {
            k: v for k, v in expected.items() if "score" not in k
        }
        assert row["negative_scores"] == pytest.approx(expected["negative_scores"], abs=1e-5)


@pytest.fixture(scope="module")
def runs(
    mini_beir: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path | str]:
    """One single-process run and one 2-process run of the same pipeline."""
    root = tmp_path_factory.mktemp("run_split")
    single, split, log = root / "single", root / "split", root / "encode"
    assert main(_args(mini_beir, single, tiny_model_path, batch_size=8)) == 0
    cmd = ["-m", "honed.cli", *_args(mini_beir, split, tiny_model_path, batch_size=4)]
    _, output = _torchrun(cmd, _env(HONED_LOG_ENCODE=str(log)))
    return {"single": single, "split": split, "log": log, "output": output, "root": root}


@pytest.mark.slow
def test_two_processes_mine_the_rows_and_score_the_base_of_one(runs: dict) -> None:
    single, split = runs["single"], runs["split"]
    _same_rows(_rows(split / "mined.jsonl"), _rows(single / "mined.jsonl"))
    assert json.loads((split / "splits.json").read_text()) == json.loads(
        (single / "splits.json").read_text()
    )
    for system in ("base", "bm25"):
        want = _metrics(single, system)
        for name, by_dim in _metrics(split, system).items():
            for dim, values in by_dim.items():
                assert values == pytest.approx(want[name][dim], abs=1e-6), (system, name, dim)


@pytest.mark.slow
def test_two_processes_tune_within_the_stated_tolerance(runs: dict) -> None:
    single, split = runs["single"], runs["split"]
    for system in ("tuned", "hybrid"):
        want = _metrics(single, system)
        for name, by_dim in _metrics(split, system).items():
            for dim, values in by_dim.items():
                assert abs(values["ndcg@10"] - want[name][dim]["ndcg@10"]) <= TUNED_TOLERANCE
    training = json.loads((split / "training.json").read_text())
    # 11 rows, 4 per process and step, full batches only: 1 step per epoch over 2 processes;
    # 2 epochs, then 1 epoch of the second round
    assert training["steps"] == 3 and training["best_epoch"] in (1.0, 2.0, 3.0)
    assert training["round2"]["rows"] > 0  # the second round ran, and its decision was recorded


@pytest.mark.slow
def test_each_process_encodes_its_share_and_only_the_first_writes(runs: dict) -> None:
    split, log, output = runs["split"], runs["log"], runs["output"]
    logged = []
    for rank in (0, 1):
        lines = Path(f"{log}.rank{rank}.jsonl").read_text(encoding="utf-8").splitlines()
        logged.append({row["label"]: row for row in map(json.loads, lines)})
    for label in ("baseline", "evaluate"):
        shares = [entry[label]["encoded"] for entry in logged]
        assert all(share > 0 for share in shares), (label, shares)  # both did work
        # the mini corpus (40 docs) and its queries, in batches of 4 dealt in turn
        assert abs(shares[0] - shares[1]) <= 4
        assert logged[0][label]["world_size"] == 2
    # The final evaluation encodes the dev and test queries only: the kept epoch's corpus
    # encoding, made by the trainer's dev evaluation in the first process, is reused there.
    splits = json.loads((split / "splits.json").read_text())
    evaluated = sum(entry["evaluate"]["encoded"] for entry in logged)
    assert evaluated == len({*splits["dev"], *splits["test"]}), (evaluated, splits.keys())
    assert output.count("wrote ") == 1 and output.count("next: open") == 1
    assert output.count("[honed] loading") == 1  # one process prints the progress lines
    assert "2 processes: each encodes its share" in output
    assert not list(split.glob("checkpoints*"))  # removed once the model was saved
    assert (split / "model" / "modules.json").is_file()
    status = json.loads((split / "status.json").read_text())
    assert status["completed"][-1] == "report"


@pytest.mark.slow
def test_resume_under_torchrun_finishes_the_run(runs: dict, mini_beir: Path) -> None:
    """A 2-process run interrupted after mining, resumed by a 2-process launch."""
    done, resumed = runs["split"], Path(runs["root"]) / "resumed"
    shutil.copytree(done, resumed)
    for name in ("model", "training.json", "report.md", "report.json", "report.html"):
        target = resumed / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    status = json.loads((resumed / "status.json").read_text())
    status["completed"] = ["load", "baseline", "mine"]
    (resumed / "status.json").write_text(json.dumps(status))
    _, output = _torchrun(["-m", "honed.cli", "run", "--resume", str(resumed)], _env())
    assert output.count("resuming ") == 1
    assert (resumed / "model" / "modules.json").is_file()
    # the same seed, rows and processes: the very same training
    want, got = _metrics(done, "tuned"), _metrics(resumed, "tuned")
    for name, by_dim in got.items():
        for dim, values in by_dim.items():
            assert values["ndcg@10"] == pytest.approx(want[name][dim]["ndcg@10"], abs=1e-6)


@pytest.mark.slow
def test_a_failure_in_one_process_stops_the_launch_with_one_message(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    cmd = [str(FAIL_WORKER), *_args(mini_beir, tmp_path / "run", tiny_model_path, batch_size=4)]
    code, output = _torchrun(cmd, _env(), expect_ok=False)
    assert code != 0
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert errors == [
        "error (process 1 of 2): expected training to start, got a failure in this process only; "
        "fix: none (a test)"
    ]


@pytest.mark.slow
def test_an_error_of_the_first_process_is_printed_once(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("a user's file")
    cmd = ["-m", "honed.cli", *_args(mini_beir, out, tiny_model_path, batch_size=4)]
    code, output = _torchrun(cmd, _env(), expect_ok=False)
    assert code != 0
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "exists and is not empty" in errors[0]
    assert (out / "notes.txt").read_text() == "a user's file"


def test_opt_in_single_process_stages_are_refused_under_torchrun(
    mini_beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from honed.pipeline.config import RunConfig, refuse_unsplit_options

    monkeypatch.setenv("WORLD_SIZE", "2")
    config = RunConfig(data=str(mini_beir), out=str(tmp_path / "r"), corpus_pairs=0.5)
    with pytest.raises(ValueError, match="expected none of --corpus-pairs .* launch of 2"):
        refuse_unsplit_options(config)
    monkeypatch.setenv("WORLD_SIZE", "1")
    refuse_unsplit_options(config)  # one process: allowed


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
