"""The final evaluation of ``honed run``: the tuned model on dev and test, its hybrid with BM25,
the evidence (paired tests, per-query changes, shift and overfitting checks) and the planner.

Everything is chosen on dev (the fusion, the planner's recommendation); test is only reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from honed.data.shift import compare_splits
from honed.evaluation.evidence import significance, training_evidence
from honed.evaluation.fusion_choice import choose_fusion
from honed.files import write_json
from honed.index.plan_report import write_plan
from honed.index.planner import PlanResult, choose_on, plan_embeddings
from honed.retrieval.fusion import FusionConfig
from honed.types import Qrels, SplitRuns

__all__ = ["EvidenceInputs", "evidence", "hybrid_runs", "plan_section"]


def hybrid_runs(
    runs: Mapping[str, SplitRuns], dev: Qrels, full: str, say: Callable[[str], None]
) -> tuple[FusionConfig, SplitRuns]:
    """Fuse the tuned model (full dim) with BM25; the method and weight are chosen on dev only."""
    dense, bm25 = runs["tuned"], runs["bm25"]
    fusion = choose_fusion(dev, dense["dev"][full], bm25["dev"]["bm25"])
    say(
        f"hybrid: {fusion.method.value}, dense weight {fusion.dense_weight:g} "
        f"(dev nDCG@10 {fusion.dev_ndcg10:.4f}, chosen over {len(fusion.grid)} settings)"
    )
    fused = {
        split: {"hybrid": fusion.fuse(dense[split][full], bm25[split]["bm25"])}
        for split in dense
    }
    return fusion, fused


@dataclass(frozen=True)
class EvidenceInputs:
    """What the evidence is computed from (test runs, queries, curves, base embeddings)."""

    runs: Mapping[str, SplitRuns]
    dims: Sequence[int]
    test: Qrels
    test_queries: Mapping[str, str]
    train_queries: Mapping[str, str]
    curve: Sequence[Mapping[str, Any]]
    loss_curve: Sequence[Mapping[str, Any]]
    q_base: Mapping[str, np.ndarray]
    n_resamples: int
    seed: int
    dev_queries: Mapping[str, str] = field(default_factory=dict)


def evidence(inputs: EvidenceInputs, leakage: Mapping[str, Any]) -> dict[str, Any]:
    """Paired tests and per-query changes on test, the leakage record, shift and overfitting."""
    runs = inputs.runs
    dims = [str(d) for d in sorted(inputs.dims, reverse=True)]
    systems = {f"{s}@{d}": runs[s]["test"][d] for s in ("base", "tuned") for d in dims}
    for name in ("bm25", "hybrid"):
        if name in runs:
            systems[name] = runs[name]["test"][name]
    train_q, test_q = inputs.train_queries, inputs.test_queries
    return {
        "splits": split_shift(
            {"train": train_q, "dev": inputs.dev_queries, "test": test_q}, inputs.q_base
        ),
        "test": significance(
            inputs.test, systems, dims, dict(test_q), inputs.n_resamples, inputs.seed
        ),
        "leakage": dict(leakage),
        **training_evidence(
            list(inputs.curve),
            tuple(inputs.loss_curve),
            dict(train_q),
            dict(test_q),
            np.stack([inputs.q_base[q] for q in sorted(train_q)]),  # (n_train, dim)
            np.stack([inputs.q_base[q] for q in sorted(test_q)]),  # (n_test, dim)
        ),
    }


def split_shift(
    query_sets: Mapping[str, Mapping[str, str]], q_base: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Every split against test (what ``honed check`` prints): profiles and warning lines."""
    sets = {name: dict(q) for name, q in query_sets.items() if q}
    embeddings = {name: np.stack([q_base[q] for q in sorted(qs)]) for name, qs in sets.items()}
    shift = compare_splits(sets, ["test"], embeddings)  # (n_queries, dim) per set
    return {
        "profiles": [asdict(p) for p in shift.profiles],
        "warnings": list(shift.warnings),
    }


def plan_section(
    docs: np.ndarray,
    doc_ids: Sequence[str],
    q_tuned: Mapping[str, np.ndarray],
    splits: Mapping[str, Qrels],
    dims: Sequence[int],
    out: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The budget planner on the tuned embeddings: recommendation chosen on dev, test reported."""
    width = docs.shape[1]
    short = [d for d in sorted(dims, reverse=True) if d < width]
    if not short:
        reason = f"the model was trained at no Matryoshka dim below its full width {width}"
        say(f"planner: skipped, {reason}")
        return {"skipped": reason}
    start = time.perf_counter()
    results: dict[str, PlanResult] = {}
    for split, qrels in splits.items():
        qids = sorted(qrels)
        query_emb = np.stack([q_tuned[q] for q in qids])  # (n_queries, width)
        results[split] = plan_embeddings(
            docs, doc_ids, query_emb, qids, qrels, short, split=split, model_name=str(out / "model")
        )
    test = choose_on(results["dev"], results["test"])
    write_plan(test, out / "metrics", plot_dir=out / "plots", markdown=False)
    write_json(out / "metrics" / "plan_dev.json", results["dev"].to_dict())
    seconds = round(time.perf_counter() - start, 2)
    say(
        f"planner: {len(test.rows)} configurations on dev and test ({seconds:.1f} s), "
        f"recommended on dev: {test.recommended.name}"
    )
    return {"test": test.to_dict(), "dev": results["dev"].to_dict(), "seconds": seconds}

