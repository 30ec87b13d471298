"""The `honed` command: dispatch, one-line errors with exit code 1, and a fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from honed.cli.main import main


def test_help_does_not_import_torch() -> None:
    code = "import sys, honed.cli.main; honed.cli.main.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"


def test_check_ok(mini_beir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(mini_beir)]) == 0
    out = capsys.readouterr().out
    assert "40 documents, 24 queries" in out
    assert "next: honed run" in out


def test_check_reports_problems_and_exits_1(
    mini_beir_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (mini_beir_copy / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q17\tnot-a-doc\t1\n")
    assert main(["check", str(mini_beir_copy)]) == 1
    captured = capsys.readouterr()
    assert "not-a-doc" in captured.out
    assert captured.err.startswith("error: ")


def test_missing_folder_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0])  # one line, and it is the last
    assert "does not exist" in errors[0] and "fix:" in errors[0]
    assert "Traceback" not in err


def test_bad_json_line_names_file_and_line(
    mini_beir_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = mini_beir_copy / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[2] = lines[2][:-5]  # truncate a JSON object
    corpus.write_text("\n".join(lines) + "\n")
    code = main(["evaluate", "all-MiniLM-L6-v2", str(mini_beir_copy)])
    err = capsys.readouterr().err
    assert code == 1
    assert "corpus.jsonl:3" in err


def test_existing_out_is_refused(
    mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    assert main(["run", str(mini_beir), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "user file"


def test_bad_option_value_is_one_line(
    mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(mini_beir), "--out", str(tmp_path / "r"), "--margin", "1.5"]) == 1
    assert "margin" in capsys.readouterr().err


def test_evaluate_mine_train_report_chain(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mined = tmp_path / "mined.jsonl"
    assert (
        main(
            [
                "mine",
                str(mini_beir),
                "--out",
                str(mined),
                "--base",
                str(tiny_model_path),
                "--negatives",
                "2",
                "--depth",
                "5",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    assert mined.is_file() and (tmp_path / "mining_report.json").is_file()
    assert "next: honed train" in capsys.readouterr().out
    model = tmp_path / "model"
    assert (
        main(
            [
                "train",
                str(mined),
                "--out",
                str(model),
                "--base",
                str(tiny_model_path),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--mini-batch-size",
                "4",
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    assert (model / "config.json").is_file()
    metrics_path = tmp_path / "metrics.json"
    assert main(["evaluate", str(model), str(mini_beir), "--bm25", "--out", str(metrics_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics) == {"dense", "bm25"} and "ndcg@10" in metrics["dense"]["32"]
    # a second mine into the same file is refused
    assert main(["mine", str(mini_beir), "--out", str(mined), "--base", str(tiny_model_path)]) == 1


def test_report_needs_a_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "report.json" in capsys.readouterr().err


def test_compare_models_and_run_files(mini_beir: Path, tiny_model_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_file = tmp_path / "perfect.trec"
    lines = [line.split("\t") for line in (mini_beir / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    run_file.write_text("".join(f"{q} Q0 {d} 1 {float(s)} perfect\n" for q, d, s in lines if int(s) > 0))
    out = tmp_path / "compare.json"
    code = main(["compare", str(mini_beir), str(tiny_model_path), str(run_file), "--bm25",
                 "--n-resamples", "500", "--precision", "fp32", "--out", str(out)])
    assert code == 0
    tests = json.loads(out.read_text())
    assert {(t["system_a"], t["system_b"]) for t in tests} == {
        (str(tiny_model_path), str(run_file)), (str(tiny_model_path), "bm25"), (str(run_file), "bm25")
    }
    perfect = [t for t in tests if t["system_b"] == str(run_file) and t["metric"] == "ndcg@10"][0]
    assert perfect["mean_b"] == pytest.approx(1.0)  # the qrels themselves as a run: perfect ranking
    assert "95% CI" in capsys.readouterr().out


def test_bad_trec_run_line(tmp_path: Path) -> None:
    from honed.evaluation.runs import read_trec_run

    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 high tag\n")
    with pytest.raises(ValueError, match=r"bad.trec:2: expected 'qid Q0 docid rank score tag'"):
        read_trec_run(bad)
    with pytest.raises(FileNotFoundError, match="no such run file"):
        read_trec_run(tmp_path / "missing.trec")


def test_train_overwrite_never_deletes_a_non_model_folder(mini_beir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "vitamin d", "positive": "vitamin d and bones"}\n')
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    assert main(["train", str(pairs), "--out", str(out), "--overwrite"]) == 1
    assert "not a sentence-transformers model folder" in capsys.readouterr().err
    assert (out / "thesis.txt").read_text() == "precious"


def test_check_says_when_honed_run_cannot_use_the_folder(mini_beir_copy: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (mini_beir_copy / "qrels" / "test.tsv").unlink()
    assert main(["check", str(mini_beir_copy)]) == 0
    out = capsys.readouterr().out
    assert "honed run needs qrels/test.tsv" in out and "next: honed run" not in out


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (PermissionError(13, "Permission denied"), "Permission denied"),
    ],
)
def test_disk_full_and_permission_errors_are_one_line(
    error: OSError, fragment: str, mini_beir: Path, tiny_model_path: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import honed.pipeline.stages

    real = honed.pipeline.stages.write_json

    def failing(path: Path, obj: object) -> None:
        if path.name == "mining_report.json":  # fail in the middle of the run
            error.filename = str(path)
            raise error
        real(path, obj)

    monkeypatch.setattr(honed.pipeline.stages, "write_json", failing)
    out = tmp_path / "run"
    code = main(["run", str(mini_beir), "--out", str(out), "--base", str(tiny_model_path),
                 "--precision", "fp32", "--dev-fraction", "0.25", "--min-dev-queries", "4"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0] and "mining_report.json" in errors[0]
    assert "Traceback" not in err
    status = json.loads((out / "status.json").read_text())
    assert "mine" not in status["completed"]  # the failed stage does not look finished
    assert not (out / "mining_report.json").exists() and not (out / "report.md").exists()


def test_bad_time_budget_is_one_line(
    mini_beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main(["run", str(mini_beir), "--out", str(out), "--time-budget", "20 minutes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --time-budget: expected a duration such as 90s, 20m, 2h or 1h30m, got "
        "'20 minutes'; fix: give a number with its unit (s, m or h)"
    ]
    assert not out.exists()  # refused before anything was created


def test_time_budget_is_in_run_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--time-budget DURATION" in capsys.readouterr().out
