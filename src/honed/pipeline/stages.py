"""The work of each stage, as functions typed in -> out.

``honed run`` (:mod:`honed.pipeline.runner`) and the single-stage commands ``honed mine``,
``honed train`` and ``honed evaluate`` (:mod:`honed.pipeline.commands`) are built from these same
functions, so a stage has one implementation whichever way it is started.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.data.beir import BeirData
from honed.data.leakage import shared_positives
from honed.data.plan import leakage_queries
from honed.data.splits import SplitRule, Splits, positives_only, split_data
from honed.encoding.rotation import add_rotation, pca_rotation
from honed.evaluation.evidence import check_leakage
from honed.files import replace_folder, sha256_file, write_json
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import MiningReport, MiningResult, mine_hard_negatives
from honed.mining.rows import MinedRow, write_mined
from honed.types import Qrels

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "SPLITS_FILE",
    "Leakage",
    "check_inputs_unchanged",
    "known_positives",
    "leakage_split",
    "mine_pairs",
    "rotate_to_corpus",
    "save_model",
    "write_mining",
    "write_splits",
]

SPLITS_FILE = "splits.json"  # honed.evaluation.hybrid reads the run's dev split from it


@dataclass(frozen=True)
class Leakage:
    """The splits after the leakage filter, and what the filter found (``data.json``'s record)."""

    splits: Splits
    record: dict[str, Any]


def check_inputs_unchanged(data_json: Path, root: Path) -> None:
    """Refuse to resume when an input file's sha256 differs from the one recorded at the start."""
    if not data_json.is_file():
        return  # interrupted before data.json was written: nothing recorded to compare
    recorded = json.loads(data_json.read_text(encoding="utf-8")).get("files", {})
    for name, info in recorded.items():
        path = Path(root) / name
        if not path.is_file() or sha256_file(path) != info["sha256"]:
            raise ValueError(
                f"{path}: changed since this run started (sha256 differs from data.json); "
                "fix: start a new run with `honed run DATA --out NEW_DIR`"
            )


def leakage_split(
    data: BeirData, q_emb: Mapping[str, np.ndarray], rule: SplitRule, allow: bool
) -> Leakage:
    """Find training queries that duplicate test queries, drop them unless ``allow``, split.

    ``q_emb``: the base model's embedding of every query of every split (``qid -> (dim,)``).
    The same filter as :func:`honed.data.plan.plan_run` (what ``honed check`` applies), plus the
    near duplicates the embeddings find; the split rules refuse the result the same way.
    """
    train_all, test_q = leakage_queries(data)
    report = check_leakage(
        train_all,
        test_q,
        np.stack([q_emb[q] for q in sorted(train_all)]),  # (n_train, dim)
        np.stack([q_emb[q] for q in sorted(test_q)]),  # (n_test, dim)
    )
    splits = split_data(data, rule, frozenset() if allow else report.leaked_qids)
    record = {
        "exact": [asdict(p) for p in report.exact],
        "near": [asdict(p) for p in report.near],
        "char_threshold": report.char_threshold,
        "cosine_threshold": report.cosine_threshold,
        "dropped_from_training": len(splits.dropped),
        "allowed": allow,
        "shared_positives": shared_positives(splits.train, splits.test),
    }
    return Leakage(splits, record)


def write_splits(out: Path, splits: Splits) -> None:
    """Record the query ids of each split (``splits.json``): what trained, chose and was tested."""
    write_json(
        out / SPLITS_FILE,
        {
            "train": sorted(splits.train),
            "dev": sorted(splits.dev),
            "test": sorted(splits.test),
            "dropped_as_leaked": list(splits.dropped),
        },
    )


def mine_pairs(
    positives: Qrels,
    data: BeirData,
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    q_emb: Mapping[str, np.ndarray],
    doc_emb: np.ndarray,
    config: MiningConfig | None = None,
) -> MiningResult:
    """Hard negatives for every (query, positive) pair of ``positives`` (one stage, two callers).

    ``q_emb`` maps each query id of ``positives`` to its embedding; ``doc_emb`` is
    ``(n_docs, dim)`` in ``doc_ids`` order.

    Raises:
        ValueError: no pair to mine, or no pair got a negative (the reason in the message): an
            empty mined.jsonl would only fail later, in training.
    """
    if not positives:
        raise ValueError(
            f"{data.path}: no (query, positive) pair to mine (expected a judgment with score >= 1); "
            "fix: mark the relevant documents with score 1 or more"
        )
    qids = sorted(positives)
    queries = np.stack([q_emb[q] for q in qids])  # (n_queries, dim)
    result = mine_hard_negatives(
        positives, data.queries, doc_ids, doc_texts, queries, doc_emb, config
    )
    if not result.rows:
        raise ValueError(f"{data.path}: {_no_rows(result.report)}")
    return result


def _no_rows(report: MiningReport) -> str:
    """Why no pair got a negative, from the counts of what each filter dropped."""
    margin = report.config.get("margin")
    return (
        f"mining found no training row (expected a negative for at least one of the {report.pairs} "
        f"(query, positive) pairs, got none: of {report.candidates_seen} candidates, "
        f"{report.dropped_known_positive} were known positives, {report.dropped_duplicate_text} "
        f"copies of one and {report.dropped_margin} above the margin {margin}); fix: add "
        "documents that are not positives to the corpus, or loosen --margin (1.0 disables it)"
    )


def write_mining(result: MiningResult, rows: Path, report: Path) -> None:
    """Write the mined rows (JSON lines) and the mining report, each atomically."""
    rows.parent.mkdir(parents=True, exist_ok=True)
    write_mined(result.rows, rows)
    write_json(report, asdict(result.report))


def rotate_to_corpus(model: SentenceTransformer, doc_emb: np.ndarray) -> None:
    """Rotate ``model`` by the principal directions of ``doc_emb`` (``(n, dim)``), in place."""
    add_rotation(model, pca_rotation(doc_emb))


def save_model(model: SentenceTransformer, out: Path) -> Path:
    """Save to a temporary folder and rename: a half-written model folder never looks finished."""
    return replace_folder(out, lambda tmp: model.save(str(tmp)))


def known_positives(
    data: BeirData, train: Qrels, rows: Sequence[MinedRow]
) -> dict[str, set[str]]:
    """Query text -> all its positive texts, for label-aware batches and the masked loss.

    From the training qrels (a query's other positives must not be its in-batch negatives);
    self-supervised and generated rows have no qrels, only their own positive.
    """
    positives: dict[str, set[str]] = {}
    for qid, docs in positives_only(train).items():
        known = positives.setdefault(data.queries[qid], set())  # same text, two ids: one set
        known.update(data.corpus[d].full_text for d in docs)
    for row in rows:
        if row.query_id.startswith(("selfsup-", "qgen-")):
            positives.setdefault(row.query, set()).add(row.positive)
    return positives
