"""The three verdict kinds: worth it, not confirmed, not worth it (and why, when dev is small)."""

from __future__ import annotations

from typing import Any

import pytest

from honed.evaluation.deployment import headline, verdict_headline, verdict_kind
from honed.evaluation.significance import paired_test
from honed.evaluation.worth import SMALL_DEV, VerdictKind, judge_fine_tuning
from honed.pipeline.verdict import make_verdict


def _test(delta_per_query: list[float]) -> dict[str, Any]:
    """A real paired test (tuned vs base on test nDCG@10) of the given per-query differences."""
    base = {f"q{i}": 0.5 for i in range(len(delta_per_query))}
    tuned = {q: 0.5 + d for q, d in zip(base, delta_per_query, strict=True)}
    result = paired_test(base, tuned, "ndcg@10", "base@32", "tuned@32", n_resamples=2000, seed=0)
    return {**result.__dict__, "sentence": result.sentence()}


CONFIRMED = _test([0.1] * 40 + [-0.02] * 10)  # a gain on 40 of 50 queries: p < 0.001
NOISE = _test([0.2, -0.2] * 20 + [0.05])  # as many wins as losses


def test_worth_it_needs_a_dev_gain_that_test_confirms() -> None:
    assert CONFIRMED["p_value"] < 0.05 and CONFIRMED["delta"] > 0
    j = judge_fine_tuning(0.50, 0.55, CONFIRMED, dev_queries=300)
    assert j.kind is VerdictKind.WORTH_IT
    assert j.line.startswith("Worth it: fine-tuning gained +5.0 nDCG@10 on dev (0.500 -> 0.550, "
                             "300 queries) and test confirms it (+")
    assert CONFIRMED["sentence"] in j.line


def test_not_confirmed_says_so_first_and_what_to_try() -> None:
    assert NOISE["p_value"] > 0.05
    j = judge_fine_tuning(0.50, 0.52, NOISE, dev_queries=300)
    assert j.kind is VerdictKind.NOT_CONFIRMED
    assert j.line.startswith("Not confirmed: fine-tuning gained +2.0 nDCG@10 on dev")
    assert "on test it is within noise" in j.line and "not shown to beat the base model" in j.line
    assert "more training data or fewer epochs" in j.line and "(honed check)" in j.line
    assert "dev split has only" not in j.line  # 300 dev queries are not the reason
    worse = judge_fine_tuning(0.50, 0.52, _test([-0.1] * 30 + [0.05] * 5), dev_queries=300)
    assert worse.kind is VerdictKind.NOT_CONFIRMED and "on test it is worse" in worse.line
    # A gain on test that is not significant is not a confirmation either.
    small_gain = _test([0.1, -0.08] * 5)
    assert small_gain["delta"] > 0 and small_gain["p_value"] > 0.05
    assert judge_fine_tuning(0.5, 0.6, small_gain).kind is VerdictKind.NOT_CONFIRMED
    assert "no paired test" in judge_fine_tuning(0.5, 0.6, None).line


def test_small_dev_is_named_as_the_reason() -> None:
    j = judge_fine_tuning(0.50, 0.52, NOISE, dev_queries=39)
    assert f"The dev split has only 39 queries (under {SMALL_DEV})" in j.line
    assert "The dev split has only" in judge_fine_tuning(0.5, 0.4, None, dev_queries=12).line
    assert "only" not in judge_fine_tuning(0.5, 0.55, CONFIRMED, dev_queries=39).line


def test_shift_is_the_first_thing_to_look_at_when_it_fired() -> None:
    j = judge_fine_tuning(0.50, 0.52, NOISE, shift=True)
    assert "first look at the shift warning" in j.line and "(honed check)" not in j.line


def test_not_worth_it_without_a_dev_gain() -> None:
    for tuned in (0.50, 0.45):  # a tie is no gain
        j = judge_fine_tuning(0.50, tuned, CONFIRMED, dev_queries=200)
        assert j.kind is VerdictKind.NOT_WORTH_IT
        assert j.line.startswith("Not worth it: fine-tuning did not help")
        assert "keep the base model" in j.line


def _metrics(base_dev: float, tuned_dev: float) -> dict[str, Any]:
    def split(dev: float, test: float) -> dict[str, Any]:
        return {"dev": {"32": {"ndcg@10": dev}}, "test": {"32": {"ndcg@10": test}}}

    return {"base": split(base_dev, 0.5), "tuned": split(tuned_dev, 0.5),
            "bm25": {"dev": {"bm25": {"ndcg@10": 0.3}}, "test": {"bm25": {"ndcg@10": 0.3}}}}


class _Train:
    best_epoch = 1.0


@pytest.mark.parametrize(
    ("tuned_dev", "test", "kind"),
    [(0.55, CONFIRMED, "worth it"), (0.55, NOISE, "not confirmed"), (0.45, NOISE, "not worth it")],
)
def test_make_verdict_stores_the_kind_and_its_first_line(tuned_dev: float, test: dict[str, Any],
                                                         kind: str) -> None:
    verdict = make_verdict(_metrics(0.5, tuned_dev), [32], _Train(), [test], dev_queries=39)
    assert verdict["kind"] == kind == verdict_kind(verdict)
    assert verdict["headline"].lower().startswith(kind)
    assert verdict["dev_queries"] == 39
    assert verdict_headline(verdict) == verdict["headline"]
    if kind == "worth it":
        assert verdict["headline"].endswith("Deploy the tuned model (dense retrieval).")


def test_deploy_decision_follows_the_judgement() -> None:
    retrieval = {"deploy": "bm25"}
    line = headline("base", retrieval, judgement="Not worth it: x.")
    assert line == "Not worth it: x. Deploy BM25: on dev neither dense model nor the hybrid beats it."
    hybrid = headline("tuned", {"deploy": "hybrid"}, "rrf, dense weight 0.5", "Worth it: y.")
    assert hybrid == ("Worth it: y. Deploy hybrid retrieval, the tuned model fused with BM25 "
                      "(rrf, dense weight 0.5).")


def test_older_verdicts_keep_loading() -> None:
    old = {"recommendation": "tuned", "retrieval": None, "headline": ""}
    assert verdict_kind(old) is None
    assert verdict_headline(old) == "Recommendation: deploy the tuned model (dense retrieval)."
