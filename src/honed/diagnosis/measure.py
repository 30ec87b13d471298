"""The measurements behind ``honed diagnose``: how the base model reads and ranks a domain.

* :func:`measure_terminology`: the share of corpus word occurrences (lower-cased alphabetic
  words, up to ``sample_words`` of them) that the tokenizer splits into ``FRAGMENT_PIECES`` (3) or
  more pieces, or maps to its unknown token, against the same share on the everyday-English text
  shipped in ``resources/general_english.txt`` (floored at ``REFERENCE_FLOOR``, 1%). A word read
  as three sub-word guesses is a word the model did not learn as a unit. Domain terms are ranked
  by a TF-IDF-like score, ``count * log((reference words + 1) / (reference count + 1))``, over
  the words relatively more frequent in the corpus than in the reference; among the top
  ``TERM_CANDIDATES`` the ``N_TERMS`` that fragment most are listed with their pieces.
* :func:`measure_difficulty`: per query, best positive score minus best non-positive score (the
  margin; negative = a non-positive outranks every positive) and whether the first positive is
  outside the top 10, scoring every document in blocks of bounded memory.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

__all__ = [
    "Difficulty", "DomainTerm", "Terminology", "count_words", "measure_difficulty",
    "measure_terminology", "reference_text", "word_pieces",
]

FRAGMENT_PIECES = 3
# A 30k-entry WordPiece vocabulary splits almost no everyday word (all-MiniLM-L6-v2: 0% of the
# reference), which would make the ratio infinite. The floor stands for ordinary text with names
# and rarer words in it, so the 1.5 signal needs at least 1.5% of corpus words fragmented.
REFERENCE_FLOOR = 0.01
N_TERMS = 15
TERM_CANDIDATES = 1000  # on SciFact the top 200 held one fragmented word, the top 1000 held 62
_SCORE_BUDGET = 1 << 25  # floats per block of the (queries, docs) score matrix: 128 MB
_WORD = re.compile(r"[^\W\d_]+")
_BARE_MARKERS = frozenset({"▁", "Ġ"})  # word-start markers some tokenizers emit alone


@dataclass(frozen=True)
class DomainTerm:
    """A word frequent in the corpus and rare in everyday English, with the tokenizer's pieces."""

    word: str
    count: int
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class Terminology:
    """How often the tokenizer breaks corpus words apart, against everyday English."""

    corpus_words: int
    corpus_fragmented: float
    reference_words: int
    reference_fragmented: float
    ratio: float
    terms: tuple[DomainTerm, ...]



@dataclass(frozen=True)
class Difficulty:
    """Positive-vs-negative margins of the base model on the dev queries."""

    queries: int
    median_margin: float
    negative_margin_share: float
    miss_top10_share: float



def reference_text() -> str:
    """The everyday-English reference shipped with honed, without its ``#`` header line."""
    text = resources.files("honed.diagnosis").joinpath("resources/general_english.txt").read_text("utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def count_words(texts: Iterable[str], max_words: int) -> Counter[str]:
    """Lower-cased alphabetic word counts over ``texts``, stopping after ``max_words`` words."""
    counts: Counter[str] = Counter()
    total = 0
    for text in texts:
        words = _WORD.findall(text.lower())[: max_words - total]
        counts.update(words)
        total += len(words)
        if total >= max_words:
            break
    return counts


def word_pieces(tokenizer: Any, words: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The tokenizer's pieces of each word on its own (no special tokens)."""
    if not words:
        return {}
    ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return {
        word: tuple(p for p in tokenizer.convert_ids_to_tokens(row) if p not in _BARE_MARKERS)
        for word, row in zip(words, ids, strict=True)
    }


def _fragmented(pieces: tuple[str, ...], unk: str | None) -> bool:
    return len(pieces) >= FRAGMENT_PIECES or (unk is not None and unk in pieces)


def _share(counts: Counter[str], pieces: Mapping[str, tuple[str, ...]], unk: str | None) -> float:
    broken = sum(c for word, c in counts.items() if _fragmented(pieces[word], unk))
    return broken / sum(counts.values())


def _domain_terms(
    corpus: Counter[str], ref: Counter[str], pieces: Mapping[str, tuple[str, ...]], unk: str | None
) -> tuple[DomainTerm, ...]:
    n_corpus, n_ref = sum(corpus.values()), sum(ref.values())
    over = [w for w, c in corpus.items() if c >= 2 and c / n_corpus > ref[w] / n_ref]
    score = {w: corpus[w] * math.log((n_ref + 1) / (ref[w] + 1)) for w in over}
    candidates = sorted(over, key=lambda w: (-score[w], w))[:TERM_CANDIDATES]
    broken = [w for w in candidates if _fragmented(pieces[w], unk)]
    broken.sort(key=lambda w: (-len(pieces[w]), -score[w], w))
    return tuple(DomainTerm(w, corpus[w], pieces[w]) for w in broken[:N_TERMS])


def measure_terminology(
    corpus_texts: Iterable[str], reference: str, tokenizer: Any, sample_words: int = 200_000
) -> Terminology:
    """Share of word occurrences split into 3+ pieces, corpus vs ``reference``.

    Raises:
        ValueError: the corpus sample or the reference has no alphabetic word.

    Example:
        >>> t = measure_terminology(texts, reference_text(), model.tokenizer)  # doctest: +SKIP
        >>> t.ratio  # doctest: +SKIP
        2.4
    """
    corpus = count_words(corpus_texts, sample_words)
    ref = count_words([reference], sys.maxsize)
    for name, counts in (("corpus", corpus), ("reference text", ref)):
        if not counts:
            raise ValueError(
                f"{name}: no alphabetic words (expected text with letters, got none); "
                f"fix: check that the {name} holds text"
            )
    pieces = word_pieces(tokenizer, sorted(corpus.keys() | ref.keys()))
    unk = getattr(tokenizer, "unk_token", None)
    corpus_share, ref_share = _share(corpus, pieces, unk), _share(ref, pieces, unk)
    return Terminology(
        corpus_words=sum(corpus.values()),
        corpus_fragmented=corpus_share,
        reference_words=sum(ref.values()),
        reference_fragmented=ref_share,
        ratio=corpus_share / max(ref_share, REFERENCE_FLOOR),
        terms=_domain_terms(corpus, ref, pieces, unk),
    )


def measure_difficulty(
    query_emb: np.ndarray, doc_emb: np.ndarray, qids: Sequence[str], doc_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]], k: int = 10,
) -> Difficulty:
    """Margins and top-``k`` misses of the first positive, scoring every document.

    Args:
        query_emb: (len(qids), dim) normalised query embeddings.
        doc_emb: (len(doc_ids), dim) normalised document embeddings.

    Raises:
        ValueError: no query of ``qids`` has a positive (score >= 1) in ``doc_ids``.
    """
    index = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    margins: list[float] = []
    misses = queries = 0
    block = max(1, _SCORE_BUDGET // max(1, len(doc_ids)))
    for start in range(0, len(qids), block):
        scores = query_emb[start : start + block] @ doc_emb.T  # (block, n_docs)
        for row, qid in zip(scores, qids[start : start + block], strict=True):
            pos = [index[d] for d, s in qrels.get(qid, {}).items() if s >= 1 and d in index]
            if not pos:
                continue
            queries += 1
            best_pos = float(row[pos].max())
            misses += int(np.count_nonzero(row > best_pos) >= k)
            if len(pos) < len(row):
                others = row.copy()
                others[pos] = -np.inf
                margins.append(best_pos - float(others.max()))
    if not queries:
        raise ValueError(
            f"qrels: no query with a positive (score >= 1) among {len(qids)} queries; "
            "fix: check the dev split's qrels"
        )
    return Difficulty(
        queries=queries,
        median_margin=float(statistics.median(margins)) if margins else math.inf,
        negative_margin_share=sum(m < 0 for m in margins) / max(len(margins), 1),
        miss_top10_share=misses / queries,
    )
