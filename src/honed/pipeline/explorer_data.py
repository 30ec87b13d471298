"""What the HTML report's query explorer and mining plot show, recorded in the run folder.

``report.json`` keeps summaries. The HTML report (:mod:`honed.report.html`) also lets a reader
open every test query and see the base and the tuned top 10 side by side, and draws the scores
of the mined rows; both come from arrays that exist only while the run is in memory, so the
run writes them beside its other files:

- ``metrics/explorer_test.json``: per evaluated test query, its text, its judgments, nDCG@10
  and the rank of the first relevant document of base and tuned at full dim, and both top 10
  (ids and scores, trec_eval order); the title and a snippet of every document shown, so the
  report needs neither the data folder nor the model.
- ``mining_samples.json``: the scores of positives, kept negatives and candidates dropped by the
  margin (a seeded sample of at most :data:`MAX_SAMPLES` each), the pair counts, and a few
  example rows (query, positive, hardest negatives).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from honed.data.beir import BeirData
from honed.evaluation.metrics import per_query
from honed.evaluation.significance import first_relevant_ranks
from honed.files import write_text
from honed.mining.candidates import (
    drop_known_positives,
    known_positives,
    margin_filter,
    margin_threshold,
    retrieve_candidates,
)
from honed.mining.hard_negatives import MiningResult
from honed.mining.rows import MinedRow
from honed.pipeline.extra_rows import BaseEncoding
from honed.report.html import EXPLORER_FILE, MINING_SAMPLES_FILE
from honed.retrieval.ranking import ranked_ids
from honed.types import Qrels, SplitRuns

__all__ = [
    "EXAMPLE_ROWS",
    "EXPLORER_K",
    "MAX_SAMPLES",
    "explorer_record",
    "mining_samples",
    "write_explorer",
    "write_mining_samples",
]

EXPLORER_K = 10  # documents shown per system for one query
SNIPPET_CHARS = 240  # two lines of a laptop-wide column
# Scores kept per distribution: a histogram of 40 bins is stable at 2,000 values, and the three
# samples stay under 50 kB of JSON whatever the size of the training set.
MAX_SAMPLES = 2000
EXAMPLE_ROWS = 6  # three hardest rows and three drawn at random
_EXAMPLE_TEXT = 300


def _compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _top(run: Mapping[str, float], qid: str) -> list[list[Any]]:
    return [[d, round(run[d], 5)] for d in ranked_ids(qid, dict(run), EXPLORER_K)]


def explorer_record(
    runs: Mapping[str, SplitRuns], test: Qrels, data: BeirData, dim: int
) -> dict[str, Any]:
    """The explorer's record of the test split: base vs tuned at ``dim``, every evaluated query.

    Args:
        runs: system -> split -> dim -> run, with ``"base"`` and ``"tuned"`` at ``str(dim)``.
        test: the test judgments (judged-not-relevant documents kept, marked 0).
        data: the dataset, for query texts and document titles and snippets.
        dim: the full dim (the systems compared in report.md's verdict).

    Returns:
        ``{"split", "dim", "k", "queries": qid -> {...}, "docs": docid -> {"title", "snippet"}}``.
    """
    key = str(dim)
    base, tuned = runs["base"]["test"][key], runs["tuned"]["test"][key]
    ndcg = {
        name: per_query(test, run, ["ndcg@10"])["ndcg@10"]
        for name, run in (("base", base), ("tuned", tuned))
    }
    first = {"base": first_relevant_ranks(test, base), "tuned": first_relevant_ranks(test, tuned)}
    queries: dict[str, Any] = {}
    shown: set[str] = set()
    for qid in sorted(ndcg["base"]):
        record: dict[str, Any] = {
            "text": data.queries[qid],
            "judged": dict(test[qid]),
            "base": _top(base.get(qid, {}), qid),
            "tuned": _top(tuned.get(qid, {}), qid),
        }
        for system in ("base", "tuned"):
            record[f"{system}_ndcg"] = round(ndcg[system][qid], 5)
            record[f"{system}_first"] = first[system][qid]  # None: not in the top 100
            shown.update(d for d, _ in record[system])
        shown.update(test[qid])
        queries[qid] = record
    docs = {
        d: {"title": data.corpus[d].title, "snippet": data.corpus[d].text[:SNIPPET_CHARS]}
        for d in sorted(shown)
        if d in data.corpus
    }
    return {"split": "test", "dim": dim, "k": EXPLORER_K, "queries": queries, "docs": docs}


def write_explorer(
    out: Path, runs: Mapping[str, SplitRuns], test: Qrels, data: BeirData, dim: int
) -> Path:
    """Write :func:`explorer_record` to ``out / EXPLORER_FILE`` (compact JSON); returns its path."""
    path = out / EXPLORER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, _compact(explorer_record(runs, test, data, dim)))
    return path


def _sample(values: Sequence[float], rng: random.Random) -> list[float]:
    picked = list(values) if len(values) <= MAX_SAMPLES else rng.sample(list(values), MAX_SAMPLES)
    return sorted(round(float(v), 4) for v in picked)


def _dropped_scores(
    base: BaseEncoding, positives: Qrels, q_emb: Mapping[str, np.ndarray], rng: random.Random
) -> list[float]:
    """Scores of the candidates the margin filter dropped, over a sample of training queries.

    The miner's own steps (:mod:`honed.mining.candidates`) on at most :data:`MAX_SAMPLES`
    queries: retrieve, drop known positives, keep what scores above the margin threshold.
    """
    qids = sorted(positives)
    if len(qids) > MAX_SAMPLES:
        qids = sorted(rng.sample(qids, MAX_SAMPLES))
    if not qids:
        return []
    subset = {q: positives[q] for q in qids}
    rows, scores = retrieve_candidates(
        np.stack([q_emb[q] for q in qids]), base.doc_emb, subset, base.mining.depth
    )  # (n_queries, depth + most qrels) each
    index_of = {d: i for i, d in enumerate(base.doc_ids)}
    dropped: list[float] = []
    for qi, qid in enumerate(qids):
        known = known_positives(subset[qid], index_of, base.doc_texts)
        ranked = list(zip(rows[qi].tolist(), scores[qi].tolist()))
        unknown, _, _ = drop_known_positives(ranked, known, base.doc_texts)
        for doc in subset[qid]:
            positive = float(base.doc_emb[index_of[doc]] @ q_emb[qid])
            kept, _ = margin_filter(unknown, margin_threshold(positive, base.mining.margin))
            survivors = {index for index, _ in kept}
            dropped += [score for index, score in unknown if index not in survivors]
    return dropped


def _example(row: MinedRow) -> dict[str, Any]:
    return {
        "query_id": row.query_id,
        "query": row.query,
        "positive_id": row.positive_id,
        "positive": row.positive[:_EXAMPLE_TEXT],
        "positive_score": round(row.positive_score, 4),
        "negatives": [
            {"id": i, "text": t[:_EXAMPLE_TEXT], "score": round(s, 4)}
            for i, t, s in zip(row.negative_ids, row.negatives, row.negative_scores)
        ],
    }


def _examples(rows: Sequence[MinedRow], rng: random.Random) -> list[dict[str, Any]]:
    """The rows whose hardest negative is closest to the positive, then a few drawn at random."""
    gap = sorted(rows, key=lambda r: (r.positive_score - max(r.negative_scores), r.query_id))
    hardest = gap[: EXAMPLE_ROWS // 2]
    rest = [r for r in rows if r not in hardest]
    drawn = rng.sample(rest, min(len(rest), EXAMPLE_ROWS - len(hardest)))
    return [{**_example(r), "hardest": r in hardest} for r in [*hardest, *drawn]]


def mining_samples(
    mined: MiningResult, base: BaseEncoding, positives: Qrels, q_emb: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Score samples and example rows of a mining stage (seeded by ``base.mining.seed``).

    Args:
        mined: the rows and report of the stage (labelled rows and any extra rows).
        base: the base model's corpus encoding and the mining settings used.
        positives: the labelled training pairs (score >= 1) the miner was given.
        q_emb: query id -> base embedding ``(dim,)`` for every query of ``positives``.
    """
    rng = random.Random(base.mining.seed)
    rows = [r for r in mined.rows if r.negative_scores]
    report = mined.report
    return {
        "positive": _sample([r.positive_score for r in rows], rng),
        "kept_negative": _sample([s for r in rows for s in r.negative_scores], rng),
        "dropped_margin": _sample(_dropped_scores(base, positives, q_emb, rng), rng),
        "margin": base.mining.margin,
        "pairs": report.pairs,
        "pairs_short": report.pairs_short,
        "pairs_without_negatives": report.pairs_without_negatives,
        "num_negatives": report.num_negatives,
        "rows": len(mined.rows),
        "examples": _examples(rows, rng),
    }


def write_mining_samples(
    out: Path,
    mined: MiningResult,
    base: BaseEncoding,
    positives: Qrels,
    q_emb: Mapping[str, np.ndarray],
) -> Path:
    """Write :func:`mining_samples` to ``out / MINING_SAMPLES_FILE``; returns its path."""
    path = out / MINING_SAMPLES_FILE
    write_text(path, _compact(mining_samples(mined, base, positives, q_emb)))
    return path
