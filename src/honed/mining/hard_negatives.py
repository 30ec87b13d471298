"""Hard-negative mining as a chain of small, pure steps.

For each training pair (query, positive):

    embed -> retrieve candidates -> drop known positives -> margin filter -> pick N -> training row

Shapes: query embeddings (n_queries, dim), document embeddings (n_docs, dim), candidates
(n_queries, depth) indices and scores. Everything is deterministic for a given seed.

The margin is NV-Retriever's TopK-PercPos: a candidate scoring above ``margin`` x the positive's
score is too close to the positive to be trusted as a negative (it is often an unlabelled
positive), so it is dropped. When fewer than N candidates survive inside the candidate depth, the
miner walks further down the ranking instead of silently dropping the pair, and counts it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from honed.retrieval.dense import top_k
from honed.types import Qrels

__all__ = [
    "MinedRow",
    "MiningConfig",
    "MiningReport",
    "MiningResult",
    "SamplingStrategy",
    "mine_hard_negatives",
    "mine_pseudo_queries",
    "read_mined",
    "write_mined",
]



class SamplingStrategy(str, Enum):
    """How N negatives are picked among the candidates that survive the filters."""

    TOP = "top"  # the N highest-scoring survivors: the hardest negatives
    RANDOM = "random"  # N survivors drawn at random (seeded) from inside the candidate depth


@dataclass(frozen=True)
class MiningConfig:
    """Settings of the hard-negative miner.

    Attributes:
        num_negatives: negatives per (query, positive) pair.
        depth: candidates considered per query, from the top of the ranking over the whole corpus.
        margin: relative margin; a candidate scoring above ``margin * positive_score`` is dropped.
            1.0 disables it. NV-Retriever found 0.95 best among the values it tried.
        strategy: which survivors become negatives.
        fill: walk past ``depth`` when fewer than ``num_negatives`` survive, instead of leaving
            the pair short.
        seed: seeds the random strategy.
    """

    num_negatives: int = 3
    depth: int = 50
    margin: float = 0.95
    strategy: SamplingStrategy = SamplingStrategy.TOP
    fill: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", SamplingStrategy(self.strategy))
        if self.num_negatives < 1:
            raise ValueError(
                f"num_negatives: expected an integer >= 1, got {self.num_negatives}; "
                "fix: use 1 or more (in-batch negatives alone need no mining: skip `honed mine`)"
            )
        if self.depth < self.num_negatives:
            raise ValueError(
                f"depth: expected at least num_negatives ({self.num_negatives}), got {self.depth}"
            )
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(
                f"margin: expected a value in (0, 1] (1.0 disables the filter), got {self.margin}"
            )


@dataclass(frozen=True)
class MinedRow:
    """One training row: a query, one positive and its mined negatives (ids, texts, scores)."""

    query_id: str
    query: str
    positive_id: str
    positive: str
    positive_score: float
    negative_ids: tuple[str, ...]
    negatives: tuple[str, ...]
    negative_scores: tuple[float, ...]


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
    rows: tuple[MinedRow, ...]
    report: MiningReport


@dataclass(frozen=True)
class _Pick:
    """Negatives picked for one pair plus the filter counts that got there."""

    indices: tuple[int, ...]
    seen: int
    known: int
    duplicate: int
    margin: int
    filled: bool


def _survivors(
    candidates: np.ndarray,
    scores: np.ndarray,
    known: set[int],
    banned_texts: set[str],
    doc_texts: Sequence[str],
    threshold: float,
) -> tuple[list[int], int, int, int]:
    """Filter one query's ranked candidates: (kept indices, dropped known, dropped dup, dropped margin)."""
    kept: list[int] = []
    n_known = n_dup = n_margin = 0
    for index, score in zip(candidates.tolist(), scores.tolist()):
        if index in known:
            n_known += 1
        elif doc_texts[index] in banned_texts:
            n_dup += 1  # same text as a known positive under another id: a false negative
        elif score > threshold:
            n_margin += 1
        else:
            kept.append(index)
    return kept, n_known, n_dup, n_margin


def _pick(kept: list[int], config: MiningConfig, rng: random.Random) -> list[int]:
    if config.strategy is SamplingStrategy.RANDOM and len(kept) > config.num_negatives:
        return sorted(rng.sample(kept, config.num_negatives), key=kept.index)
    return kept[: config.num_negatives]


def _pick_for_pair(
    query_vec: np.ndarray,
    doc_emb: np.ndarray,
    first: tuple[np.ndarray, np.ndarray],
    known: set[int],
    banned_texts: set[str],
    doc_texts: Sequence[str],
    positive_score: float,
    config: MiningConfig,
    rng: random.Random,
) -> _Pick:
    # margin 1.0 is documented as "off": without this, candidates above the positive still drop.
    threshold = config.margin * positive_score if config.margin < 1.0 else float("inf")
    kept, n_known, n_dup, n_margin = _survivors(
        first[0], first[1], known, banned_texts, doc_texts, threshold
    )
    seen = len(first[0])
    picked = _pick(kept, config, rng)
    filled = False
    if len(picked) < config.num_negatives and config.fill and len(doc_emb) > seen:
        # Walk the rest of the ranking for this one query: one (n_docs,) score row, bounded memory.
        row = doc_emb @ query_vec  # (n_docs,)
        order = np.argsort(-row, kind="stable")[seen:]
        more, _, _, _ = _survivors(order, row[order], known, banned_texts, doc_texts, threshold)
        picked = picked + more[: config.num_negatives - len(picked)]
        filled = bool(more)  # a walk that found nothing deeper filled nothing
    return _Pick(tuple(picked), seen, n_known, n_dup, n_margin, filled)


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    qs = np.quantile(np.asarray(values, dtype=np.float64), [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    names = ["min", "p05", "p25", "p50", "p75", "p95", "max"]
    return {name: round(float(v), 6) for name, v in zip(names, qs)}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _positives_by_text(positives: Qrels, queries: Mapping[str, str]) -> dict[str, set[str]]:
    """Normalised query text -> the positives (score >= 1) of every query with that text."""
    out: dict[str, set[str]] = {}
    for qid, docs in positives.items():
        out.setdefault(_norm(queries[qid]), set()).update(d for d, s in docs.items() if s >= 1)
    return out


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

    Example:
        >>> result = mine_hard_negatives(train, queries, ids, texts, q_emb, d_emb, MiningConfig())
        >>> result.report.pairs_short
        0
    """
    config = config or MiningConfig()
    qids = sorted(positives)
    if query_emb.shape[0] != len(qids):
        raise ValueError(
            f"query_emb: expected {len(qids)} rows (one per query of positives, sorted by id), "
            f"got {query_emb.shape[0]}"
        )
    index_of = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    depth = min(config.depth + max((len(p) for p in positives.values()), default=0), len(doc_ids))
    cand_idx, cand_scores = top_k(query_emb, doc_emb, depth)  # (n_queries, depth) each
    rng = random.Random(config.seed)
    rows: list[MinedRow] = []
    counts = {
        "seen": 0,
        "known": 0,
        "duplicate": 0,
        "margin": 0,
        "filled": 0,
        "short": 0,
        "none": 0,
    }
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    same_text = _positives_by_text(positives, queries)
    for qi, qid in enumerate(qids):
        relevant = [d for d, s in positives[qid].items() if s >= 1]
        # Every positive of any query with this query's text is excluded, not only its own:
        # SciFact has query ids with the same text and different qrels.
        known = {index_of[d] for d in same_text[_norm(queries[qid])]}
        banned = {doc_texts[i] for i in known}
        for pid in sorted(relevant):
            p = index_of[pid]
            pscore = float(doc_emb[p] @ query_emb[qi])
            pick = _pick_for_pair(
                query_emb[qi],
                doc_emb,
                (cand_idx[qi], cand_scores[qi]),
                known,
                banned,
                doc_texts,
                pscore,
                config,
                rng,
            )
            counts["seen"] += pick.seen
            counts["known"] += pick.known
            counts["duplicate"] += pick.duplicate
            counts["margin"] += pick.margin
            counts["filled"] += int(pick.filled and len(pick.indices) > 0)
            if not pick.indices:
                counts["none"] += 1
                continue
            counts["short"] += int(len(pick.indices) < config.num_negatives)
            nscores = tuple(float(doc_emb[i] @ query_emb[qi]) for i in pick.indices)
            pos_scores.append(pscore)
            neg_scores.extend(nscores)
            rows.append(
                MinedRow(
                    query_id=qid,
                    query=queries[qid],
                    positive_id=pid,
                    positive=doc_texts[p],
                    positive_score=pscore,
                    negative_ids=tuple(doc_ids[i] for i in pick.indices),
                    negatives=tuple(doc_texts[i] for i in pick.indices),
                    negative_scores=nscores,
                )
            )
    report = MiningReport(
        pairs=sum(1 for q in qids for s in positives[q].values() if s >= 1),
        queries=len(qids),
        num_negatives=config.num_negatives,
        candidates_seen=counts["seen"],
        dropped_known_positive=counts["known"],
        dropped_duplicate_text=counts["duplicate"],
        dropped_margin=counts["margin"],
        pairs_filled_from_deeper=counts["filled"],
        pairs_short=counts["short"],
        pairs_without_negatives=counts["none"],
        positive_score_quantiles=_quantiles(pos_scores),
        negative_score_quantiles=_quantiles(neg_scores),
        config={k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(config).items()},
    )
    return MiningResult(rows=tuple(rows), report=report)


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


def write_mined(rows: Sequence[MinedRow], path: str | Path) -> None:
    """Write rows as JSON lines (one row per line, keys in a fixed order: byte-identical reruns)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_mined(path: str | Path) -> tuple[MinedRow, ...]:
    """Read rows written by :func:`write_mined`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a mined row (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; fix: run `honed mine` first, it writes mined.jsonl"
        )
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                obj["negative_ids"] = tuple(obj["negative_ids"])
                obj["negatives"] = tuple(obj["negatives"])
                obj["negative_scores"] = tuple(obj["negative_scores"])
                rows.append(MinedRow(**obj))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{line_no}: not a mined row ({type(err).__name__}: {err}); "
                    "fix: regenerate the file with `honed mine`"
                ) from err
    return tuple(rows)
