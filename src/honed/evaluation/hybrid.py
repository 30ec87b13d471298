"""Dense, BM25 and hybrid side by side for one model: ``honed evaluate --hybrid``.

The hybrid is the one ``honed run`` evaluates: the model's top-100 run at full dim fused with
BM25's top-100 run (:data:`honed.retrieval.fusion.RUN_DEPTH`), by a fusion chosen on a dev split
(:func:`honed.retrieval.fusion.choose_fusion`) or given. The dev split is the data's ``qrels/dev.tsv``, or
is carved from train with ``honed run``'s fraction, minimum and seed. ``honed run`` also drops
training queries that nearly duplicate test queries before carving, which this does not, so its
dev can differ by a few queries: to reuse a run's own choice, pass
``fusion=fusion_from_run(RUN_DIR)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from honed.data.beir import BeirData, load_beir
from honed.data.splits import carve_dev
from honed.encoding.dims import matryoshka_dims
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    load_model,
    resolve_model_name,
)
from honed.evaluation.evidence import SIGNIFICANCE_METRICS
from honed.evaluation.metrics import DEFAULT_METRICS, evaluate
from honed.evaluation.runs import bm25_runs, dense_runs, metrics_of
from honed.evaluation.significance import compare
from honed.pipeline.config import RunConfig
from honed.retrieval.fusion import FusionConfig, FusionMethod, choose_fusion
from honed.types import Qrels, Run

__all__ = ["HybridEvaluation", "dev_split", "evaluate_hybrid"]

SYSTEMS = ("dense", "bm25", "hybrid")
"""In order of simplicity: on a tie the earlier one is deployed (one index beats two)."""


@dataclass(frozen=True)
class HybridEvaluation:
    """Dense, BM25 and hybrid on one split, the paired tests between them, and which to deploy.

    Attributes:
        split: the evaluated split.
        dim: the model's full dim, the dense run fused.
        fusion: the fusion used (chosen on dev, or given).
        dev: where the dev split came from ("" when there is none).
        metrics: ``system -> dim -> metric -> value`` on ``split``: dense at every dim,
            ``bm25 -> "bm25"`` and ``hybrid -> "hybrid"``, as ``honed evaluate`` prints them.
        dev_ndcg10: ``system -> dev nDCG@10`` (dense at full dim), or None without dev.
        tests: paired tests on ``split`` (:func:`honed.evaluation.significance.compare` as dicts with a
            ``sentence``): dense vs BM25, dense vs hybrid, BM25 vs hybrid, per metric.
        deploy: ``"dense"``, ``"bm25"`` or ``"hybrid"``, decided on dev nDCG@10 (on ``split``
            when there is no dev, which the sentence says).
        sentence: the deploy line, quoting the significance of hybrid against each part.
    """

    split: str
    dim: int
    fusion: FusionConfig
    dev: str
    metrics: dict[str, dict[str, dict[str, float]]]
    dev_ndcg10: dict[str, float] | None
    tests: tuple[dict[str, Any], ...]
    deploy: str
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for ``--out``)."""
        return {**asdict(self), "fusion": self.fusion.to_dict(), "tests": list(self.tests)}


def dev_split(data: BeirData, split: str) -> tuple[Qrels | None, str]:
    """The split to choose the fusion on, and where it came from; ``(None, "")`` when none.

    ``qrels/dev.tsv`` when present, else carved from train as ``honed run`` does; queries of
    the evaluated ``split`` are removed first. There is no dev when ``split`` is itself dev or
    train (choosing on the split you report would flatter the hybrid).
    """
    if split in ("dev", "train"):
        return None, ""
    evaluated = set(data.split(split))
    if "dev" in data.splits:
        dev = {q: d for q, d in data.split("dev").items() if q not in evaluated}
        return (dev, "qrels/dev.tsv") if dev else (None, "")
    if "train" not in data.splits:
        return None, ""
    train = {q: d for q, d in data.split("train").items() if q not in evaluated}
    if len(train) < 2:
        return None, ""
    config = RunConfig(data=str(data.path), out="")  # only for honed run's carving defaults
    _, dev = carve_dev(train, config.dev_fraction, config.min_dev_queries, config.seed)
    return dev, (
        f"{len(dev)} queries carved from train as honed run does ({config.dev_fraction:.0%}, "
        f"at least {config.min_dev_queries}, seed {config.seed})"
    )


def _deploy(
    scores: Mapping[str, float],
    decided_on: str,
    fusion: FusionConfig,
    tests: Sequence[Mapping[str, Any]],
    split: str,
) -> tuple[str, str]:
    """The system with the best nDCG@10 on ``decided_on`` and the sentence saying why."""
    deploy = max(SYSTEMS, key=lambda name: scores[name])  # first of the tied wins
    quoted = [
        f"vs {label} {t['sentence']}"
        for label, a in (("dense", "dense"), ("BM25", "bm25"))
        for t in tests
        if (t["system_a"], t["system_b"], t["metric"]) == (a, "hybrid", "ndcg@10")
    ]
    caveat = "" if decided_on == "dev" else f" (no dev split: decided on {split}, optimistic)"
    sentence = (
        f"Deploy {deploy} retrieval{caveat} (decided on {decided_on} nDCG@10: dense "
        f"{scores['dense']:.3f}, BM25 {scores['bm25']:.3f}, hybrid "
        f"({fusion.method.value}, dense weight {fusion.dense_weight:g}) {scores['hybrid']:.3f}); "
        f"on {split} hybrid {'; '.join(quoted)}."
    )
    return deploy, sentence


def evaluate_hybrid(
    model: str,
    data: str | Path,
    split: str = "test",
    fusion: FusionConfig | None = None,
    dims: Sequence[int] | None = None,
    n_resamples: int = 10_000,
    seed: int = 42,
    device: str = "auto",
    precision: Precision | str = Precision.AUTO,
    trust_remote_code: bool = False,
) -> HybridEvaluation:
    """Evaluate ``model``, BM25 and their fusion on ``split``, with paired tests and a verdict.

    Args:
        model: model folder or hub id.
        data: BEIR folder.
        split: the split reported (its queries never choose anything).
        fusion: the fusion to use; None chooses it on the dev split (see :func:`dev_split`).
        dims: dense dims reported (default: the model's Matryoshka dims); the full dim is fused.
        n_resamples: bootstrap resamples and sign flips of each paired test.
        seed: seed of the paired tests.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        precision: the encoder's matmul precision.
        trust_remote_code: allow a model's own Python code to run.

    Returns:
        A :class:`HybridEvaluation`.

    Raises:
        ValueError: no ``fusion`` and no dev split to choose it on; an unknown split.

    Example:
        >>> result = evaluate_hybrid("runs/scifact/model", "data/scifact")  # doctest: +SKIP
        >>> result.sentence  # doctest: +SKIP
        'Deploy hybrid retrieval (decided on dev nDCG@10: ...'
    """
    beir = load_beir(data)
    qrels = beir.split(split)
    dev, dev_source = dev_split(beir, split)
    if fusion is None and dev is None:
        raise ValueError(
            f"{data}: no dev split to choose the fusion on (no qrels/dev.tsv, and no train split "
            f"to carve one from, or --split {split}); fix: pass --fusion METHOD --dense-weight W "
            "or --fusion-from RUN_DIR"
        )
    st_model = load_model(resolve_model_name(model), device, trust_remote_code)
    full = embedding_dim(st_model)
    dims = tuple(sorted({*(dims or matryoshka_dims(full)), full}, reverse=True))
    splits = {split: qrels, **({"dev": dev} if dev is not None else {})}
    cache = EmbeddingCache(precision=precision)
    doc_ids = list(beir.corpus)
    doc_texts = [beir.corpus[d].full_text for d in doc_ids]
    doc_emb = cache.encode(st_model, doc_texts, show_progress_bar=True)
    qids = sorted({q for s in splits.values() for q in s})
    q_emb = dict(zip(qids, cache.encode(st_model, [beir.queries[q] for q in qids])))
    dense = dense_runs(q_emb, doc_emb, doc_ids, splits, dims)
    bm25 = bm25_runs(beir, doc_ids, doc_texts, splits)
    if fusion is None:  # dev exists: checked before the encoding
        choice = choose_fusion(splits["dev"], dense["dev"][str(full)], bm25["dev"]["bm25"])
        fusion = FusionConfig(
            FusionMethod(choice.method),
            choice.weight,
            source=f"dev of {data}",
            dev_ndcg10=choice.dev_ndcg10,
        )
    table = {
        "dense": metrics_of({split: dense[split]}, splits)[split],
        "bm25": metrics_of({split: bm25[split]}, splits)[split],
    }
    runs = {
        s: {
            "dense": dense[s][str(full)],
            "bm25": bm25[s]["bm25"],
            "hybrid": fusion.fuse(dense[s][str(full)], bm25[s]["bm25"]),
        }
        for s in splits
    }
    return _summarise(split, splits, runs, table, fusion, dev_source, full, n_resamples, seed)


def _summarise(
    split: str,
    splits: Mapping[str, Qrels],
    runs: Mapping[str, Mapping[str, Run]],
    table: Mapping[str, dict[str, dict[str, float]]],
    fusion: FusionConfig,
    dev_source: str,
    full: int,
    n_resamples: int,
    seed: int,
) -> HybridEvaluation:
    """Hybrid's metrics, the paired tests on ``split`` and the deploy decision."""
    table = {
        **table,
        "hybrid": {"hybrid": evaluate(splits[split], runs[split]["hybrid"], DEFAULT_METRICS)},
    }
    on_split = {
        "dense": table["dense"][str(full)]["ndcg@10"],
        "bm25": table["bm25"]["bm25"]["ndcg@10"],
        "hybrid": table["hybrid"]["hybrid"]["ndcg@10"],
    }
    dev_ndcg = None
    if "dev" in runs:
        dev_ndcg = {
            name: evaluate(splits["dev"], run, ["ndcg@10"])["ndcg@10"]
            for name, run in runs["dev"].items()
        }
    tests = tuple(
        {**asdict(t), "sentence": t.sentence()}
        for t in compare(
            splits[split], runs[split], SIGNIFICANCE_METRICS, n_resamples=n_resamples, seed=seed
        )
    )
    deploy, sentence = _deploy(
        dev_ndcg or on_split, "dev" if dev_ndcg else split, fusion, tests, split
    )
    return HybridEvaluation(
        split, full, fusion, dev_source, dict(table), dev_ndcg, tests, deploy, sentence
    )
