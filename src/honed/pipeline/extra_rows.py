"""Optional training rows beside the labelled ones: self-supervised corpus pairs, LLM queries.

Both are mined with the base model like the labelled pairs, and each writes its own report in
the run folder. Off by default (``RunConfig.corpus_pairs``, ``RunConfig.qgen``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.files import write_json
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import MiningResult
from honed.mining.qgen import (
    QueryGenConfig,
    generate_queries,
    mine_generated,
    read_generated,
    round_trip_filter,
    write_generated,
)
from honed.mining.selfsup import corpus_pairs, mine_corpus_pairs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.data.beir import BeirData
    from honed.encoding.encoder import EmbeddingCache

__all__ = ["BaseEncoding", "add_corpus_pairs", "add_generated_queries"]


@dataclass(frozen=True)
class BaseEncoding:
    """The base model, its cache and its corpus encoding: what extra rows are mined with."""

    model: SentenceTransformer
    cache: EmbeddingCache
    data: BeirData
    doc_ids: Sequence[str]
    doc_texts: Sequence[str]
    doc_emb: np.ndarray  # (n_docs, dim)
    mining: MiningConfig


def add_corpus_pairs(
    mined: MiningResult, base: BaseEncoding, ratio: float, seed: int, out: Path,
    say: Callable[[str], None],
) -> MiningResult:
    """Mix ``ratio`` self-supervised corpus rows per labelled row (honed.mining.selfsup) in."""
    wanted = int(round(ratio * len(mined.rows)))
    pairs = corpus_pairs(base.data.corpus, wanted, seed=seed)
    q_emb = base.cache.encode(base.model, [p.query for p in pairs])  # (n_pairs, dim)
    extra = mine_corpus_pairs(
        pairs, base.doc_ids, base.doc_texts, q_emb, base.doc_emb, base.mining
    )
    kinds = {k: sum(p.kind == k for p in pairs) for k in ("title", "sentence")}
    say(
        f"self-supervised corpus rows: {len(extra.rows)} ({kinds['title']} title -> body, "
        f"{kinds['sentence']} sentence -> rest) added to {len(mined.rows)} labelled rows"
    )
    write_json(out / "mining_corpus_report.json", asdict(extra.report))
    return replace(mined, rows=mined.rows + extra.rows)


def add_generated_queries(
    mined: MiningResult, base: BaseEncoding, qgen: QueryGenConfig, out: Path,
    say: Callable[[str], None],
) -> MiningResult:
    """Mix rows of LLM-written queries (honed.mining.qgen) that pass the round trip in.

    The answers are cached in generated_queries.jsonl: a resumed run does not ask again.
    """
    path = out / "generated_queries.jsonl"
    cached = path.is_file()
    if cached:
        generation = read_generated(path)
    else:
        say(f"generating queries with {qgen.model} at {qgen.endpoint}")
        generation = generate_queries(base.data.corpus, qgen)
        write_generated(path, generation)
    texts = [q.query for q in generation.queries]
    q_emb = base.cache.encode(base.model, texts) if texts else np.empty((0, 1), np.float32)
    kept, trip = round_trip_filter(
        generation.queries, q_emb, base.doc_emb, base.doc_ids, qgen.round_trip_k
    )
    report: dict[str, Any] = {"requested": generation.requested, "empty": len(generation.empty)}
    report.update({**asdict(trip), "from_cache": cached, "rows_added": 0, "mining": None})
    if kept:
        keep = {q.query_id for q in kept}
        rows = [i for i, q in enumerate(generation.queries) if q.query_id in keep]
        extra = mine_generated(
            kept,
            base.doc_ids,
            base.doc_texts,
            q_emb[rows],  # (n_kept, dim): the kept queries' rows, in kept's order
            base.doc_emb,
            base.mining,
        )
        report.update(rows_added=len(extra.rows), mining=asdict(extra.report))
        mined = replace(mined, rows=mined.rows + extra.rows)
    say(
        f"generated queries: {trip.kept} of {generation.requested} kept ({len(generation.empty)} "
        f"empty, {trip.dropped_round_trip} dropped by the round trip at k={trip.k}); "
        f"{report['rows_added']} rows added"
    )
    write_json(out / "qgen_report.json", report)
    return mined
