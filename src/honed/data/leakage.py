"""Leakage checks between query sets (train or dev versus test).

A fine-tuned model scores well on test queries it has effectively seen: the same question
twice, a paraphrase, or a test query whose relevant document was a training positive. These
checks find such overlap (:mod:`honed.data.shift` says whether the populations differ).

Near duplicates are found by the Jaccard similarity of character 5-gram sets. Changing one
6-letter word alters ~10 shingles on each side: a 100-character query keeps a Jaccard of ~0.8
(the default threshold), a 50-character one only ~0.64, so short paraphrases need the embedding
cosine. Candidate pairs come from an inverted index over each query's *rarest* shingles (prefix
filtering: sets with Jaccard ``>= t`` share one of the first ``|x| - ceil(t|x|) + 1`` shingles
of each in a fixed rarity order), so 1k x 1k queries need far fewer than 1M comparisons.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SHINGLE_SIZE = 5


def normalize_text(text: str) -> str:
    """Canonical form for exact-duplicate detection.

    NFKC-normalises, casefolds, collapses runs of whitespace to one space and strips
    punctuation and spaces at both ends; punctuation inside the text is kept.

    Args:
        text: any string.

    Returns:
        The normalised string.

    Example:
        >>> normalize_text("  What  is\\tVitamin D? ")
        'what is vitamin d'
    """
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge_junk(char: str) -> bool:
    """Whether ``char`` is punctuation or a space, which :func:`normalize_text` trims."""
    return char == " " or unicodedata.category(char).startswith("P")


def _shingles(text: str) -> frozenset[str]:
    """Character 5-grams of a normalised text; a shorter non-empty text is its own shingle."""
    if len(text) <= SHINGLE_SIZE:
        return frozenset({text}) if text else frozenset()
    return frozenset(text[i : i + SHINGLE_SIZE] for i in range(len(text) - SHINGLE_SIZE + 1))


def _jaccard(x: frozenset[str], y: frozenset[str]) -> float:
    """``|x & y| / |x | y|``; two empty sets are identical (1.0)."""
    if not x and not y:
        return 1.0
    inter = len(x & y)
    return inter / (len(x) + len(y) - inter)


@dataclass(frozen=True)
class DuplicatePair:
    """A query of set ``a`` (train/dev) that duplicates a query of set ``b`` (test).

    Attributes:
        qid_a: query id in ``a``.
        qid_b: query id in ``b``.
        text_a: original text of ``qid_a``.
        text_b: original text of ``qid_b``.
        kind: ``"exact"`` (same :func:`normalize_text`) or ``"near"``.
        char_similarity: Jaccard similarity of the character 5-gram sets of the normalised texts.
        cosine: cosine of the two embeddings, None when no embeddings were given.
    """

    qid_a: str
    qid_b: str
    text_a: str
    text_b: str
    kind: str
    char_similarity: float
    cosine: float | None


@dataclass(frozen=True)
class LeakageReport:
    """Duplicate queries between a training (or dev) set and a test set.

    Attributes:
        exact: pairs with the same normalised text, sorted by ``(qid_a, qid_b)``.
        near: other pairs above either threshold, sorted by ``(qid_a, qid_b)``.
        char_threshold: character Jaccard threshold used.
        cosine_threshold: embedding cosine threshold used.
    """

    exact: tuple[DuplicatePair, ...]
    near: tuple[DuplicatePair, ...]
    char_threshold: float
    cosine_threshold: float

    @property
    def leaked_qids(self) -> frozenset[str]:
        """The ``a``-side qids of every pair: drop these from training to remove the leak."""
        return frozenset(pair.qid_a for pair in self.exact + self.near)


def _unit_rows(name: str, emb: np.ndarray, n: int) -> np.ndarray:
    """A validated float64 copy of ``emb`` with L2-normalised rows (so dot = cosine)."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(
            f"{name} must be a 2-D array with one row per query ({n}, dim) in sorted-qid order, "
            f"got shape {emb.shape}"
        )
    if not np.isfinite(emb).all():
        raise ValueError(f"{name} contains NaN or infinite values: check the encoder output")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)  # (n, 1)
    if (norms == 0).any():
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ValueError(f"{name} row {row} is all zeros: it has no direction to compare")
    return emb / norms


def check_embeddings(
    names: tuple[str, str],
    embs: tuple[np.ndarray | None, np.ndarray | None],
    sizes: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Both embedding matrices validated and normalised, or None when neither was given."""
    emb_a, emb_b = embs
    if emb_a is None and emb_b is None:
        return None
    if emb_a is None or emb_b is None:
        missing = names[0] if emb_a is None else names[1]
        raise ValueError(f"{missing} is None but the other embeddings were given: pass both")
    a, b = _unit_rows(names[0], emb_a, sizes[0]), _unit_rows(names[1], emb_b, sizes[1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} have different widths ({a.shape[1]} vs {b.shape[1]}): "
            "encode both query sets with the same model"
        )
    return a, b


def _check_threshold(name: str, value: float) -> None:
    """Raise unless ``0 < value <= 1``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")


def _char_near(
    shingles_a: list[frozenset[str]], shingles_b: list[frozenset[str]], threshold: float
) -> set[tuple[int, int]]:
    """``(row_a, row_b)`` of every pair with Jaccard ``>= threshold``."""
    df = Counter(
        s for sets in (shingles_a, shingles_b) for shingle_set in sets for s in shingle_set
    )

    def prefix(shingle_set: frozenset[str]) -> list[str]:
        # The 1e-9 guards ceil() against 0.8 * 5 = 4.000000000000001 style rounding.
        keep = len(shingle_set) - math.ceil(threshold * len(shingle_set) - 1e-9) + 1
        return sorted(shingle_set, key=lambda s: (df[s], s))[:keep]

    index: defaultdict[str, list[int]] = defaultdict(list)
    for j, shingle_set in enumerate(shingles_b):
        for shingle in prefix(shingle_set):
            index[shingle].append(j)
    found: set[tuple[int, int]] = set()
    for i, shingle_set in enumerate(shingles_a):
        candidates = {j for shingle in prefix(shingle_set) for j in index.get(shingle, ())}
        found.update(
            (i, j) for j in candidates if _jaccard(shingle_set, shingles_b[j]) >= threshold
        )
    return found


def _cosine_near(emb_a: np.ndarray, emb_b: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """``(row_a, row_b)`` pairs whose dot product is ``>= threshold``, a block of rows at a time."""
    pairs: set[tuple[int, int]] = set()
    rows = max(1, 4_000_000 // max(1, len(emb_b)))  # ~32 MB of float64 scores per block
    for start in range(0, len(emb_a), rows):
        scores = emb_a[start : start + rows] @ emb_b.T  # (rows, n_b)
        pairs.update(
            (start + int(i), int(j)) for i, j in zip(*np.nonzero(scores >= threshold), strict=True)
        )
    return pairs


def find_duplicates(
    a: Mapping[str, str],
    b: Mapping[str, str],
    emb_a: np.ndarray | None = None,
    emb_b: np.ndarray | None = None,
    char_threshold: float = 0.8,
    cosine_threshold: float = 0.95,
) -> LeakageReport:
    """Find test queries that duplicate training (or dev) queries.

    Args:
        a: training or dev queries, ``qid -> text``.
        b: test queries, ``qid -> text``.
        emb_a: optional ``(len(a), dim)`` embeddings of ``a`` in sorted-qid order (normalised
            here, so cosine is a dot product).
        emb_b: the same for ``b``; give both or neither.
        char_threshold: character 5-gram Jaccard at or above which a pair is near.
        cosine_threshold: embedding cosine at or above which a pair is near.

    Returns:
        A :class:`LeakageReport`; ``exact`` pairs share :func:`normalize_text`, ``near`` pairs are
        the other ones above either threshold.

    Raises:
        ValueError: a threshold is outside ``(0, 1]``, or the embeddings are one-sided, of the
            wrong shape or width, not finite, or have an all-zero row.

    Example:
        >>> report = find_duplicates({"t1": "What is DNA?"}, {"s1": "what is  dna"})
        >>> [(p.qid_a, p.qid_b, p.kind) for p in report.exact]
        [('t1', 's1', 'exact')]
    """
    _check_threshold("char_threshold", char_threshold)
    _check_threshold("cosine_threshold", cosine_threshold)
    qids_a, qids_b = sorted(a), sorted(b)
    embeddings = check_embeddings(("emb_a", "emb_b"), (emb_a, emb_b), (len(a), len(b)))
    norm_a = [normalize_text(a[q]) for q in qids_a]
    norm_b = [normalize_text(b[q]) for q in qids_b]
    shingles_a, shingles_b = [_shingles(t) for t in norm_a], [_shingles(t) for t in norm_b]

    rows_b: defaultdict[str, list[int]] = defaultdict(list)
    for j, text in enumerate(norm_b):
        rows_b[text].append(j)
    exact = {(i, j) for i, text in enumerate(norm_a) for j in rows_b.get(text, ())}
    near = _char_near(shingles_a, shingles_b, char_threshold)
    if embeddings is not None:
        near |= _cosine_near(*embeddings, cosine_threshold)

    def pair(i: int, j: int, kind: str) -> DuplicatePair:
        cosine = None if embeddings is None else float(embeddings[0][i] @ embeddings[1][j])
        similarity = _jaccard(shingles_a[i], shingles_b[j])
        return DuplicatePair(
            qids_a[i], qids_b[j], a[qids_a[i]], b[qids_b[j]], kind, similarity, cosine
        )

    exact_pairs = tuple(pair(i, j, "exact") for i, j in sorted(exact))
    near_pairs = tuple(pair(i, j, "near") for i, j in sorted(near - exact))
    return LeakageReport(exact_pairs, near_pairs, char_threshold, cosine_threshold)


def _positive_docs(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, set[str]]:
    """``qid -> relevant doc ids`` (relevance ``>= 1``) for queries that have any."""
    docs = {qid: {d for d, rel in judged.items() if rel >= 1} for qid, judged in qrels.items()}
    return {qid: found for qid, found in docs.items() if found}


def shared_positives(
    train_qrels: Mapping[str, Mapping[str, int]], test_qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, int]:
    """How much the test split's relevant documents overlap with the training positives.

    A test query whose relevant document was a training positive can be answered by a model
    that memorised the document rather than learned to match the query.

    Args:
        train_qrels: ``qid -> docid -> relevance`` of the training (or dev) split.
        test_qrels: the same for the test split.

    Returns:
        ``test_queries`` (test queries with a relevant document),
        ``test_queries_with_a_training_positive`` (of those, how many have a relevant document
        that is relevant to some training query), ``test_positive_docs`` (distinct relevant test
        documents) and ``test_positive_docs_seen_in_training``.

    Example:
        >>> shared_positives({"t1": {"d1": 1}}, {"s1": {"d1": 1}, "s2": {"d2": 2, "d3": 0}})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'test_queries': 2, 'test_queries_with_a_training_positive': 1, 'test_positive_docs': 2,
         'test_positive_docs_seen_in_training': 1}
    """
    train_docs = set().union(*_positive_docs(train_qrels).values())
    test = _positive_docs(test_qrels)
    test_docs = set().union(*test.values())
    return {
        "test_queries": len(test),
        "test_queries_with_a_training_positive": sum(1 for d in test.values() if d & train_docs),
        "test_positive_docs": len(test_docs),
        "test_positive_docs_seen_in_training": len(test_docs & train_docs),
    }


