"""``honed run --resume`` with options, stage times across resumes, ``--max-train-queries`` (#15).

A resume applies the options that are safe to change (and says so, and records it in
config.json) or refuses with the list of those that cannot change; it is never silent. The
report's stage times add up every session, the interrupted one included. An interrupted
baseline encoding resumes from the embedding cache.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from honed.cli.main import main
from honed.encoding import batches
from honed.pipeline.clock import StageClock
from honed.pipeline.config import RunConfig
from honed.pipeline.resume_changes import apply_changes, plan_changes
from honed.training.config import TrainConfig
from honed.training.evaluator import DevEvaluator
from honed.training.trainer import checkpoint_epoch, latest_checkpoint

OLD = RunConfig(data="d", out="o", training=TrainConfig(epochs=5)).to_dict()


# --- which changes a resume applies ---------------------------------------------------------


def test_safe_changes_are_applied_and_described() -> None:
    plan = plan_changes(OLD, {"training.epochs": 1, "bm25": False, "n_resamples": 200}, False)
    assert [c.describe() for c in plan.applied] == [
        "--epochs 1 (was 5)", "--no-bm25 False (was True)", "n_resamples 200 (was 10000)",
    ]
    assert plan.refused == ()
    new = apply_changes(OLD, plan.applied)
    assert new["training"]["epochs"] == 1 and new["bm25"] is False and OLD["training"]["epochs"] == 5


def test_values_equal_to_the_old_ones_are_no_change() -> None:
    plan = plan_changes(OLD, {"training.epochs": 5, "training.dims": None, "seed": 42}, False)
    assert plan.applied == () and plan.refused == ()
    dims = {**OLD, "training": {**OLD["training"], "dims": [32, 16]}}
    assert plan_changes(dims, {"training.dims": (32, 16)}, False).refused == ()  # tuple == list


def test_changes_that_invalidate_done_work_are_refused_with_the_fix() -> None:
    plan = plan_changes(
        OLD, {"training.loss": "mnrl", "training.max_seq_length": 128, "training.epochs": 1}, False
    )
    assert plan.applied == ()
    assert [c.option for c in plan.refused] == ["--loss", "--max-seq-length"]
    assert plan.refusal("runs/x") == (
        "runs/x: cannot resume with --loss mnrl (was cached_mnrl), --max-seq-length 128 (was "
        "None): they shape the mined rows or the trained weights already computed; fix: start a "
        "new run with --out NEW_DIR (and these options), or resume without them"
    )


def test_training_options_are_refused_once_the_model_is_saved() -> None:
    plan = plan_changes(OLD, {"training.epochs": 1, "bm25": False}, trained=True)
    assert [c.option for c in plan.refused] == ["--epochs"]
    assert "training finished before the interruption" in plan.refusal("r")


def test_fewer_epochs_than_a_checkpoint_holds_are_refused() -> None:
    plan = plan_changes(OLD, {"training.epochs": 2}, False, checkpoint_epoch=3.0)
    assert plan.refusal("r").startswith("r: cannot resume with --epochs 2 (was 5): the newest "
                                        "checkpoint already holds 3 epochs")
    assert plan_changes(OLD, {"training.epochs": 3}, False, checkpoint_epoch=3.0).refused == ()


def test_an_unknown_setting_is_refused() -> None:
    assert plan_changes(OLD, {"mining.seed": 1}, False).refused[0].option == "mining.seed"


def test_every_run_option_maps_to_a_setting_with_a_rule() -> None:
    from honed.cli.parser import build_parser
    from honed.cli.run import DEST_FIELDS
    from honed.pipeline.resume_changes import RULES

    run = build_parser().parse_args(["run"])
    dests = set(vars(run)) - {"command", "debug", "out", "resume"}
    assert dests == set(DEST_FIELDS)
    assert {DEST_FIELDS[d] for d in dests} <= set(RULES)


def test_the_clock_adds_every_session_and_the_running_stage() -> None:
    clock = StageClock({"completed": ["load"], "spent": {"load": 2.0, "train": 60.0},
                        "sessions": 1})
    clock.start("load")
    assert clock.stop("load") >= 2.0 and clock.sessions == 2
    clock.start("train")
    record = clock.record()
    assert record["running"]["stage"] == "train" and record["spent"]["train"] >= 60.0
    assert record["timings"] == {"load": clock.timings["load"]}
    assert StageClock({"timings": {"mine": 3.0}}).earlier_of("mine") == 3.0  # older status.json
    assert StageClock({}).sessions == 1


def test_the_heartbeat_writes_while_a_stage_runs() -> None:
    import time

    beats: list[float] = []
    clock = StageClock({})
    with clock.heartbeat(lambda: beats.append(time.monotonic()), every=0.01):
        time.sleep(0.2)
    count = len(beats)
    time.sleep(0.05)
    assert count >= 3 and len(beats) == count  # stopped with the block


def test_max_train_queries_is_validated() -> None:
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match=r"max_train_queries: expected a positive integer "
                           r"\(training queries to sample\) or None for all, got .*; fix: pass "
                           r"--max-train-queries 1 or more, or leave it out"):
            RunConfig(data="d", out="o", max_train_queries=bad)  # type: ignore[arg-type]


def test_cli_refuses_max_train_queries_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "data", "--out", "runs/x", "--max-train-queries", "0"]) == 1
    assert "error: max_train_queries: expected a positive integer" in capsys.readouterr().err


# --- a real run: interrupted in training, resumed with options --------------------------------


def _args(data: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [
        "run", str(data), "--out", str(out), "--base", str(model), "--epochs", "3",
        "--batch-size", "4", "--mini-batch-size", "4", "--precision", "fp32", "--negatives", "2",
        "--depth", "10", "--dev-fraction", "0.25", "--min-dev-queries", "4", "--remine-epochs",
        "0", "--no-bm25", *extra,
    ]


@pytest.fixture(scope="module")
def interrupted(mini_beir: Path, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A run with --max-train-queries 8, Ctrl-C'd in epoch 2 (after epoch 1's checkpoint)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    real, calls = DevEvaluator.__call__, [0]

    def stop_at_second(self: DevEvaluator, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:  # the end of epoch 2, before its checkpoint
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DevEvaluator, "__call__", stop_at_second)
        code = main(_args(mini_beir, out, tiny_model_path, "--max-train-queries", "8"))
    assert code == 130
    return out


@pytest.mark.slow
def test_the_interrupted_run_recorded_its_training_time(interrupted: Path) -> None:
    status = json.loads((interrupted / "status.json").read_text())
    assert "train" not in status["completed"] and status["sessions"] == 1
    assert status["running"]["stage"] == "train" and status["spent"]["train"] > 0
    assert checkpoint_epoch(latest_checkpoint(interrupted / "checkpoints")) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--loss", "mnrl"], r"cannot resume with --loss mnrl \(was cached_mnrl\): they shape the "
                             r"mined rows .*fix: start a new run with --out NEW_DIR"),
        (["--max-train-queries", "4", "--negatives", "1"],
         r"cannot resume with --max-train-queries 4 \(was 8\), --negatives 1 \(was 2\)"),
        (["--out", "elsewhere"], r"--out elsewhere with --resume .*a resume continues RUN_DIR in "
                                 r"place; fix: leave out --out"),
        (["--epochs", "0"], r"epochs: expected a positive integer, got 0"),
    ],
)
def test_resume_refuses_options_that_cannot_change(
    interrupted: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (interrupted / "config.json").read_text()
    assert main(["run", "--resume", str(interrupted), *extra]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert (interrupted / "config.json").read_text() == before  # nothing written


@pytest.mark.slow
def test_resume_applies_epochs_and_counts_the_earlier_time(
    interrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = json.loads((interrupted / "status.json").read_text())["spent"]["train"]
    assert main(["run", "--resume", str(interrupted), "--epochs", "4", "--no-bm25"]) == 0
    err = capsys.readouterr().err
    assert "[honed] resume: applying --epochs 4 (was 3)" in err
    config = json.loads((interrupted / "config.json").read_text())
    assert config["training"]["epochs"] == 4
    (record,) = config["resume_changes"]
    assert record["changes"] == [
        {"field": "training.epochs", "option": "--epochs", "old": 3, "new": 4}
    ]
    report = json.loads((interrupted / "report.json").read_text())
    training = report["training"]
    assert training["seconds"] > earlier > 0  # the interrupted session's time counts
    assert training["rows_per_second"] == pytest.approx(
        training["rows"] * 4 / training["seconds"]
    )
    assert [c["epoch"] for c in training["curve"]][-1] == 4.0  # trained on to the new count
    status = json.loads((interrupted / "status.json").read_text())
    assert status["sessions"] == 2 and report["sessions"] == 2
    assert report["timings"]["train"] == status["timings"]["train"] >= earlier
    md = (interrupted / "report.md").read_text()
    assert f"{training['seconds'] / 60:.1f} min ({training['rows_per_second']:.2f} rows/s" in md
    assert "The run took 2 sessions (resumed 1 time)" in md
    # --max-train-queries 8: recorded, and said in the report; dev untouched.
    data = json.loads((interrupted / "data.json").read_text())
    sample = data["train_sample"]
    assert {k: sample[k] for k in ("max_train_queries", "seed", "kept")} == {
        "max_train_queries": 8, "seed": 42, "kept": 8,
    }
    assert sample["available"] > 8  # the sample really cut the training queries
    assert data["splits"]["train"]["queries"] == 8 and data["splits"]["dev"]["queries"] == 4
    assert len(json.loads((interrupted / "splits.json").read_text())["train"]) == 8
    assert (
        f"Trained on 8 of {sample['available']} training queries with a positive "
        "(--max-train-queries 8, seed 42); dev and test are whole."
    ) in md


# --- an interrupted baseline encoding resumes from the cache -----------------------------------


@pytest.mark.slow
def test_an_interrupted_baseline_resumes_without_re_encoding(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    from honed.pipeline.runner import resume_pipeline, run_pipeline

    def config(out: Path, cache: Path) -> RunConfig:
        return RunConfig(
            data=str(mini_beir), out=str(out), base_model=str(tiny_model_path), device="cpu",
            precision="fp32", encode_batch_size=8, bm25=False, cache_dir=str(cache),
            dev_fraction=0.25, min_dev_queries=4, n_resamples=100,
            training=TrainConfig(epochs=1, batch_size=4, mini_batch_size=4, remine_epochs=0),
        )

    monkeypatch.setattr(batches, "COMMIT_SECONDS", 0.0)  # commit every batch of 8
    reference = run_pipeline(config(tmp_path / "ref", tmp_path / "ref-cache"))
    real, texts = SentenceTransformer.encode, [0]

    def interrupting(self: Any, sentences: list[str], **kwargs: Any) -> Any:
        texts[0] += 1
        if texts[0] == 4:  # the corpus's 4th batch: 3 x 8 documents done
            raise KeyboardInterrupt
        return real(self, sentences, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", interrupting)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config(out, tmp_path / "cache"))
    monkeypatch.setattr(SentenceTransformer, "encode", real)
    resumed = resume_pipeline(out)
    assert resumed.encode_stats["hits_disk"] == 3 * 8  # what the first session encoded
    assert (
        resumed.encode_stats["encoded"] == reference.encode_stats["encoded"] - 3 * 8
    )  # fewer texts encoded the second time, by exactly those
    assert resumed.metrics["base"] == reference.metrics["base"]
