"""A budget planner: which shortlist dim, precision and shortlist size to deploy.

On a labelled split, every configuration of a two-stage index (shortlist at each Matryoshka dim
below full x precision x shortlist size, re-ranked at full dim) and single-stage exact search at
every dim is scored for quality (nDCG@10, Recall@10, Recall@100), fast-tier bytes per document
and per-query latency. The corpus is encoded once, at full dim; every configuration is derived
from that one array. The recommendation is the cheapest configuration (fewest bytes, then
lowest median latency) shown not worse than full-dim float32 exact search by more than the
tolerance (1% of its nDCG@10): the lower end of the paired bootstrap 95% interval of the
per-query nDCG@10 difference stays above -1% (:mod:`honed.index.noise` says why a lower bound,
and warns below 100 queries). Merely looking within 1% on a few queries is not enough.

The final ranking has ``min(100, shortlist)`` documents: a two-stage search can only return
what it shortlisted, so with a shortlist of 50, Recall@100 is the recall of those 50. The
grid is a :class:`PlanGrid`; :mod:`honed.index.plan_report` renders and writes the result.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.data.beir import BeirData, load_beir
from honed.encoding.dims import matryoshka_dims, truncate
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    load_model,
    resolve_model_name,
)
from honed.evaluation.metrics import evaluate, per_query
from honed.index.index import Index
from honed.index.noise import N_RESAMPLES, passes, versus_exact
from honed.index.quantize import Quantization, as_quantization, bytes_per_doc
from honed.types import Qrels, Run

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "PlanGrid", "PlanResult", "PlanRow", "choose_on", "plan", "plan_embeddings", "recommend",
]

FINAL_K = 100  # depth of the final ranking (capped at the shortlist)
METRICS = ("ndcg@10", "recall@10", "recall@100")


@dataclass(frozen=True)
class PlanGrid:
    """The configurations the planner scores, and how close to exact the recommendation must be.

    Attributes:
        dims: shortlist dims, each below the full dim (None: the Matryoshka dims below it,
            checked against the model's width by :meth:`dims_for`).
        precisions: fast-tier precisions to try.
        shortlists: shortlist sizes to try.
        tolerance: relative nDCG@10 loss allowed for the recommendation (0.01: 1%), which the
            lower end of the 95% interval of the per-query difference must stay within.
        n_resamples: bootstrap resamples of that interval.
        seed: the resampling seed.

    Raises:
        ValueError: an unknown precision, or an empty shortlists or one that is not a
            positive integer.
    """

    dims: Sequence[int] | None = None
    precisions: Sequence[Quantization | str] = ("float32", "int8", "binary")
    shortlists: Sequence[int] = (50, 100, 200)
    tolerance: float = 0.01
    n_resamples: int = N_RESAMPLES
    seed: int = 0

    def __post_init__(self) -> None:
        for s in self.shortlists:
            if isinstance(s, bool) or not isinstance(s, int) or s < 1:
                raise ValueError(f"shortlists: each must be a positive integer, got {s!r}")
        if not self.shortlists:
            raise ValueError("shortlists is empty: pass at least one shortlist size, e.g. (100,)")
        coerced = {
            "dims": None if self.dims is None else tuple(self.dims),
            "precisions": tuple(as_quantization(p) for p in self.precisions),
            "shortlists": tuple(self.shortlists),
        }
        for name, value in coerced.items():
            object.__setattr__(self, name, value)

    def dims_for(self, width: int) -> tuple[int, ...]:
        """The shortlist dims for a model of ``width`` dims; ValueError naming the fix."""
        dims = tuple(matryoshka_dims(width)[1:] if self.dims is None else self.dims)
        if not dims:
            raise ValueError(
                f"no Matryoshka dim below the full width {width} (defaults are powers of two >= 64); "
                "fix: pass dims, e.g. dims=(16, 8) or --dims 16,8"
            )
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d < width:
                raise ValueError(
                    f"dims: each must be an integer in [1, {width - 1}] (below the full width), got {d!r}"
                )
        return dims


@dataclass(frozen=True)
class PlanRow:
    """One configuration and what it costs and scores; ``shortlist`` is None for exact search.

    ``ci_low``/``ci_high`` bound the paired bootstrap 95% interval of its per-query nDCG@10 minus
    the reference's, ``p_value`` is the paired test's (None in plans recorded before them).
    """

    name: str
    shortlist_dim: int
    precision: Quantization
    shortlist: int | None
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    bytes_per_doc: int
    latency_ms_median: float
    latency_ms_p95: float
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None

    @property
    def exact(self) -> bool:
        return self.shortlist is None

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> PlanRow:
        """The inverse of the rows in :meth:`PlanResult.to_dict`."""
        return cls(**{**row, "precision": as_quantization(row["precision"])})


@dataclass(frozen=True)
class PlanResult:
    """Every configuration scored, the reference (full-dim float32 exact) and the recommendation.

    ``chosen_on`` names the split the recommendation was chosen on when it is not ``split``
    (see :func:`choose_on`), ``chosen_on_queries`` its number of queries; empty and 0 when it was
    chosen on ``split`` itself. ``n_resamples`` 0: a plan recorded before the noise rule.
    """

    rows: tuple[PlanRow, ...]
    reference: PlanRow
    recommended: PlanRow
    dim: int
    n_docs: int
    n_queries: int
    split: str
    model_name: str
    tolerance: float = 0.01
    chosen_on: str = ""
    chosen_on_queries: int = 0
    n_resamples: int = 0

    @property
    def decided_on_queries(self) -> int:
        """How many queries the recommendation rests on."""
        return self.chosen_on_queries if self.chosen_on else self.n_queries

    def pareto(self, cost: str) -> tuple[PlanRow, ...]:
        """Rows no other row beats on both ``cost`` (a PlanRow field, lower is better) and nDCG@10.

        Example:
            >>> result.pareto("bytes_per_doc")  # doctest: +SKIP
        """
        front = [
            row
            for row in self.rows
            if not any(
                getattr(o, cost) <= getattr(row, cost)
                and o.ndcg_at_10 >= row.ndcg_at_10
                and (getattr(o, cost) < getattr(row, cost) or o.ndcg_at_10 > row.ndcg_at_10)
                for o in self.rows
            )
        ]
        return tuple(sorted(front, key=lambda r: (getattr(r, cost), -r.ndcg_at_10)))

    def to_dict(self) -> dict[str, Any]:
        def row(r: PlanRow) -> dict[str, Any]:
            return {**asdict(r), "precision": r.precision.value}

        return {
            **{
                k: v
                for k, v in asdict(self).items()
                if k not in ("rows", "reference", "recommended")
            },
            "rows": [row(r) for r in self.rows],
            "reference": row(self.reference),
            "recommended": row(self.recommended),
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> PlanResult:
        """The inverse of :meth:`to_dict` (``plan.json`` -> PlanResult)."""
        rows = {"rows", "reference", "recommended"}
        return cls(
            **{k: v for k, v in saved.items() if k not in rows},
            rows=tuple(PlanRow.from_dict(r) for r in saved["rows"]),
            reference=PlanRow.from_dict(saved["reference"]),
            recommended=PlanRow.from_dict(saved["recommended"]),
        )


def _timed_run(
    index: Index, query_emb: np.ndarray, query_ids: Sequence[str], shortlist: int | None
) -> tuple[Run, list[float]]:
    """Search one query at a time (as a service would), recording each call's latency in ms."""
    k = FINAL_K if shortlist is None else min(FINAL_K, shortlist)

    def one(row: int) -> list[tuple[str, float]]:
        q = query_emb[row : row + 1]
        hits = index.search_exact(q, k) if shortlist is None else index.search(q, k, shortlist)
        return hits[0]

    one(0)  # warm-up: first-call allocations and lazy imports are not query latency
    run: Run = {}
    latencies = []
    for row, qid in enumerate(query_ids):
        start = time.perf_counter()
        hits = one(row)
        latencies.append((time.perf_counter() - start) * 1e3)
        run[qid] = dict(hits)
    return run, latencies


def _row(
    name: str,
    index: Index,
    shortlist: int | None,
    query_emb: np.ndarray,
    query_ids: Sequence[str],
    qrels: Qrels,
) -> tuple[PlanRow, dict[str, float]]:
    """``index`` searched with ``shortlist`` (None: exact), scored and timed; and its per-query
    nDCG@10 (``qid -> value``)."""
    run, latencies = _timed_run(index, query_emb, query_ids, shortlist)
    scores = evaluate(qrels, run, METRICS)
    return PlanRow(
        name=name,
        shortlist_dim=index.info.shortlist_dim,
        precision=index.info.precision,
        shortlist=shortlist,
        ndcg_at_10=scores["ndcg@10"],
        recall_at_10=scores["recall@10"],
        recall_at_100=scores["recall@100"],
        bytes_per_doc=bytes_per_doc(index.info.shortlist_dim, index.info.precision),
        latency_ms_median=statistics.median(latencies),
        latency_ms_p95=float(np.percentile(latencies, 95)),
    ), per_query(qrels, run, ["ndcg@10"])["ndcg@10"]


def _score_grid(
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    query_emb: np.ndarray,
    query_ids: Sequence[str],
    qrels: Qrels,
    grid: PlanGrid,
) -> list[tuple[PlanRow, dict[str, float]]]:
    """Exact search at the full width and each grid dim, then every two-stage configuration."""
    width = np.asarray(doc_emb).shape[1]
    dims = grid.dims_for(width)
    rows = []
    for d in (width, *dims):  # single-stage exact search on the first d dims
        index = Index.from_embeddings(truncate(doc_emb, d), doc_ids, shortlist_dim=d)
        rows.append(_row(f"exact {d}", index, None, truncate(query_emb, d), query_ids, qrels))
    for d in dims:
        for precision in grid.precisions:
            index = Index.from_embeddings(doc_emb, doc_ids, shortlist_dim=d, precision=precision)
            for s in grid.shortlists:
                name = f"{d} {as_quantization(precision).value} top-{s}"
                rows.append(_row(name, index, s, query_emb, query_ids, qrels))
    return rows


def recommend(
    scored: Sequence[tuple[PlanRow, dict[str, float]]], grid: PlanGrid
) -> tuple[list[PlanRow], PlanRow]:
    """Every row with its interval against the first (the reference), and the recommendation.

    The recommendation is the cheapest row (bytes, then median latency) that passes
    :func:`honed.index.noise.passes`: its paired bootstrap lower bound of per-query nDCG@10
    minus the reference's stays above ``-grid.tolerance x`` the reference's nDCG@10.

    Args:
        scored: ``(row, qid -> nDCG@10)`` per configuration, the reference (exact full-dim
            float32) first; every row scored on the same queries.
        grid: its ``tolerance``, ``n_resamples`` and ``seed``.

    Example:
        >>> rows, best = recommend([(exact_row, exact_scores), (cheap_row, cheap_scores)], PlanGrid())  # doctest: +SKIP
    """
    reference, exact_scores = scored[0]
    rows, good = [], []
    for row, scores in scored:
        t = versus_exact(exact_scores, scores, grid.seed, grid.n_resamples)
        rows.append(replace(row, ci_low=t.ci_low, ci_high=t.ci_high, p_value=t.p_value))
        if passes(t, reference.ndcg_at_10, grid.tolerance):  # the reference always does
            good.append(rows[-1])
    return rows, min(good, key=lambda r: (r.bytes_per_doc, r.latency_ms_median))


def plan_embeddings(
    doc_emb: np.ndarray,
    doc_ids: Sequence[str],
    query_emb: np.ndarray,
    query_ids: Sequence[str],
    qrels: Qrels,
    dims: Sequence[int] | None = None,
    *,
    split: str = "test",
    model_name: str = "",
    **grid: Any,
) -> PlanResult:
    """The planner's grid on already computed full-dim embeddings; see :func:`plan`.

    Args:
        doc_emb: ``(n_docs, dim)`` full-dim document embeddings.
        doc_ids: unique ids aligned with ``doc_emb``.
        query_emb: ``(n_queries, dim)`` query embeddings aligned with ``query_ids``.
        query_ids: query ids; qrels of other queries count as misses (see :func:`evaluate`).
        qrels: the split's judgments.
        dims: shortlist dims, each below ``dim`` (default: the Matryoshka dims below it).
        split, model_name: recorded in the result.
        **grid: the other :class:`PlanGrid` fields: ``precisions``, ``shortlists``,
            ``tolerance``, ``n_resamples``, ``seed``.

    Raises:
        ValueError: no dim below the full width, a dim or shortlist out of range, a bad precision.
    """
    config, width = PlanGrid(dims, **grid), np.asarray(doc_emb).shape[1]
    config.dims_for(width)
    if len(query_ids) == 0 or len(query_ids) != len(query_emb):
        raise ValueError(
            f"query_ids has {len(query_ids)} ids for {len(query_emb)} query embeddings: "
            "expected one id per row, and at least one query"
        )
    rows, recommended = recommend(
        _score_grid(doc_emb, doc_ids, query_emb, query_ids, qrels, config), config
    )
    n_docs, n_queries = len(doc_ids), len(query_ids)
    return PlanResult(
        tuple(rows), rows[0], recommended, width, n_docs, n_queries, split, model_name,
        config.tolerance, n_resamples=config.n_resamples,
    )  # fmt: skip


def choose_on(chosen: PlanResult, reported: PlanResult) -> PlanResult:
    """``reported`` with the configuration recommended on ``chosen``'s split, at its own figures.

    Choose on dev, report on test: test is touched once, so it never picks the configuration.

    Example:
        >>> test = choose_on(plan_embeddings(..., split="dev"), plan_embeddings(..., split="test"))  # doctest: +SKIP

    Raises:
        ValueError: the two results do not score the same configurations.
    """
    by_name = {r.name: r for r in reported.rows}
    if sorted(by_name) != sorted(r.name for r in chosen.rows):
        raise ValueError(
            f"expected the same configurations on {chosen.split} and {reported.split}, got "
            f"{len(chosen.rows)} and {len(reported.rows)} different ones; fix: run both with the "
            "same dims, precisions and shortlists"
        )
    return replace(reported, recommended=by_name[chosen.recommended.name], chosen_on=chosen.split,
                   chosen_on_queries=chosen.n_queries)


def plan(
    model: SentenceTransformer | str,
    data: str | Path | BeirData,
    split: str = "test",
    dims: Sequence[int] | None = None,
    *,
    device: str | None = None,
    encode_precision: Precision | str = Precision.AUTO,
    cache: EmbeddingCache | None = None,
    **grid: Any,
) -> PlanResult:
    """Score a grid of two-stage configurations of ``model`` on one labelled split of ``data``.

    ``dims`` and ``**grid`` (``precisions``, ``shortlists``, ``tolerance``) are the
    :class:`PlanGrid`; ``device``, ``encode_precision`` and ``cache`` are how the corpus and
    queries are encoded (once, at full dim).

    Example:
        >>> result = plan("runs/scifact/model", "data/scifact")  # doctest: +SKIP
        >>> result.recommended.name  # doctest: +SKIP
        '128 int8 top-100'

    Raises:
        ValueError: see :func:`plan_embeddings`; an unknown split.
        FileNotFoundError: ``data`` is not a BEIR folder.
    """
    config = PlanGrid(dims, **grid)
    beir = data if isinstance(data, BeirData) else load_beir(data)
    qrels = beir.split(split)
    name = model if isinstance(model, str) else ""
    st_model = load_model(resolve_model_name(model), device) if isinstance(model, str) else model
    config.dims_for(embedding_dim(st_model))  # fail before the long encoding
    cache = cache or EmbeddingCache(precision=encode_precision)
    doc_ids = list(beir.corpus)
    doc_emb = cache.encode(
        st_model, [beir.corpus[d].full_text for d in doc_ids], show_progress_bar=True
    )
    query_ids = sorted(qrels)
    query_emb = cache.encode(st_model, [beir.queries[q] for q in query_ids])
    return plan_embeddings(
        doc_emb, doc_ids, query_emb, query_ids, qrels, split=split, model_name=name,
        **asdict(config),
    )  # fmt: skip
