"""Self-supervised training pairs from the corpus itself: the domain's text without labels.

Most documents of a corpus have no training query, yet they carry the domain's vocabulary. Two
kinds of pseudo-query are cut out of a document and paired with the rest of it:

* **title -> body** where the document has a title of at least ``min_query_words`` words: the
  body alone (without the title) is the positive, so the pair cannot be solved by copying words;
* **sentence -> rest** (the inverse cloze task of Lee et al., 2019): one sentence of the text is
  the query and the document *without that sentence* is the positive.

Which one a document gives is a seeded coin flip when both are possible, so the mix does not
depend on the domain having titles (code, forum posts and contracts often do not). Pseudo-queries
are mined like real ones (:func:`honed.mining.hard_negatives.mine_hard_negatives` on the base model's ranking,
known positive and same-text documents excluded, positive-aware margin), so the rows look exactly
like labelled rows and are mixed into the same batches.

Every document of the corpus is eligible with the same probability, whether or not a test query
cites it: no label of any split is read here, only corpus text, which a deployed system has too.

Example:
    >>> pairs = corpus_pairs(corpus, n=700, seed=42)  # doctest: +SKIP
    >>> pairs[0].query, pairs[0].doc_id  # doctest: +SKIP
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from honed.data.beir import Document
from honed.mining.hard_negatives import MiningResult, mine_pseudo_queries

if TYPE_CHECKING:
    import numpy as np

    from honed.mining.config import MiningConfig

__all__ = ["PseudoPair", "corpus_pairs", "mine_corpus_pairs", "sentences"]

# A sentence ends at . ! or ? followed by whitespace and an upper-case letter, digit or bracket:
# crude, but it never splits "e.g. the" or "p < 0.05" and needs no model or network.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


@dataclass(frozen=True)
class PseudoPair:
    """A pseudo-query cut from document ``doc_id`` and the rest of that document."""

    query_id: str
    query: str
    doc_id: str
    positive: str
    kind: str  # "title" or "sentence"


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (rule-based; see ``_SENTENCE_END``)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _words(text: str) -> int:
    return len(text.split())


def _title_pair(doc: Document, min_words: int) -> tuple[str, str] | None:
    if _words(doc.title) < min_words or _words(doc.text) < min_words:
        return None
    return doc.title.strip(), doc.text.strip()


def _sentence_pair(
    doc: Document, rng: random.Random, min_words: int, max_words: int
) -> tuple[str, str] | None:
    parts = sentences(doc.text)
    # The rest must still be a document: at least two other sentences.
    usable = [i for i, s in enumerate(parts) if min_words <= _words(s) <= max_words]
    if len(parts) < 3 or not usable:
        return None
    i = rng.choice(usable)
    rest = " ".join(parts[:i] + parts[i + 1 :])
    positive = " ".join(p for p in (doc.title.strip(), rest) if p)
    return parts[i], positive


def corpus_pairs(
    corpus: Mapping[str, Document],
    n: int,
    seed: int = 42,
    min_query_words: int = 4,
    max_query_words: int = 64,
    exclude: Sequence[str] = (),
) -> list[PseudoPair]:
    """Up to ``n`` pseudo-pairs from distinct documents drawn uniformly at random (seeded).

    Args:
        corpus: doc id -> Document.
        n: pairs wanted; fewer come back when fewer documents qualify.
        seed: drives the document draw and the title/sentence choice.
        min_query_words, max_query_words: bounds on a pseudo-query's length in words.
        exclude: documents never used (e.g. duplicates of another document's text).

    Returns:
        Pairs sorted by query id (``"selfsup-<doc id>"``).

    Raises:
        ValueError: ``n`` negative or the word bounds inconsistent.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    if not 1 <= min_query_words <= max_query_words:
        raise ValueError(
            f"min_query_words/max_query_words: expected 1 <= min <= max, got "
            f"{min_query_words}/{max_query_words}"
        )
    rng = random.Random(seed)
    skip = set(exclude)
    order = sorted(d for d in corpus if d not in skip)
    rng.shuffle(order)
    pairs: list[PseudoPair] = []
    for doc_id in order:
        if len(pairs) >= n:
            break
        doc = corpus[doc_id]
        title = _title_pair(doc, min_query_words)
        sentence = _sentence_pair(doc, rng, min_query_words, max_query_words)
        options = [(k, p) for k, p in (("title", title), ("sentence", sentence)) if p is not None]
        if not options:
            continue
        kind, (query, positive) = options[rng.randrange(len(options))]
        pairs.append(PseudoPair(f"selfsup-{doc_id}", query, doc_id, positive, kind))
    return sorted(pairs, key=lambda p: p.query_id)


def mine_corpus_pairs(
    pairs: Sequence[PseudoPair],
    doc_ids: Sequence[str],
    doc_texts: Sequence[str],
    query_emb: np.ndarray,
    doc_emb: np.ndarray,
    config: MiningConfig | None = None,
) -> MiningResult:
    """Hard negatives for pseudo-pairs, exactly as for labelled pairs; positives become the rest.

    Args:
        pairs: from :func:`corpus_pairs` (sorted by query id).
        doc_ids, doc_texts: the corpus, in the row order of ``doc_emb``.
        query_emb: ``(len(pairs), dim)`` normalised embeddings of the pseudo-queries, same order.
        doc_emb: ``(n_docs, dim)`` normalised embeddings of the whole documents.

    Returns:
        Rows whose positive is the document *without* the pseudo-query (its source document and
        any document with the same text are never negatives), and the mining report.
    """
    sources = [(p.query_id, p.query, p.doc_id) for p in pairs]
    mined = mine_pseudo_queries(sources, doc_ids, doc_texts, query_emb, doc_emb, config)
    rest = {p.query_id: p.positive for p in pairs}
    return replace(mined, rows=tuple(replace(r, positive=rest[r.query_id]) for r in mined.rows))
