"""The evidence section of a run: significance, per-query wins and losses, leakage, shift.

Pure functions from runs, qrels and query texts to plain dicts (``report.json`` holds them as
they are); :mod:`honed.report.markdown` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from honed.data.leakage import LeakageReport, find_duplicates
from honed.data.shift import distribution_shift
from honed.evaluation.metrics import per_query
from honed.evaluation.overfitting import overfitting_warning
from honed.evaluation.significance import first_relevant_ranks, paired_test, query_changes
from honed.types import Qrels, Run

__all__ = ["SIGNIFICANCE_METRICS", "check_leakage", "significance", "training_evidence"]

SIGNIFICANCE_METRICS = ("ndcg@10", "mrr@10", "recall@10")


def check_leakage(
    train_queries: Mapping[str, str],
    test_queries: Mapping[str, str],
    emb_train: np.ndarray | None = None,
    emb_test: np.ndarray | None = None,
) -> LeakageReport:
    """Exact and near duplicates between training (train + dev) and test queries.

    Embeddings, when given, are in sorted-qid order of each mapping (as ``find_duplicates`` wants).
    """
    return find_duplicates(train_queries, test_queries, emb_train, emb_test)


def _comparisons(systems: Mapping[str, Run], dims: Sequence[str]) -> list[tuple[str, str]]:
    pairs = [(f"base@{d}", f"tuned@{d}") for d in dims]
    if "bm25" in systems:
        pairs += [("bm25", f"tuned@{dims[0]}"), ("bm25", f"base@{dims[0]}")]
    if "hybrid" in systems:  # hybrid = tuned@full fused with BM25: test it against each part
        pairs.append((f"tuned@{dims[0]}", "hybrid"))
        if "bm25" in systems:
            pairs.append(("bm25", "hybrid"))
    return pairs


def significance(
    qrels: Qrels,
    systems: Mapping[str, Run],
    dims: Sequence[str],
    queries: Mapping[str, str],
    n_resamples: int = 10_000,
    seed: int = 42,
) -> dict[str, Any]:
    """Paired tests, win/tie/loss and the most changed queries on one split.

    Args:
        qrels: the split's judgments.
        systems: ``"base@384"``, ``"tuned@384"``, ... and optionally ``"bm25"`` and
            ``"hybrid"`` -> run. With ``"hybrid"``, it is tested against tuned at full dim and
            against BM25 (``system_b`` is ``"hybrid"`` in those tests).
        dims: Matryoshka dims as strings, largest first.
        queries: qid -> text (for the per-query lists).

    Returns:
        ``tests`` (one dict per system pair and metric), ``improved``/``regressed`` (10 each,
        tuned vs base at full dim), ``first_rank`` (qid -> [base rank, tuned rank]) and
        ``ndcg_delta`` (qid -> tuned - base nDCG@10 at full dim), ``per_query`` (system ->
        metric -> qid -> value), plus the resampling settings.
    """
    per_system = {
        name: per_query(qrels, run, SIGNIFICANCE_METRICS) for name, run in systems.items()
    }
    tests = []
    for a, b in _comparisons(systems, dims):
        for metric in SIGNIFICANCE_METRICS:
            result = paired_test(
                per_system[a][metric], per_system[b][metric], metric, a, b, n_resamples, seed
            )
            tests.append({**asdict(result), "sentence": result.sentence()})
    full = dims[0]
    base, tuned = systems[f"base@{full}"], systems[f"tuned@{full}"]
    improved, regressed = query_changes(qrels, base, tuned, queries, "ndcg@10", n=10)
    ranks_base, ranks_tuned = first_relevant_ranks(qrels, base), first_relevant_ranks(qrels, tuned)
    base_ndcg, tuned_ndcg = (
        per_system[f"base@{full}"]["ndcg@10"],
        per_system[f"tuned@{full}"]["ndcg@10"],
    )
    return {
        "n_resamples": n_resamples,
        "seed": seed,
        "tests": tests,
        "improved": [asdict(c) for c in improved],
        "regressed": [asdict(c) for c in regressed],
        "first_rank": {q: [ranks_base[q], ranks_tuned[q]] for q in sorted(ranks_base)},
        "ndcg_delta": {q: tuned_ndcg[q] - base_ndcg[q] for q in sorted(base_ndcg)},
        "per_query": per_system,  # system -> metric -> qid -> value
    }


def training_evidence(
    curve: Sequence[Mapping[str, float]],
    losses: Sequence[Mapping[str, float]],
    train_queries: Mapping[str, str],
    test_queries: Mapping[str, str],
    emb_train: np.ndarray | None,
    emb_test: np.ndarray | None,
) -> dict[str, Any]:
    """Overfitting warning from the training curve and the train-vs-test distribution shift."""
    shift = distribution_shift(train_queries, test_queries, emb_train, emb_test)
    return {
        "overfitting_warning": overfitting_warning(curve, losses),
        "shift": asdict(shift),
    }
