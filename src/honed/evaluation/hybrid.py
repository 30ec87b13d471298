"""Dense, BM25 and hybrid side by side for one model: ``honed evaluate --hybrid``.

The hybrid is the one ``honed run`` evaluates: the model's top-100 run at full dim fused with
BM25's top-100 run (:data:`honed.retrieval.fusion.RUN_DEPTH`), by a fusion chosen on a dev
split (:func:`honed.evaluation.fusion_choice.choose_fusion`) or given. The dev split is, in order:
the one a ``honed run`` folder recorded (``run_dir``: that run's own dev, which never holds its
training queries), the data's ``qrels/dev.tsv``, or one carved from train with ``honed run``'s
rule. What to deploy is decided on dev by :func:`honed.evaluation.deployment.decide_deployment`,
the same decider as the run's verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from honed.data.beir import BeirData, load_beir
from honed.data.splits import SplitRule, carve_dev
from honed.encoding.dims import matryoshka_dims
from honed.encoding.disk_cache import resolve_cache_dir
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    load_model,
    resolve_model_name,
)
from honed.evaluation.deployment import Deployment, decide_deployment
from honed.evaluation.evidence import SIGNIFICANCE_METRICS
from honed.evaluation.fusion_choice import choose_fusion
from honed.evaluation.metrics import DEFAULT_METRICS, evaluate
from honed.evaluation.runs import bm25_runs, metrics_of, model_runs
from honed.evaluation.significance import compare
from honed.retrieval.fusion import FusionConfig
from honed.types import Qrels, Run

__all__ = ["HybridEvaluation", "dev_split", "evaluate_hybrid", "run_dev_split"]

SPLITS_FILE = "splits.json"
"""The query ids of each split of a ``honed run``, written in its run folder."""


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
        tests: paired tests on ``split`` (:func:`honed.evaluation.significance.compare` as dicts
            with a ``sentence``): dense vs BM25, dense vs hybrid, BM25 vs hybrid, per metric.
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


def run_dev_split(run_dir: str | Path, data: BeirData) -> tuple[Qrels, str]:
    """The dev split a ``honed run`` used (its ``splits.json``), with the qrels of ``data``.

    Raises:
        FileNotFoundError: the run folder has no ``splits.json`` (it predates it: re-run, or
            pass ``--fusion METHOD --dense-weight W`` without a run folder).
        ValueError: a recorded dev query is not in ``data`` (another dataset).
    """
    file = Path(run_dir) / SPLITS_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: missing, so the run's own dev split is unknown (the run predates "
            "splits.json); fix: re-run `honed run`, or give --fusion METHOD --dense-weight W"
        )
    dev_ids = json.loads(file.read_text(encoding="utf-8"))["dev"]
    source = "dev" if "dev" in data.splits else "train"
    judged = data.split(source)
    unknown = [q for q in dev_ids if q not in judged]
    if unknown:
        raise ValueError(
            f"{file}: dev query {unknown[0]!r} is not in {data.path}/qrels/{source}.tsv "
            f"({len(unknown)} such); fix: evaluate on the dataset that run was trained on"
        )
    return {q: judged[q] for q in dev_ids}, f"the dev split of {run_dir} ({len(dev_ids)} queries)"


def dev_split(
    data: BeirData, split: str, rule: SplitRule | None = None
) -> tuple[Qrels | None, str]:
    """The split to choose the fusion on, and where it came from; ``(None, "")`` when none.

    ``qrels/dev.tsv`` when present, else carved from train with ``rule`` (``honed run``'s
    default); queries of the evaluated ``split`` are removed first. There is no dev when
    ``split`` is itself dev or train (choosing on the split you report would flatter the hybrid).
    """
    rule = rule or SplitRule()
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
    _, dev = carve_dev(train, rule.dev_fraction, rule.min_dev_queries, rule.seed)
    return dev, f"{len(dev)} queries carved from train as honed run does ({rule.describe()})"


def evaluate_hybrid(
    model: str,
    data: str | Path,
    split: str = "test",
    fusion: FusionConfig | None = None,
    *,
    run_dir: str | Path | None = None,
    dims: Sequence[int] | None = None,
    n_resamples: int = 10_000,
    seed: int = 42,
    device: str = "auto",
    precision: Precision | str = Precision.AUTO,
    trust_remote_code: bool = False,
    cache_dir: str | Path | None = "auto",
) -> HybridEvaluation:
    """Evaluate ``model``, BM25 and their fusion on ``split``, with paired tests and a verdict.

    Args:
        model: model folder or hub id.
        data: BEIR folder.
        split: the split reported (its queries never choose anything).
        fusion: the fusion to use; None chooses it on the dev split.
        run_dir: a ``honed run`` folder whose own dev split decides (``--fusion-from``).
        dims: dense dims reported (default: the model's Matryoshka dims); the full dim is fused.
        n_resamples: bootstrap resamples and sign flips of each paired test.
        seed: seed of the paired tests.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        precision: the encoder's matmul precision.
        trust_remote_code: allow a model's own Python code to run.
        cache_dir: the on-disk embedding cache the corpus encoding goes through ("auto" =
            $HONED_CACHE_DIR or ~/.cache/honed/embeddings, None = memory only).

    Raises:
        ValueError: no ``fusion`` and no dev split to choose it on; an unknown split.

    Example:
        >>> result = evaluate_hybrid("runs/scifact/model", "data/scifact")  # doctest: +SKIP
        >>> result.sentence  # doctest: +SKIP
        'Deploy hybrid retrieval (decided on dev nDCG@10: ...'
    """
    beir = load_beir(data)
    qrels = beir.split(split)
    dev, dev_source = run_dev_split(run_dir, beir) if run_dir else dev_split(beir, split)
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
    cache = EmbeddingCache(precision=precision, directory=resolve_cache_dir(cache_dir))
    dense, _ = model_runs(cache, st_model, beir, splits, dims)
    bm25 = bm25_runs(beir, *beir.documents(), splits)
    if fusion is None:  # dev exists: checked before the encoding
        fusion = choose_fusion(
            splits["dev"], dense["dev"][str(full)], bm25["dev"]["bm25"], source=f"dev of {data}"
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
    summary = _Summary(split, splits, runs, full, n_resamples, seed)
    return summary.evaluation(table, fusion, dev_source)


@dataclass(frozen=True)
class _Summary:
    """What :func:`evaluate_hybrid` computed, turned into metrics, tests and the decision."""

    split: str
    splits: Mapping[str, Qrels]
    runs: Mapping[str, Mapping[str, Run]]
    full: int
    n_resamples: int
    seed: int

    def _ndcg(self, split: str) -> dict[str, float]:
        return {
            name: evaluate(self.splits[split], run, ["ndcg@10"])["ndcg@10"]
            for name, run in self.runs[split].items()
        }

    def evaluation(
        self, table: dict[str, Any], fusion: FusionConfig, dev_source: str
    ) -> HybridEvaluation:
        split = self.split
        hybrid = evaluate(self.splits[split], self.runs[split]["hybrid"], DEFAULT_METRICS)
        table = {**table, "hybrid": {"hybrid": hybrid}}
        dev_ndcg = self._ndcg("dev") if "dev" in self.runs else None
        tests = tuple(
            {**asdict(t), "sentence": t.sentence()}
            for t in compare(
                self.splits[split], dict(self.runs[split]), SIGNIFICANCE_METRICS,
                n_resamples=self.n_resamples, seed=self.seed,
            )
        )
        decision: Deployment = decide_deployment(dev_ndcg, self._ndcg(split), fusion, tests, split)
        return HybridEvaluation(
            split, self.full, fusion, dev_source, table, dev_ndcg, tests, decision.deploy,
            decision.sentence,
        )
