"""The run's verdict: did fine-tuning clear the baseline and BM25, and what to deploy.

Decided on dev; test is reported, never used to choose, but it confirms the choice or not: the
verdict's ``kind`` is "worth it", "not confirmed" or "not worth it"
(:func:`honed.evaluation.worth.judge_fine_tuning`), and its first line (``headline``) says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from honed.evaluation.deployment import decide_deployment, headline
from honed.evaluation.worth import judge_fine_tuning
from honed.retrieval.fusion import FusionConfig
from honed.training.trainer import TrainResult
from honed.types import SplitMetrics

__all__ = ["make_verdict", "training_dict"]

def training_dict(result: TrainResult, base: SplitMetrics, dims: Sequence[int]) -> dict[str, Any]:
    """The training result with the untuned model's dev scores as epoch 0 of the curve."""
    full = str(max(dims))
    epoch0 = {"epoch": 0.0, "dev_ndcg@10": base["dev"][full]["ndcg@10"]}
    for dim in dims:
        if str(dim) != full:
            epoch0[f"dev_ndcg@10@{dim}d"] = base["dev"][str(dim)]["ndcg@10"]
    d = asdict(result)
    d["curve"] = [epoch0, *d["curve"]]
    return d



def _deployment(
    metrics: Mapping[str, SplitMetrics],
    full: str,
    model: str,
    tests: Sequence[Mapping[str, Any]],
    fusion: FusionConfig | None,
) -> dict[str, Any]:
    """Dense (the recommended ``model`` at full dim), BM25 or hybrid, by the one decider."""
    scores = {
        split: {
            "dense": metrics[model][split][full]["ndcg@10"],
            "bm25": metrics["bm25"][split]["bm25"]["ndcg@10"],
            "hybrid": metrics["hybrid"][split]["hybrid"]["ndcg@10"],
        }
        for split in ("dev", "test")
    }
    names = {"dense": f"tuned@{full}", "bm25": "bm25", "hybrid": "hybrid"}
    decision = decide_deployment(
        scores["dev"], scores["test"], fusion, tests, "test", names, dense_label="tuned"
    )
    return {
        "deploy": decision.deploy,
        "dense_model": model,
        "ndcg10": scores,
        "sentence": decision.sentence,
    }


def make_verdict(
    metrics: Mapping[str, SplitMetrics],
    dims: Sequence[int],
    result: Any,
    tests: Sequence[Mapping[str, Any]] = (),
    fusion: Mapping[str, Any] | None = None,
    dev_queries: int | None = None,
    shift: bool = False,
) -> dict[str, Any]:
    """Did fine-tuning clear the baseline and BM25? Decided on dev; test is reported, not used to choose.

    ``kind`` says whether test confirms the dev choice (the paired test of tuned vs base on test
    nDCG@10 among ``tests``); ``dev_queries`` (the dev split's size, named as the reason when
    small) and ``shift`` (the train/test shift check warned) shape its advice.

    With a ``"hybrid"`` system in ``metrics`` (and ``fusion``, the chosen
    :meth:`~honed.retrieval.fusion.FusionConfig.to_record` of the fusion chosen on dev), one more sentence says which of dense, BM25 and
    hybrid to deploy (``verdict["retrieval"]``; None without hybrid).
    """
    full = str(max(dims))
    base_dev = metrics["base"]["dev"][full]["ndcg@10"]
    tuned_dev = metrics["tuned"]["dev"][full]["ndcg@10"]
    base_test = metrics["base"]["test"][full]["ndcg@10"]
    tuned_test = metrics["tuned"]["test"][full]["ndcg@10"]
    bm25_test = metrics["bm25"]["test"]["bm25"]["ndcg@10"] if "bm25" in metrics else None
    recommend = "tuned" if tuned_dev > base_dev else "base"
    stat = {(t["system_a"], t["system_b"], t["metric"]): t for t in tests}
    lines = []
    if recommend == "base":
        lines.append(
            f"Fine-tuning did NOT help on dev (nDCG@10 {tuned_dev:.3f} tuned vs {base_dev:.3f} "
            "base): keep the base model."
        )
    else:
        lines.append(
            f"Fine-tuning helped on dev: nDCG@10 {base_dev:.3f} -> {tuned_dev:.3f} "
            f"({tuned_dev - base_dev:+.3f})."
        )
    vs_base = stat.get((f"base@{full}", f"tuned@{full}", "ndcg@10"))
    lines.append(
        f"On test: tuned {tuned_test:.3f} vs base {base_test:.3f}"
        + (f": {vs_base['sentence']}." if vs_base else f" ({tuned_test - base_test:+.3f}).")
    )
    if bm25_test is not None:
        word = "beats" if tuned_test > bm25_test else "does not beat"
        vs_bm25 = stat.get(("bm25", f"tuned@{full}", "ndcg@10"))
        lines.append(
            f"The tuned model {word} BM25 on test ({tuned_test:.3f} vs {bm25_test:.3f}"
            + (f"; {vs_bm25['sentence']})." if vs_bm25 else ").")
        )
    small = [d for d in dims if metrics["tuned"]["test"][str(d)]["ndcg@10"] >= base_test]
    if small:
        best = metrics["tuned"]["test"][str(min(small))]["ndcg@10"]
        lines.append(
            f"Smallest tuned dim at least as good as the untuned model at {full} dims: "
            f"{min(small)} ({best:.3f} vs {base_test:.3f})."
        )
    retrieval, how = None, ""
    if "hybrid" in metrics and "bm25" in metrics:
        config = FusionConfig.from_record(fusion, source="dev") if fusion else None
        how = f"{config.method.value}, dense weight {config.dense_weight:g}" if config else ""
        retrieval = _deployment(metrics, full, recommend, tests, config)
        lines.append(retrieval["sentence"])
    judgement = judge_fine_tuning(base_dev, tuned_dev, vs_base, dev_queries, shift)
    return {
        "kind": judgement.kind.value,
        "recommendation": recommend,
        "base_dev_ndcg10": base_dev,
        "tuned_dev_ndcg10": tuned_dev,
        "base_test_ndcg10": base_test,
        "tuned_test_ndcg10": tuned_test,
        "bm25_test_ndcg10": bm25_test,
        "best_epoch": result.best_epoch,
        "retrieval": retrieval,
        "sentences": lines,
        "dev_queries": dev_queries,
        "headline": headline(recommend, retrieval, how, judgement.line),
    }
