"""``stages.mine_pairs`` (``honed run`` and ``honed mine``) fails with the reason when it would
produce nothing usable, instead of an empty mined.jsonl."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from honed.data.beir import BeirData, Document
from honed.mining.config import MiningConfig
from honed.mining.hard_negatives import MiningResult
from honed.pipeline.stages import mine_pairs


def _mine(positives: dict[str, dict[str, int]], n_docs: int) -> MiningResult:
    """Mine on documents d1..dN (orthogonal unit vectors); every query sits on d1."""
    corpus = {f"d{i}": Document(f"d{i}", "", f"text {i}") for i in range(1, n_docs + 1)}
    data = BeirData(Path("/data"), corpus, {q: q for q in positives}, {"train": positives})
    doc_ids, doc_texts = data.documents()
    doc_emb = np.eye(n_docs, 4, dtype=np.float32)  # (n_docs, 4)
    q_emb = {q: doc_emb[0] for q in positives}
    return mine_pairs(positives, data, doc_ids, doc_texts, q_emb, doc_emb,
                      MiningConfig(num_negatives=1, depth=1))


def test_mining_that_finds_no_negative_fails_with_what_the_filters_dropped() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "/data: no (query, positive) pair to mine (expected a judgment with score >= 1); "
            "fix: ")):
        _mine({}, n_docs=2)
    with pytest.raises(ValueError, match=re.escape(
            "/data: mining found no training row (expected a negative for at least one of the 2 "
            "(query, positive) pairs, got none: of 4 candidates, 4 were known positives, 0 "
            "copies of one and 0 above the margin 0.95); fix: add documents that are not "
            "positives to the corpus, or loosen --margin (1.0 disables it)")):
        _mine({"t1": {"d1": 1, "d2": 1}}, n_docs=2)  # every document is a positive
    assert _mine({"t1": {"d1": 1}}, n_docs=2).rows
