"""``honed mine`` and ``honed evaluate`` under ``torchrun``: two CPU processes (gloo).

Each process encodes its share of the corpus and queries (``HONED_LOG_ENCODE`` says how much),
the first one mines or scores, and the results are those of a single process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honed.cli.main import main
from honed.encoding.distributed import group_ready, log_encode, on_main_process, process_group

WORKER = Path(__file__).with_name("_torchrun_main.py")
# The mini BEIR corpus has 40 documents and 16 train queries with a positive; in batches of 4
# that is 10 + 4 batches, dealt 5 + 2 to each process. No disk cache: the single-process run would
# leave the vectors there for the launch to read back.
ENCODE_ARGS = ["--device", "cpu", "--precision", "fp32", "--encode-batch-size", "4", "--no-cache"]


def _env(**extra: str) -> dict[str, str]:
    from torchrun_helpers import gloo_env

    return gloo_env(**extra)


def _launch(args: list[str], env: dict[str, str]) -> str:
    """stdout + stderr of ``torchrun --nproc_per_node 2 ARGS`` (fails the test on a bad exit)."""
    import torch

    from torchrun_helpers import free_port as _free_port
    from torchrun_helpers import torchrun as _torchrun

    if not torch.distributed.is_gloo_available():
        pytest.skip("torch was built without the gloo backend, which CPU collectives need")
    port = ["--nproc_per_node", "2", "--master_port", str(_free_port())]
    result = _torchrun([*port, *args], env, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
    return str(result.stdout)


def _encode_log(prefix: Path, rank: int) -> dict[str, dict[str, int]]:
    lines = Path(f"{prefix}.rank{rank}.jsonl").read_text(encoding="utf-8").splitlines()
    return {row.pop("label"): row for row in map(json.loads, lines)}


@pytest.mark.slow
def test_torchrun_mine_writes_what_one_process_writes(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    single, split, log = tmp_path / "single", tmp_path / "split", tmp_path / "encode"
    base = ["--base", str(tiny_model_path), *ENCODE_ARGS]
    assert main(["mine", str(mini_beir), "--out", str(single / "mined.jsonl"), *base]) == 0
    cmd = ["-m", "honed.cli.main", "mine", str(mini_beir), "--out", str(split / "mined.jsonl"), *base]
    output = _launch(cmd, _env(HONED_LOG_ENCODE=str(log)))

    rows = [json.loads(line) for line in (split / "mined.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (single / "mined.jsonl").read_text().splitlines()]
    assert len(rows) == len(expected) == 17
    for row, want in zip(rows, expected):
        assert {k: v for k, v in row.items() if "score" not in k} == {
            k: v for k, v in want.items() if "score" not in k
        }
        assert row["negative_scores"] == pytest.approx(want["negative_scores"], abs=1e-5)
    assert json.loads((split / "mining_report.json").read_text()) == json.loads(
        (single / "mining_report.json").read_text()
    )
    assert output.count("next: honed train") == 1  # only the first process prints
    assert sorted(p.name for p in split.iterdir()) == ["mined.jsonl", "mining_report.json"]
    for rank in (0, 1):  # each process encoded half of the corpus and of the queries
        logged = _encode_log(log, rank)
        assert logged["corpus"] == {
            "world_size": 2,
            "requested": 40,
            "encoded": 20,
            "hits_disk": 0,
            "received": 20,
        }
        assert logged["queries"]["encoded"] == 8 and logged["queries"]["received"] == 8


@pytest.mark.slow
def test_torchrun_evaluate_gives_the_metrics_of_one_process(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    single, split, log = tmp_path / "single.json", tmp_path / "split.json", tmp_path / "encode"
    args = [str(tiny_model_path), str(mini_beir), "--bm25", "--dims", "32,16", *ENCODE_ARGS]
    assert main(["evaluate", *args, "--out", str(single)]) == 0
    output = _launch(
        ["-m", "honed.cli.main", "evaluate", *args, "--out", str(split)],
        _env(HONED_LOG_ENCODE=str(log)),
    )

    metrics, expected = json.loads(split.read_text()), json.loads(single.read_text())
    assert sorted(metrics) == ["bm25", "dense"] and sorted(metrics["dense"]) == ["16", "32"]
    for system, by_dim in expected.items():
        for dim, values in by_dim.items():
            assert metrics[system][dim] == pytest.approx(values, abs=1e-6)
    assert output.count("| dense | 32 |") == 1  # only the first process prints
    for rank in (0, 1):  # 8 test queries: 2 batches of 4, one for each process
        logged = _encode_log(log, rank)
        assert logged["corpus"]["encoded"] == 20 and logged["corpus"]["received"] == 20
        assert logged["queries"]["encoded"] == 4 and logged["queries"]["received"] == 4


@pytest.mark.slow
def test_torchrun_main_process_result_and_error_reach_every_process(tmp_path: Path) -> None:
    _launch([str(WORKER), str(tmp_path)], _env())
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["result"] == {"computed_by": 0}
        assert report["error"] == "ValueError: expected a thing, got another; fix: this"
        assert report["ranks_that_worked"] == 1  # the work was done once, by process 0
        assert report["group_after"] is False  # the group is gone after the block
    # process 0 raises its own error; the others get it as text when it cannot be pickled
    assert reports[0]["unpicklable"] == "LocalError: cannot pickle me"
    assert reports[1]["unpicklable"] == "RuntimeError: LocalError: cannot pickle me"


def test_process_group_is_a_no_op_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group("cpu"):
        assert not group_ready()
    assert on_main_process(lambda: 7) == 7


def test_log_encode_writes_one_line_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONED_LOG_ENCODE", str(tmp_path / "enc"))
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    log_encode("corpus", {"requested": 3, "encoded": 3})
    log_encode("queries", {"requested": 1, "encoded": 1})
    lines = (tmp_path / "enc.rank0.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"label": "corpus", "world_size": 1, "requested": 3, "encoded": 3},
        {"label": "queries", "world_size": 1, "requested": 1, "encoded": 1},
    ]


def test_log_encode_is_off_without_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HONED_LOG_ENCODE", raising=False)
    monkeypatch.chdir(tmp_path)
    log_encode("corpus", {"requested": 3})
    assert list(tmp_path.iterdir()) == []


def test_hybrid_evaluate_refuses_a_torchrun_launch(
    mini_beir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "some-model", str(mini_beir), "--hybrid"]) == 1
    err = capsys.readouterr().err
    assert "expected a single process, got a torchrun launch of 2" in err
    assert "fix: run it without torchrun" in err


def test_encode_batch_size_must_be_positive(
    mini_beir: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", str(tiny_model_path), str(mini_beir), "--encode-batch-size", "0"]
    assert main([*args, "--device", "cpu"]) == 1
    assert "batch_size: expected a positive integer, got 0" in capsys.readouterr().err
