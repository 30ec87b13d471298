"""The --time-budget planner (a pure function of a cost function), the duration parser, and the
training-query sample."""

from __future__ import annotations

import pytest

from honed.pipeline.budget import (
    MIN_TRAIN_QUERIES,
    TARGET,
    Knobs,
    parse_duration,
    plan_budget,
)

QUERIES = 5000


def _cost(knobs: Knobs) -> float:
    """A fake run: 60 s fixed, epochs x queries x 0.01 s at 256 tokens (x length/256), 100 s round 2."""
    queries = knobs.max_train_queries or QUERIES
    length = (knobs.max_seq_length or 256) / 256
    return 60 + knobs.epochs * queries * 0.01 * length + (100 if knobs.remine_epochs else 0)


START = Knobs(epochs=5, remine_epochs=1, max_train_queries=None, max_seq_length=None)


def _plan(budget: float):
    return plan_budget(budget, _cost, START, QUERIES, 256)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("20m", 1200), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), (" 20M ", 1200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "20", "20min", "m20", "1h-5m", "abc"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"--time-budget: expected a duration such as 90s, 20m"):
        parse_duration(text)


def test_parse_duration_refuses_zero() -> None:
    with pytest.raises(ValueError, match=r"--time-budget: expected a duration above zero, got '0m'"):
        parse_duration("0m")


def test_a_budget_that_fits_cuts_nothing() -> None:
    plan = _plan(10 * _cost(START))
    assert plan.knobs == START and plan.cuts == () and plan.fits
    assert plan.estimated_seconds == _cost(START)


def test_epochs_are_cut_first_and_only_as_far_as_needed() -> None:
    # 5 epochs + round 2 = 60 + 250 + 100 = 410 s; 4 epochs = 360 s fits 0.9 x 420 = 378.
    plan = _plan(420)
    assert (plan.knobs.epochs, plan.knobs.remine_epochs) == (4, 1)
    assert plan.knobs.max_train_queries is None and plan.knobs.max_seq_length is None
    assert plan.cuts == ("epochs 5 -> 4",)


def test_second_round_goes_after_the_epochs_then_queries() -> None:
    plan = _plan(200)  # 1 epoch + round 2 = 210 > 180; without it 110 s fits
    assert (plan.knobs.epochs, plan.knobs.remine_epochs) == (1, 0)
    assert plan.knobs.max_train_queries is None
    plan = _plan(100)  # 1 epoch, no round 2: 60 + 50 = 110 > 90: sample the queries
    assert plan.knobs.epochs == 1 and plan.knobs.remine_epochs == 0
    assert plan.knobs.max_seq_length is None
    assert MIN_TRAIN_QUERIES <= plan.knobs.max_train_queries < QUERIES
    assert _cost(plan.knobs) <= TARGET * 100
    more = Knobs(1, 0, plan.knobs.max_train_queries + QUERIES // 100, None)
    assert _cost(more) > TARGET * 100  # the most queries that fit (to 0.5%), not fewer


def test_length_is_cut_last_and_the_queries_grow_back() -> None:
    # At the query floor 60 + 1 = 61 s; a budget of 65 (target 58.5) needs the shorter length.
    plan = _plan(65)
    assert plan.knobs.max_seq_length in (128, 64)
    assert plan.cuts[:2] == ("epochs 5 -> 1", "second round off")
    assert plan.cuts[-1].startswith("max_seq_length")


def test_a_budget_below_the_fixed_cost_says_it_does_not_fit() -> None:
    plan = _plan(30)  # the fixed 60 s alone exceed it
    assert not plan.fits
    assert plan.knobs == Knobs(1, 0, MIN_TRAIN_QUERIES, 64)
    assert "over the budget even with every cut" in plan.sentence()


def test_every_plan_fits_and_cuts_follow_the_order() -> None:
    order = ("epochs", "second round", "of 5000 training queries", "max_seq_length")
    for budget in (60, 70, 90, 120, 150, 200, 300, 380, 420, 1000):
        plan = _plan(budget)
        if plan.fits:
            assert plan.estimated_seconds <= budget
        ranks = [next(i for i, key in enumerate(order) if key in cut) for cut in plan.cuts]
        assert ranks == sorted(ranks), plan.cuts


def test_plan_sentence_names_the_cuts() -> None:
    plan = _plan(100)
    sentence = plan.sentence()
    assert sentence.startswith("budget 1.7 min: 1 epoch on ")
    assert f"of {QUERIES:,} training queries" in sentence and "no second round" in sentence
    assert "max_seq_length 256" in sentence and "; estimated " in sentence


def test_an_explicit_query_limit_is_never_raised() -> None:
    start = Knobs(2, 0, 1000, None)
    plan = plan_budget(10_000, _cost, start, QUERIES, 256)
    assert plan.knobs.max_train_queries == 1000


def test_plan_budget_refuses_a_bad_budget() -> None:
    with pytest.raises(ValueError, match="budget_seconds: expected a positive number, got 0"):
        plan_budget(0, _cost, START, QUERIES, 256)
