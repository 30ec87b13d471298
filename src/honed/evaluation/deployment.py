"""Which system to deploy, dense, BM25 or their fusion: the one decider.

``honed run`` (its verdict), ``honed evaluate --hybrid`` and the report all call
:func:`decide_deployment`, so the deploy line can never disagree with itself. The decision is
taken on dev nDCG@10; the reported split (test) only describes the consequence. On a dev tie the
simpler system wins: dense, then BM25 (one index each), then hybrid (needs both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from honed.retrieval.fusion import FusionConfig

__all__ = ["SYSTEMS", "Deployment", "decide_deployment", "headline", "verdict_headline",
           "verdict_kind"]

SYSTEMS = ("dense", "bm25", "hybrid")
"""In order of simplicity: on a tie the earlier one is deployed (one index beats two)."""


@dataclass(frozen=True)
class Deployment:
    """The deploy decision and the sentence saying it.

    Attributes:
        deploy: ``"dense"``, ``"bm25"`` or ``"hybrid"``.
        decided_on: ``"dev"``, or the reported split when there was no dev (optimistic).
        scores: nDCG@10 of each system on ``decided_on``.
        reported: nDCG@10 of each system on ``split``.
        split: the reported split.
        fusion: the fusion the hybrid used.
        sentence: the deploy line, quoting the paired tests of hybrid against each part.
    """

    deploy: str
    decided_on: str
    scores: dict[str, float]
    reported: dict[str, float]
    split: str
    fusion: FusionConfig | None
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {**asdict(self), "fusion": self.fusion.to_dict() if self.fusion else None}


def _quoted(
    tests: Sequence[Mapping[str, Any]], names: Mapping[str, str], dense_label: str
) -> list[str]:
    """The hybrid-vs-part test sentences on nDCG@10, as "vs tuned +3.1 nDCG@10, ..."."""
    wanted = ((dense_label, names["dense"]), ("BM25", names["bm25"]))
    found = {(t["system_a"], t["system_b"], t["metric"]): t for t in tests}
    return [
        f"vs {label} {t['sentence']}"
        for label, system in wanted
        if (t := found.get((system, names["hybrid"], "ndcg@10")))
    ]


def decide_deployment(
    scores: Mapping[str, float] | None,
    reported: Mapping[str, float],
    fusion: FusionConfig | None,
    tests: Sequence[Mapping[str, Any]] = (),
    split: str = "test",
    names: Mapping[str, str] | None = None,
    dense_label: str = "dense",
) -> Deployment:
    """Decide on dev nDCG@10 (``scores``) which of dense / BM25 / hybrid to deploy.

    Args:
        scores: ``system -> dev nDCG@10`` for ``SYSTEMS``; None when there is no dev split, and
            then the reported split decides (the sentence says it is optimistic).
        reported: ``system -> nDCG@10`` on ``split``.
        fusion: the fusion the hybrid used (named in the sentence when given).
        tests: paired tests on ``split`` (dicts with ``system_a``, ``system_b``, ``metric``,
            ``sentence``), quoted for hybrid against each part when present.
        split: the reported split.
        names: the system names used in ``tests`` for each role (default: the role names).
        dense_label: how the sentence names the dense system ("tuned", "dense").

    Raises:
        ValueError: a score of one of ``SYSTEMS`` is missing.

    Example:
        >>> d = decide_deployment({"dense": 0.7, "bm25": 0.6, "hybrid": 0.7},
        ...                       {"dense": 0.68, "bm25": 0.6, "hybrid": 0.71},
        ...                       FusionConfig("rrf", 0.8))
        >>> d.deploy  # tied with hybrid on dev: the simpler system
        'dense'
    """
    decided_on = "dev" if scores is not None else split
    on = dict(scores if scores is not None else reported)
    missing = [s for s in SYSTEMS if s not in on or s not in reported]
    if missing:
        raise ValueError(f"scores: expected nDCG@10 for {SYSTEMS}, missing {missing}")
    deploy = max(SYSTEMS, key=lambda name: on[name])  # first of the tied wins
    caveat = "" if scores is not None else f" (no dev split: decided on {split}, optimistic)"
    quoted = _quoted(tests, names or {s: s for s in SYSTEMS}, dense_label)
    how = f" ({fusion.method.value}, dense weight {fusion.dense_weight:g})" if fusion else ""
    sentence = (
        f"Deploy {deploy} retrieval{caveat} (decided on {decided_on} nDCG@10: dense "
        f"{on['dense']:.3f}, BM25 {on['bm25']:.3f}, hybrid{how} {on['hybrid']:.3f}); on {split} hybrid "
        f"{reported['hybrid']:.3f}"
        + (
            f": {'; '.join(quoted)}."
            if quoted
            else f" vs dense {reported['dense']:.3f}, BM25 {reported['bm25']:.3f}."
        )
    )
    return Deployment(deploy, decided_on, on, dict(reported), split, fusion, sentence)


def headline(
    recommendation: str, retrieval: Mapping[str, Any] | None, fusion: str = "",
    judgement: str = "",
) -> str:
    """The one line that report.md, the printed summary and the model card show first.

    With ``judgement`` (the first line of :func:`honed.evaluation.worth.judge_fine_tuning`:
    worth it, not confirmed, not worth it) the line is the judgement, then the deploy decision
    where the judgement does not already say it. Without (runs recorded before the kinds), the
    plain recommendation those runs had.
    """
    deploy = retrieval["deploy"] if retrieval else "dense"
    if judgement:
        model = "tuned" if recommendation == "tuned" else "base"
        if deploy == "hybrid":
            how = f" ({fusion})." if fusion else "."
            return f"{judgement} Deploy hybrid retrieval, the {model} model fused with BM25{how}"
        if deploy == "bm25":
            return f"{judgement} Deploy BM25: on dev neither dense model nor the hybrid beats it."
        if judgement.startswith("Worth it"):
            return f"{judgement} Deploy the tuned model (dense retrieval)."
        return judgement
    if deploy == "hybrid":
        return (
            "Recommendation: deploy hybrid retrieval, the tuned model fused with BM25"
            + (f" ({fusion})." if fusion else ".")
        )
    if deploy == "bm25":
        return "Recommendation: deploy BM25; on dev neither dense model nor the hybrid beats it."
    if recommendation == "tuned":
        return "Recommendation: deploy the tuned model (dense retrieval)."
    return "Recommendation: keep the base model; fine-tuning did not help on dev."


def verdict_headline(verdict: Mapping[str, Any]) -> str:
    """The recommendation line of a run's verdict (``report.json`` ``"verdict"``).

    Runs before the line was recorded get it rebuilt by :func:`headline` from the same fields.
    """
    if verdict.get("headline"):
        return str(verdict["headline"])
    retrieval = verdict.get("retrieval")
    return headline(str(verdict["recommendation"]), retrieval)


def verdict_kind(verdict: Mapping[str, Any]) -> str | None:
    """``"worth it"``, ``"not confirmed"`` or ``"not worth it"``, or None for a run recorded
    before the kinds (its ``report.json`` has no ``"kind"``; its headline is kept as it was)."""
    kind = verdict.get("kind")
    return None if kind is None else str(kind)
