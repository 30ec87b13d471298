"""Hard-negative mining as a chain of small, pure steps.

For each training pair (query, positive):

    embed -> retrieve candidates -> drop known positives (and same-text documents)
    -> margin filter -> sample N (fill from further down when short) -> training row

and over all pairs, one :class:`MiningReport` of what each step dropped.

Shapes: query embeddings (n_queries, dim), document embeddings (n_docs, dim), candidates
(n_queries, depth) indices and scores. Within one query the steps (:mod:`honed.mining.candidates`)
pass a list of ``(document row, score)`` pairs, best first. Everything is deterministic for a
given seed.

The margin is NV-Retriever's TopK-PercPos: a candidate scoring above ``margin`` x the positive's
score is too close to the positive to be trusted as a negative (it is often an unlabelled
positive), so it is dropped. When fewer than N candidates survive inside the candidate depth, the
miner walks further down the ranking instead of silently dropping the pair, and counts it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum

import numpy as np

from honed.mining.candidates import (
    KnownPositives,
    Ranked,
    deeper_negatives,
    drop_known_positives,
    known_positives,
    margin_filter,
    margin_threshold,
    retrieve_candidates,
    same_text_positives,
    sample_negatives,
)
from honed.mining.config import MiningConfig
from honed.mining.rows import MinedRow
from honed.types import Qrels

__all__ = [
    "MiningCorpus",
    "MiningReport",
    "MiningResult",
    "Pick",
    "QueryCandidates",
    "mine_hard_negatives",
    "mine_pseudo_queries",
    "mining_report",
    "training_row",
]


@dataclass(frozen=True)
class MiningReport:
    """What the miner saw and dropped; nothing is lost silently."""

    pairs: int
    queries: int
    num_negatives: int
    candidates_seen: int
    dropped_known_positive: int
    dropped_duplicate_text: int
    dropped_margin: int
    pairs_filled_from_deeper: int
    pairs_short: int  # fewer than num_negatives even after filling; kept with what was found
    pairs_without_negatives: int  # no negative at all; kept out of the hard-negative rows
    positive_score_quantiles: dict[str, float]
    negative_score_quantiles: dict[str, float]
    config: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class MiningResult:
    """The mined rows and the report of how they were found."""

    rows: tuple[MinedRow, ...]
    report: MiningReport


@dataclass(frozen=True)
class MiningCorpus:
    """The corpus as the miner sees it: one row per document in ids, texts and embeddings."""

    ids: Sequence[str]
    texts: Sequence[str]
    emb: np.ndarray  # (n_docs, dim), L2-normalised


@dataclass(frozen=True)
class QueryCandidates:
    """One query, its embedding, its first candidates and what must not become its negatives."""

    query_id: str
    query: str
    vector: np.ndarray  # (dim,)
    ranked: Ranked  # the first `depth` candidates over the whole corpus
    known: KnownPositives


@dataclass(frozen=True)
class Pick:
    """Negatives picked for one pair plus the filter counts that got there."""

    indices: tuple[int, ...]  # document rows, best first
    seen: int  # candidates inside the depth
    known: int  # dropped: a known positive
    duplicate: int  # dropped: a known positive's text under another id
    margin: int  # dropped: above the margin threshold
    filled: bool  # some negatives came from past the depth


def _pick_in_depth(
    query: QueryCandidates,
    positive_score: float,
    corpus: MiningCorpus,
    config: MiningConfig,
    rng: random.Random,
) -> tuple[Pick, float]:
    """Steps 2c to 4 for one (query, positive) pair, inside the depth; and the margin threshold
    (a short pick is filled from further down by :func:`_fill_from_deeper`)."""
    threshold = margin_threshold(positive_score, config.margin)
    unknown, n_known, n_same_text = drop_known_positives(query.ranked, query.known, corpus.texts)
    kept, n_margin = margin_filter(unknown, threshold)
    picked = sample_negatives([index for index, _ in kept], config, rng)
    return Pick(tuple(picked), len(query.ranked), n_known, n_same_text, n_margin, False), threshold


FILL_SCORES = 1 << 25  # scores held at once while filling (128 MiB of float32)


@dataclass(frozen=True)
class _Short:
    """A pair whose pick came out short inside the depth: where it is, and its threshold."""

    pair: int  # position in the picks
    query_row: int  # row of query_emb
    query: QueryCandidates
    threshold: float


def _fill_from_deeper(
    short: Sequence[_Short], picks: list[Pick], query_emb: np.ndarray, corpus: MiningCorpus,
    config: MiningConfig,
) -> None:  # fmt: skip
    """Step 4b for every short pair at once: the corpus scored for their queries in a few large
    products (not one pass over the corpus per pair: tldr's 825 short pairs of 2,150 cost 3 s
    that way), then each pick completed from its query's score row, in place."""
    rows = sorted({s.query_row for s in short})
    chunk = max(1, min(len(rows), FILL_SCORES // max(len(corpus.emb), 1)))
    for begin in range(0, len(rows), chunk):
        part = rows[begin : begin + chunk]
        column = {row: j for j, row in enumerate(part)}
        scores = corpus.emb @ query_emb[part].T  # (n_docs, len(part))
        for s in (s for s in short if s.query_row in column):
            pick = picks[s.pair]
            more = deeper_negatives(
                scores[:, column[s.query_row]], [index for index, _ in s.query.ranked],
                s.threshold, s.query.known, corpus.texts, config.num_negatives - len(pick.indices),
            )  # fmt: skip
            # a walk that found nothing deeper filled nothing
            picks[s.pair] = replace(pick, indices=pick.indices + tuple(more), filled=bool(more))


def training_row(
    query: QueryCandidates,
    positive: int,
    positive_score: float,
    negatives: Sequence[int],
    corpus: MiningCorpus,
) -> MinedRow:
    """Step 5: the training row of one pair; ``positive`` and ``negatives`` are document rows.

    Example:
        >>> corpus = MiningCorpus(["a", "b"], ["text a", "text b"], np.eye(2, dtype=np.float32))
        >>> known = KnownPositives(frozenset({0}), frozenset({"text a"}))
        >>> query = QueryCandidates("q", "query", np.array([1.0, 0.0]), [], known)
        >>> training_row(query, 0, 1.0, [1], corpus).negative_ids
        ('b',)
    """
    return MinedRow(
        query_id=query.query_id,
        query=query.query,
        positive_id=corpus.ids[positive],
        positive=corpus.texts[positive],
        positive_score=positive_score,
        negative_ids=tuple(corpus.ids[i] for i in negatives),
        negatives=tuple(corpus.texts[i] for i in negatives),
        negative_scores=tuple(float(corpus.emb[i] @ query.vector) for i in negatives),
    )


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    qs = np.quantile(np.asarray(values, dtype=np.float64), [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    names = ["min", "p05", "p25", "p50", "p75", "p95", "max"]
    return {name: round(float(v), 6) for name, v in zip(names, qs)}


def mining_report(
    picks: Sequence[Pick], rows: Sequence[MinedRow], queries: int, config: MiningConfig
) -> MiningReport:
    """Step 6: the counts of every pair's :class:`Pick`, and the score spread of the rows.

    A pair without any negative has no row; a pair with fewer than ``num_negatives`` is short.
    """
    return MiningReport(
        pairs=len(picks),
        queries=queries,
        num_negatives=config.num_negatives,
        candidates_seen=sum(p.seen for p in picks),
        dropped_known_positive=sum(p.known for p in picks),
        dropped_duplicate_text=sum(p.duplicate for p in picks),
        dropped_margin=sum(p.margin for p in picks),
        pairs_filled_from_deeper=sum(1 for p in picks if p.filled and p.indices),
        pairs_short=sum(1 for p in picks if 0 < len(p.indices) < config.num_negatives),
        pairs_without_negatives=sum(1 for p in picks if not p.indices),
        positive_score_quantiles=_quantiles([r.positive_score for r in rows]),
        negative_score_quantiles=_quantiles([s for r in rows for s in r.negative_scores]),
        config={k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(config).items()},
    )


# --- the chain ------------------------------------------------------------------------------


def mine_hard_negatives(
    positives: Qrels,
    queries: Mapping[str, str],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    config: MiningConfig | None = None,
) -> MiningResult:
    """Mine ``config.num_negatives`` hard negatives for every (query, positive) pair of ``positives``.

    Args:
        positives: qid -> docid -> score for the *training* queries only (scores >= 1 are positives;
            every one of them is excluded from that query's negatives).
        queries: qid -> text; must cover ``positives``.
        doc_ids, doc_texts: the corpus, in the row order of ``doc_emb``.
        query_emb: (len(positives), dim) normalised embeddings, in sorted-qid order of ``positives``.
        doc_emb: (n_docs, dim) normalised embeddings.

    Returns:
        The rows (sorted by query id, then positive id) and a :class:`MiningReport`.

    Raises:
        ValueError: ``query_emb`` does not have one row per query of ``positives``.

    Example:
        >>> result = mine_hard_negatives(train, queries, ids, texts, q_emb, d_emb, MiningConfig())  # doctest: +SKIP
        >>> result.report.pairs_short  # doctest: +SKIP
        0
    """
    config = config or MiningConfig()
    qids = sorted(positives)
    if query_emb.shape[0] != len(qids):
        raise ValueError(
            f"query_emb: expected {len(qids)} rows (one per query of positives, sorted by id), "
            f"got {query_emb.shape[0]}"
        )
    corpus = MiningCorpus(doc_ids, doc_texts, doc_emb)
    index_of = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    cand_idx, cand_scores = retrieve_candidates(query_emb, doc_emb, positives, config.depth)
    same_text = same_text_positives(positives, queries)
    rng = random.Random(config.seed)
    picks: list[Pick] = []
    pairs: list[tuple[QueryCandidates, int, float]] = []  # (query, positive row, its score)
    short: list[_Short] = []
    for qi, qid in enumerate(qids):
        # Every positive of any query with this query's text is excluded, not only its own.
        known = known_positives(same_text[qid], index_of, doc_texts)
        ranked = list(zip(cand_idx[qi].tolist(), cand_scores[qi].tolist()))
        query = QueryCandidates(qid, queries[qid], query_emb[qi], ranked, known)
        for pid in sorted(d for d, s in positives[qid].items() if s >= 1):
            positive = index_of[pid]
            positive_score = float(doc_emb[positive] @ query.vector)
            pick, threshold = _pick_in_depth(query, positive_score, corpus, config, rng)
            if len(pick.indices) < config.num_negatives and config.fill and len(doc_emb) > len(ranked):
                short.append(_Short(len(picks), qi, query, threshold))
            picks.append(pick)
            pairs.append((query, positive, positive_score))
    if short:
        _fill_from_deeper(short, picks, query_emb, corpus, config)
    rows = [
        training_row(query, positive, score, pick.indices, corpus)
        for (query, positive, score), pick in zip(pairs, picks)
        if pick.indices
    ]
    return MiningResult(tuple(rows), mining_report(picks, rows, len(qids), config))


def mine_pseudo_queries(
    sources: Sequence[tuple[str, str, str]],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    config: MiningConfig | None = None,
) -> MiningResult:
    """Hard negatives for queries made from one source document each (cut out or generated).

    Args:
        sources: ``(query id, query text, source doc id)`` per query, in ``query_emb``'s row
            order (any order of ids); the source is the query's only known positive.
        doc_ids, doc_texts, query_emb, doc_emb, config: as for :func:`mine_hard_negatives`.

    Raises:
        ValueError: two sources share a query id.
    """
    texts = {qid: query for qid, query, _ in sources}
    if len(texts) != len(sources):
        raise ValueError("queries: expected distinct query ids, got duplicates")
    order = sorted(range(len(sources)), key=lambda i: sources[i][0])  # the miner's qid order
    positives = {qid: {doc: 1} for qid, _, doc in sources}
    return mine_hard_negatives(
        positives, texts, doc_ids, doc_texts, query_emb[order], doc_emb, config
    )
