"""The one cost model of ``honed run``: arithmetic, probe, corrections, and what a run records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from sentence_transformers import SentenceTransformer

import honed.pipeline.run_estimates as run_estimates
from honed.mining.config import MiningConfig
from honed.pipeline.config import RunConfig
from honed.pipeline.runner import run_pipeline
from honed.training.config import TrainConfig
from honed.training.cost_model import (
    BASELINE_OTHER,
    PLANNER_PAIR,
    PLANNER_QUERY,
    Lengths,
    Rates,
    Workload,
    encode_seconds,
    estimate_stages,
    train_step_seconds,
)
from honed.training.speed_probe import measure_lengths, measure_rates, probe_lengths

RATES = Rates(
    encode_token=1e-4, encode_batch=1e-2, train_token=3e-4, train_batch=2e-2,
    optimizer_step=0.05, score=1e-9, parameter_bytes=90_000_000,
)  # fmt: skip
WORK = Workload(n_docs=5000, n_queries=1100, train_queries=800, train_pairs=900,
                dev_queries=80, test_queries=300)  # fmt: skip


def _lengths(docs: list[int], queries: tuple[int, ...] = (20,) * 10) -> Lengths:
    return Lengths(tuple(docs), queries, 256)


def test_encoding_grows_with_texts_and_tokens() -> None:
    short, long = _lengths([30] * 100), _lengths([250] * 100)
    assert encode_seconds(short.docs, 0, 64, RATES) == 0.0
    assert encode_seconds(short.docs, 640, 64, RATES) < encode_seconds(long.docs, 640, 64, RATES)
    assert encode_seconds(long.docs, 640, 64, RATES) < encode_seconds(long.docs, 1280, 64, RATES)
    # 10 batches of 64 texts of 250 tokens: 10 x (per batch + 64 x 250 x per token)
    expected = 10 * (RATES.encode_batch + 64 * 250 * RATES.encode_token)
    assert encode_seconds(long.docs, 640, 64, RATES) == pytest.approx(expected)


def test_a_few_long_texts_make_every_training_step_long_but_not_the_encoding() -> None:
    """The fixed per-step cost: each mini-batch is padded to its longest text."""
    mixed = _lengths([20] * 95 + [256] * 5)  # mean 32 tokens, 5% at the maximum
    short, long = _lengths([20] * 100), _lengths([256] * 100)
    config = TrainConfig()
    step = {name: train_step_seconds(lengths, config, 3, RATES)
            for name, lengths in (("mixed", mixed), ("short", short), ("long", long))}  # fmt: skip
    assert step["mixed"] > 0.6 * step["long"] > step["short"]
    encode = {name: encode_seconds(lengths.docs, 5000, 64, RATES)
              for name, lengths in (("mixed", mixed), ("long", long))}  # fmt: skip
    assert encode["mixed"] < 0.3 * encode["long"]  # sorted by length: little padding


# Seconds per text measured on the profiled 2-core EPYC (32-text passes of MiniLM-L6): the
# per-token cost is 310 us at 64 tokens, 345 at 128 and ~670 at 256, so no straight line fits.
CURVE = replace(
    RATES,
    encode_curve=((32, 0.0039), (64, 0.0087), (128, 0.0222), (256, 0.0649)),
    train_curve=((32, 0.0099), (64, 0.0199), (128, 0.0441), (256, 0.1716)),
)


def test_a_curve_prices_each_pass_at_its_own_length() -> None:
    # 3 batches of 64 texts, all 128 tokens: 192 texts x the curve's time per text at 128.
    assert encode_seconds([128] * 10, 192, 64, CURVE) == pytest.approx(192 * 0.0222)
    # Between timed lengths the time per text is interpolated (96: halfway from 64 to 128).
    assert encode_seconds([96] * 10, 10, 64, CURVE) == pytest.approx(10 * (0.0087 + 0.0222) / 2)
    # Below the shortest timed length it shrinks with the length instead of staying at 32's.
    assert encode_seconds([8] * 10, 10, 64, CURVE) == pytest.approx(10 * 0.0039 / 4)
    # The straight line through the ends (64 and 256) prices the 128-token batch ~1.4x higher.
    per_token = (256 * 0.0649 - 64 * 0.0087) / (256 - 64)
    line = replace(RATES, encode_token=per_token, encode_batch=256 * 0.0649 - per_token * 256)
    ratio = encode_seconds([128] * 10, 64, 64, line) / encode_seconds([128] * 10, 64, 64, CURVE)
    assert ratio > 1.3


def test_a_training_step_on_a_curve_follows_the_padded_length() -> None:
    config = TrainConfig(loss="cached_mnrl", batch_size=64, mini_batch_size=32)
    step = {n: train_step_seconds(_lengths([n] * 50, (n,) * 10), config, 1, CURVE)
            for n in (64, 128, 256)}  # fmt: skip
    # 3 columns (query, positive, negative) x 64 texts in two 32-text pieces, each with and
    # without gradients, + the AdamW step.
    expected = CURVE.optimizer_step + 3 * 64 * (0.0441 + 0.0222)
    assert step[128] == pytest.approx(expected)
    assert step[64] < step[128] < step[256]
    assert CURVE.scaled(2.0).train_pass(32, 128) == pytest.approx(2 * 32 * 0.0441)


def test_cached_loss_pays_a_no_gradient_pass_that_mnrl_does_not() -> None:
    lengths = _lengths([100] * 50)
    cached = train_step_seconds(lengths, TrainConfig(loss="cached_mnrl"), 3, RATES)
    mnrl = train_step_seconds(lengths, TrainConfig(loss="mnrl"), 3, RATES)
    assert cached > mnrl


def test_stages_count_steps_rounds_and_lengths() -> None:
    lengths = _lengths([200] * 50)
    costs = estimate_stages(lengths, WORK, RATES, TrainConfig(), negatives=3, encode_batch=64)
    assert costs.train.steps == 6 * 15  # (5 epochs + 1 second-round epoch) x ceil(900 / 64)
    no_round = estimate_stages(lengths, WORK, RATES, TrainConfig(remine_epochs=0), negatives=3,
                               encode_batch=64)  # fmt: skip
    assert no_round.train.steps == 5 * 15 and no_round.train.seconds < costs.train.seconds
    short = estimate_stages(lengths, WORK, RATES, TrainConfig(max_seq_length=64), negatives=3,
                            encode_batch=64)  # fmt: skip
    assert short.train.seconds < costs.train.seconds
    assert short.baseline == costs.baseline  # the baseline encodes at the model's own length
    cached = estimate_stages(lengths, replace(WORK, docs_cached=5000, queries_cached=1100), RATES,
                             TrainConfig(), negatives=3, encode_batch=64)  # fmt: skip
    # Nothing to encode: only BM25, the leakage check and metrics remain.
    assert cached.baseline == pytest.approx(BASELINE_OTHER * RATES.machine)
    assert cached.baseline < costs.baseline


def test_the_index_planner_is_priced_per_document_and_per_query() -> None:
    """Its 31 configurations search every dev and test query one at a time, each query costing a
    fixed part and a part per document (tldr's 2,001 queries x 29,427 documents took 49 s)."""
    lengths = _lengths([200] * 50)
    few = estimate_stages(lengths, WORK, RATES, TrainConfig(), negatives=3, encode_batch=64)
    many = estimate_stages(lengths, replace(WORK, dev_queries=800), RATES, TrainConfig(),
                           negatives=3, encode_batch=64)  # fmt: skip
    extra = 800 - WORK.dev_queries
    planner = (PLANNER_QUERY + PLANNER_PAIR * WORK.n_docs) * extra * RATES.machine
    assert many.evaluate - few.evaluate == pytest.approx(planner)


def test_sampled_workload_keeps_pairs_per_query() -> None:
    sampled = WORK.sampled(400)
    assert (sampled.train_queries, sampled.train_pairs) == (400, 450)
    assert WORK.sampled(None) == WORK and WORK.sampled(10_000) == WORK


def test_lengths_refuse_empty_samples() -> None:
    with pytest.raises(ValueError, match="lengths: expected positive token counts"):
        Lengths((), (3,), 256)


def test_probe_measures_and_leaves_the_model_as_it_was(tiny_model_path: Path) -> None:
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    docs = [f"document {i} " + "word " * (i % 40) for i in range(60)]
    lengths = measure_lengths(model, docs, ["a short query"] * 5, seed=0)
    assert lengths.max_seq_length == model.max_seq_length
    assert max(lengths.docs) <= model.max_seq_length and min(lengths.queries) >= 3
    rates = measure_rates(model, docs, lengths, TrainConfig(precision="fp32"), "fp32")
    assert rates.encode_token > 0 and rates.train_token > 0 and rates.optimizer_step > 0
    for curve in (rates.encode_curve, rates.train_curve, rates.nograd_curve):  # at each length
        longest = min(max(lengths.docs + lengths.queries), model.max_seq_length)
        assert [n for n, _ in curve] == probe_lengths(lengths, max(8, longest))
        assert all(seconds > 0 for _, seconds in curve)
    assert not model.training
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_probe_passes_carry_padding_below_the_cap_as_real_batches_do(
    tiny_model: SentenceTransformer,
) -> None:
    """Real batches mix lengths (a padding mask, a slower attention path) except at the cap,
    where every text is cut to the same length: the probe's passes are shaped the same way."""
    from honed.training.speed_probe import _features

    text = "word " * 600
    short = _features(tiny_model, text, 4, 16)["attention_mask"]  # (4, 16)
    assert short[:-1].all() and short[-1].tolist() == [1] * 15 + [0]
    cap = _features(tiny_model, text, 4, tiny_model.max_seq_length)["attention_mask"]
    assert cap.all()
    assert _features(tiny_model, text, 1, 16)["attention_mask"].all()  # one text: nothing to pad


def test_step_clock_reports_once_after_the_warm_up_step() -> None:
    reports: list[tuple[float, int]] = []
    clock = run_estimates.StepClock(lambda per_step, left: reports.append((per_step, left)))
    for step in range(1, 7):
        clock.on_step_end(None, SimpleNamespace(global_step=step, max_steps=10), None)
    assert len(reports) == 1
    per_step, left = reports[0]
    assert per_step >= 0 and left == 10 - (run_estimates.CLOCK_STEPS + 1)


def _config(data: Path, out: Path, model: Path, **kw: object) -> RunConfig:
    return RunConfig(
        data=str(data), out=str(out), base_model=str(model), dev_fraction=0.25,
        min_dev_queries=4, precision="fp32", bm25=False, cache_dir=None,
        mining=MiningConfig(num_negatives=2, depth=10),
        training=TrainConfig(epochs=3, batch_size=4, mini_batch_size=2, precision="fp32",
                             dims=(32, 16, 8)),
        **kw,
    )  # fmt: skip


@pytest.mark.slow
def test_run_with_a_budget_records_plan_estimates_and_actuals(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_estimates, "LONG_RUN_SECONDS", 0.0)  # every run is "long"  # the warning: not with a budget
    messages: list[str] = []
    out = tmp_path / "run"
    # A budget far below what 3 epochs cost: the plan cuts and says what it kept.
    result = run_pipeline(_config(mini_beir, out, tiny_model_path, time_budget=1e-3),
                          notify=messages.append)  # fmt: skip
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    plan = saved["budget_plan"]
    assert plan["budget_seconds"] == 1e-3 and plan["sentence"].startswith("budget 0 s: 1 epoch")
    assert saved["time_budget"] == 1e-3
    assert saved["training"]["epochs"] == plan["knobs"]["epochs"] == 1
    assert saved["training"]["remine_epochs"] == 0
    assert saved["max_train_queries"] == plan["knobs"]["max_train_queries"]
    assert result.budget == plan and result.training["config"]["epochs"] == 1
    first = next(i for i, m in enumerate(messages) if m.startswith("baseline: encoding"))
    assert any(m.startswith("budget 0 s:") for m in messages[:first])
    assert any(m.startswith("estimates: baseline ~") for m in messages[:first])
    assert not any("--time-budget" in m for m in messages)
    status = json.loads((out / "status.json").read_text(encoding="utf-8"))
    assert set(status["estimates"]) == {"baseline", "mine", "train", "evaluate"}
    for stage, record in status["estimates"].items():
        assert record["estimate_seconds"] >= 0
        assert record["actual_seconds"] == round(status["timings"][stage], 1)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| stage | seconds | estimated | corrected |" in report
    assert plan["sentence"] in report


@pytest.mark.slow
def test_a_long_run_names_the_budget_option(
    mini_beir: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_estimates, "LONG_RUN_SECONDS", 0.0)  # every run is "long"
    messages: list[str] = []
    config = _config(mini_beir, tmp_path / "run", tiny_model_path)
    config = replace(config, training=replace(config.training, epochs=1, remine_epochs=0))
    run_pipeline(config, notify=messages.append)
    first = next(i for i, m in enumerate(messages) if m.startswith("baseline: encoding"))
    warning = [m for m in messages[:first] if "over an hour" in m]
    assert len(warning) == 1 and "--time-budget" in warning[0]


def test_a_torchrun_launch_shares_encoding_and_steps_between_its_processes() -> None:
    """Two processes: each encodes half, a step covers 2 x batch_size rows; mining is the first's."""
    rates = Rates(1e-4, 1e-3, 3e-4, 1e-3, 0.01, 1e-9, 90_000_000)
    one = Workload(1000, 300, 200, 256, 30, 70)
    two = replace(one, processes=2)
    lengths = Lengths((200,), (20,), 256)
    costs = {
        w.processes: estimate_stages(lengths, w, rates, TrainConfig(), negatives=3, encode_batch=64)
        for w in (one, two)
    }
    assert costs[1].train.steps == 6 * 4 and costs[2].train.steps == 6 * 2  # 256 rows: 64 vs 128
    assert costs[2].train.step == costs[1].train.step  # each process steps on its own 64 rows
    assert costs[2].mine == costs[1].mine
    other = BASELINE_OTHER * rates.machine
    assert costs[2].baseline - other == pytest.approx((costs[1].baseline - other) / 2)


def test_the_printed_lengths_are_the_ones_the_run_uses() -> None:
    """A --max-seq-length below the model's shows in the estimate line (it said 256 at 128)."""
    config = RunConfig("data", "out", training=TrainConfig(max_seq_length=128))
    estimates = run_estimates.RunEstimates(
        _lengths([100, 200, 256, 256, 256]), RATES, WORK, config, probe_seconds=1.0
    )
    estimates.record()
    assert "documents ~128 tokens median, 128 max" in estimates.sentence()
    untruncated = run_estimates.RunEstimates(
        _lengths([100, 200, 256, 256, 256]), RATES, WORK, RunConfig("data", "out"), probe_seconds=1.0
    )
    untruncated.record()
    assert "documents ~256 tokens median, 256 max" in untruncated.sentence()
