"""The resource guard: estimates from a probe, the refusal, and its wiring into `honed run`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from sentence_transformers import SentenceTransformer

from honed.encoding.encoder import Precision
from honed.mining.config import MiningConfig
from honed.mining.rows import MinedRow
from honed.pipeline import resources as guard
from honed.pipeline.config import RunConfig
from honed.pipeline.estimates import estimate_mining, estimate_training
from honed.pipeline.resources import ResourceError, ResourceEstimate, check
from honed.pipeline.runner import run_pipeline
from honed.training.config import TrainConfig

MiB = 1 << 20


def _rows(n: int = 16, negatives: int = 2) -> list[MinedRow]:
    """Training rows whose documents differ in length, so the probe has a longest text to find."""
    return [
        MinedRow(
            query_id=f"q{i}",
            query=f"does vitamin d number {i} lower the risk of fractures",
            positive_id=f"d{i}",
            positive="vitamin d supplementation reduced hip fractures in older adults "
            * (1 + i % 3),
            positive_score=0.5,
            negative_ids=tuple(f"n{i}_{j}" for j in range(negatives)),
            negatives=tuple(
                f"statins lower cholesterol in trial {i} arm {j}" for j in range(negatives)
            ),
            negative_scores=(0.1,) * negatives,
        )
        for i in range(n)
    ]


def _attention_dropouts(model: SentenceTransformer) -> list[float]:
    modules: list[Any] = [m for m in model.modules() if type(m).__name__.endswith("SelfAttention")]
    return [m.dropout.p for m in modules]


def _config(**kw: object) -> TrainConfig:
    return TrainConfig(**{"precision": "fp32", "mini_batch_size": 4, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model(tiny_model_path: Path) -> SentenceTransformer:
    """A copy of the tiny model for this module (the probe runs backward on it)."""
    return SentenceTransformer(str(tiny_model_path), device="cpu")


@pytest.fixture
def steady_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 MiB in use and 1 GiB available, whatever the test process holds."""
    monkeypatch.setattr(guard, "process_memory", lambda device="cpu": 10 * MiB)
    monkeypatch.setattr(guard, "available_memory", lambda device="cpu": 1024 * MiB)


def _estimate(peak: int, available: int | None, stage: str = "train") -> ResourceEstimate:
    return ResourceEstimate(
        stage=stage,
        seconds=840.0,
        peak_bytes=peak,
        available_bytes=available,
        detail="by hand",
        load="64 texts of 256 tokens per forward pass with gradients",
        fix="use --loss cached_mnrl (default)",
    )


# --- the estimate -----------------------------------------------------------------------------


def test_training_peak_grows_linearly_with_the_batch(
    model: SentenceTransformer, steady_memory: None
) -> None:
    rows = _rows()
    estimates = [
        estimate_training(model, rows, _config(loss="mnrl", batch_size=b)) for b in (2, 4, 8)
    ]
    activations = [e.parts["activations"] for e in estimates]
    assert all(e.peak_bytes > 10 * MiB for e in estimates)  # time: test_cost_model.py
    assert estimates[0].peak_bytes < estimates[1].peak_bytes < estimates[2].peak_bytes
    # mnrl: batch x (2 + negatives) texts in one forward with gradients, memory linear in texts
    assert estimates[2].load.startswith("32 texts of ")
    assert activations[2] - activations[1] == pytest.approx(
        2 * (activations[1] - activations[0]), rel=0.01
    )
    assert all(e.peak_bytes == sum(e.parts.values()) for e in estimates)


def test_cached_mnrl_peak_follows_the_mini_batch_not_the_batch(
    model: SentenceTransformer, steady_memory: None
) -> None:
    rows = _rows()
    by_batch = [estimate_training(model, rows, _config(batch_size=b)) for b in (8, 16)]
    by_mini = [
        estimate_training(model, rows, _config(batch_size=16, mini_batch_size=m)) for m in (2, 4)
    ]
    assert by_batch[0].parts["activations"] == pytest.approx(
        by_batch[1].parts["activations"], rel=0.01
    )
    assert by_mini[0].parts["activations"] < by_mini[1].parts["activations"]
    assert by_batch[0].load.startswith("4 texts of ")


def test_triplet_and_gist_count_their_own_texts_and_weights(
    model: SentenceTransformer, steady_memory: None
) -> None:
    rows = _rows(n=4, negatives=2)
    triplet = estimate_training(model, rows, _config(loss="triplet", batch_size=64))
    assert triplet.load.startswith("24 texts of ")  # 4 rows x 2 negatives = 8 triples x 3 texts
    mnrl = estimate_training(model, rows, _config(loss="mnrl"))
    gist = estimate_training(model, rows, _config(loss="gist"))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert gist.parts["weights_state"] - mnrl.parts["weights_state"] == weights  # the guide model


def test_training_time_is_the_cost_models(model: SentenceTransformer, steady_memory: None) -> None:
    estimate = estimate_training(model, _rows(), _config(epochs=1), seconds=123.0)
    assert estimate.seconds == 123.0 and "time from the cost model" in estimate.detail


def test_probe_leaves_the_model_as_it_was(tiny_model_path: Path) -> None:
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(model.parameters())
    first.grad = torch.ones_like(first)  # a gradient already there stays, untouched
    attention = _attention_dropouts(model)
    assert attention and 0.0 not in attention  # the probe sets 0.0, then must put these back
    max_len = model.max_seq_length
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)

    estimate_training(model, _rows(), _config(max_seq_length=16, attention_dropout=0.0))

    assert torch.equal(torch.rand(3), expected_draw)  # the RNG state is restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(first.grad, torch.ones_like(first))
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert not model.training
    assert model.max_seq_length == max_len
    assert _attention_dropouts(model) == attention


def test_probe_uses_the_configured_max_seq_length(
    model: SentenceTransformer, steady_memory: None
) -> None:
    long_rows = _rows()
    short = estimate_training(model, long_rows, _config(max_seq_length=8))
    assert " texts of 8 tokens " in short.load
    assert (
        short.parts["activations"]
        < estimate_training(model, long_rows, _config()).parts["activations"]
    )


def test_mining_estimate_scales_linearly_in_documents() -> None:
    def extra(n_docs: int) -> ResourceEstimate:
        return estimate_mining(100, n_docs, 384, 50)

    small, medium, large = extra(10_000), extra(20_000), extra(30_000)
    grow = [
        (b.peak_bytes - b.parts["in_use"]) - (a.peak_bytes - a.parts["in_use"])
        for a, b in ((small, medium), (medium, large))
    ]
    assert grow[0] == grow[1] > 0
    assert large.seconds == pytest.approx(3 * small.seconds)
    assert small.parts["embeddings"] == (100 + 10_000) * 384 * 4
    resident = estimate_mining(100, 10_000, 384, 50, embeddings_resident=True)
    assert resident.parts["embeddings"] == 0


def test_mining_score_matrix_stays_bounded() -> None:
    from honed.retrieval.dense import MAX_SCORE_ELEMENTS

    huge = estimate_mining(50_000, 5_000_000, 384, 50)
    assert huge.parts["scores"] <= MAX_SCORE_ELEMENTS * 12
    assert huge.parts["embeddings"] == (50_000 + 5_000_000) * 384 * 4


# --- check and the messages -------------------------------------------------------------------


def test_sentence_gives_time_peak_and_available() -> None:
    assert _estimate(int(3.1 * 2**30), int(21.5 * 2**30)).sentence() == (
        "training: ~14 min, peak ~3.1 GiB of 21.5 GiB available"
    )
    assert (
        _estimate(300 * MiB, None, "mine")
        .sentence()
        .endswith("(available memory unknown on this platform: not checked)")
    )
    assert (
        replace(_estimate(MiB, 2 * MiB), device="cuda:0").sentence().endswith("available on cuda:0")
    )


def test_check_refuses_with_the_numbers_and_a_fix() -> None:
    estimate = _estimate(int(41.2 * 2**30), int(21.5 * 2**30))
    assert not estimate.fits()
    with pytest.raises(
        ResourceError,
        match=r"^training needs ~41\.2 GiB at peak \(64 texts of 256 tokens per forward pass with "
        r"gradients\) but 21\.5 GiB is available and honed uses at most 90% of it; "
        r"fix: use --loss cached_mnrl \(default\)$",
    ):
        check(estimate)


def test_check_passes_what_fits_and_what_it_cannot_know() -> None:
    check(_estimate(8 * MiB, 10 * MiB))  # 80% of the available memory
    check(_estimate(10**15, None))  # unknown available memory: nothing to compare with
    with pytest.raises(ResourceError, match="uses at most 90%"):
        check(_estimate(int(9.5 * MiB), 10 * MiB))
    check(_estimate(int(9.5 * MiB), 10 * MiB), margin=1.0)


def test_check_rejects_a_bad_margin() -> None:
    with pytest.raises(ValueError, match=r"margin: expected a value in \(0, 1\], got 1\.5"):
        check(_estimate(MiB, 2 * MiB), margin=1.5)


def test_estimate_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="stage: expected 'train' or 'mine', got 'evaluate'"):
        _estimate(MiB, MiB, stage="evaluate")
    with pytest.raises(ValueError, match="seconds and peak_bytes: expected >= 0, got 840.0 and -1"):
        _estimate(-1, MiB)


def test_estimators_reject_bad_arguments(model: SentenceTransformer) -> None:
    with pytest.raises(ValueError, match="rows: expected at least one row, got none; fix: check"):
        estimate_training(model, [], _config())
    with pytest.raises(ValueError, match="seconds: expected a value >= 0, got -1"):
        estimate_training(model, _rows(), _config(), seconds=-1)
    with pytest.raises(ValueError, match="n_docs: expected a positive integer, got 0"):
        estimate_mining(10, 0, 384, 50)


def test_training_refused_when_almost_nothing_is_available(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard, "available_memory", lambda device="cpu": MiB)
    estimate = estimate_training(model, _rows(), _config())
    assert estimate.available_bytes == MiB
    with pytest.raises(
        ResourceError,
        match=r"^training needs ~.+ at peak \(4 texts of \d+ tokens per forward pass with gradients\) "
        r"but 1\.0 MiB is available .*; fix: the memory in use plus .* --base model$",
    ):
        check(estimate)


@pytest.mark.parametrize(
    ("loss", "fix"),
    [
        (
            "mnrl",
            r"fix: use --loss cached_mnrl \(default; .*\) or lower --batch-size \(now 8\) / --max-seq-length \(the longest text has \d+ tokens\)$",
        ),
        (
            "cached_mnrl",
            r"fix: lower --mini-batch-size \(now 4\) or --max-seq-length \(the longest text has \d+ tokens\); cached_mnrl's peak",
        ),
    ],
)
def test_training_fix_names_the_setting_that_lowers_the_peak(
    model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch, loss: str, fix: str
) -> None:
    monkeypatch.setattr(guard, "process_memory", lambda device="cpu": 10 * MiB)
    fits_weights = estimate_training(model, _rows(), _config(loss=loss, batch_size=8))
    # room for what is in use and the weights' state, but not for the activations
    room = (
        10 * MiB + fits_weights.parts["weights_state"] + fits_weights.parts["activations"] // 4
    ) / 0.9
    monkeypatch.setattr(guard, "available_memory", lambda device="cpu": int(room))
    with pytest.raises(ResourceError, match=fix):
        check(estimate_training(model, _rows(), _config(loss=loss, batch_size=8)))


# --- honed run --------------------------------------------------------------------------------


def _tiny_run_args(data: Path, out: Path, model: Path) -> list[str]:
    return [
        "run", str(data), "--out", str(out), "--base", str(model), "--device", "cpu",
        "--precision", "fp32", "--dev-fraction", "0.25", "--min-dev-queries", "4",
        "--negatives", "2", "--depth", "10", "--epochs", "1", "--batch-size", "8",
        "--mini-batch-size", "4", "--no-bm25",
    ]  # fmt: skip


def test_cli_run_refuses_with_one_error_line(
    mini_beir: Path,
    tiny_model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from honed.cli.main import main

    monkeypatch.setattr(guard, "available_memory", lambda device="cpu": MiB)
    code = main(_tiny_run_args(mini_beir, tmp_path / "run", tiny_model_path))
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("error: mining needs ~")
    assert "but 1.0 MiB is available" in errors[0] and "fix: free memory" in errors[0]
    assert "[honed] mining: ~" in err  # the estimate is printed before the refusal


def test_run_records_estimates_and_refuses_training(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import honed.pipeline.runner

    real_mining = honed.pipeline.runner.estimate_mining
    monkeypatch.setattr(  # mining proceeds (available unknown), training meets 1 MiB
        honed.pipeline.runner,
        "estimate_mining",
        lambda *a, **kw: replace(real_mining(*a, **kw), available_bytes=None),
    )
    monkeypatch.setattr(guard, "available_memory", lambda device="cpu": MiB)
    config = RunConfig(
        data=str(mini_beir), out=str(tmp_path / "run"), base_model=str(tiny_model_path),
        dev_fraction=0.25, min_dev_queries=4, precision=Precision.FP32, bm25=False,
        mining=MiningConfig(num_negatives=2, depth=10),
        training=TrainConfig(epochs=1, batch_size=8, mini_batch_size=4, precision=Precision.FP32),
    )  # fmt: skip
    messages: list[str] = []
    with pytest.raises(ResourceError, match="^training needs ~"):
        run_pipeline(config, notify=messages.append)
    assert any(m.startswith("training: ~") and m.endswith("of 1.0 MiB available") for m in messages)
    status = json.loads((tmp_path / "run" / "status.json").read_text(encoding="utf-8"))
    assert status["completed"] == ["load", "baseline", "mine"]
    assert set(status["timings"]) == {"load", "baseline", "mine"}
    mine, train = status["resources"]["mine"], status["resources"]["train"]
    assert mine["actual_seconds"] >= 0 and mine["actual_peak_bytes"] > 0
    assert mine["peak_bytes"] == sum(mine["parts"].values())
    assert train["available_bytes"] == MiB and "actual_seconds" not in train
    assert train["sentence"].startswith("training: ~")
