"""Distribution shift between query sets: are the test queries from the training population?

A model tuned on templated training questions can lose on real user messages; these checks say
so before anyone trusts a test score. Length, vocabulary overlap and (with embeddings) the
cosine between the two centroids, each with a warning outside its expected range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from honed.data.leakage import check_embeddings

__all__ = ["ShiftReport", "distribution_shift"]

_WORD_RE = re.compile(r"\w+")


@dataclass(frozen=True)
class ShiftReport:
    """How far the test queries are from the training queries.

    Attributes:
        train_mean_words: mean words per training query.
        test_mean_words: mean words per test query.
        length_ratio: ``test_mean_words / train_mean_words``.
        vocabulary_overlap: share of test word occurrences (lowercased) that also occur in the
            training queries.
        centroid_cosine: cosine between the mean training and mean test query embeddings, None
            without embeddings.
        warnings: one sentence per check outside its expected range (empty when none).
    """

    train_mean_words: float
    test_mean_words: float
    length_ratio: float
    vocabulary_overlap: float
    centroid_cosine: float | None
    warnings: tuple[str, ...]



def _words(text: str) -> list[str]:
    """Lowercased word tokens."""
    return _WORD_RE.findall(text.lower())



def _centroid_cosine(emb_train: np.ndarray, emb_test: np.ndarray) -> float:
    """Cosine between the row means of two embedding matrices."""
    centroids = emb_train.mean(axis=0), emb_test.mean(axis=0)  # (dim,), (dim,)
    norms = [float(np.linalg.norm(c)) for c in centroids]
    if min(norms) == 0:
        raise ValueError("an embedding centroid has zero norm: the mean of the embeddings is 0")
    return float(centroids[0] @ centroids[1]) / (norms[0] * norms[1])



def distribution_shift(
    train: Mapping[str, str],
    test: Mapping[str, str],
    emb_train: np.ndarray | None = None,
    emb_test: np.ndarray | None = None,
) -> ShiftReport:
    """Compare query length, vocabulary and (optionally) embedding centroids of two query sets.

    Warnings are raised when the length ratio is outside ``[0.5, 2]``, the vocabulary overlap
    is below 0.5 or the centroid cosine below 0.8: thresholds loose enough that two random
    halves of one dataset never trip them.

    Args:
        train: training queries, ``qid -> text``.
        test: test queries, ``qid -> text``.
        emb_train: optional ``(len(train), dim)`` embeddings in sorted-qid order.
        emb_test: the same for ``test``; give both or neither.

    Returns:
        A :class:`ShiftReport`.

    Raises:
        ValueError: a query set is empty or has no words, or the embeddings are one-sided, of
            the wrong shape, not finite or average to zero.
    """
    tokens: dict[str, list[list[str]]] = {}
    for name, queries in (("train", train), ("test", test)):
        tokens[name] = [_words(text) for text in queries.values()]
        if not any(tokens[name]):
            raise ValueError(
                f"{name} has no words in its {len(queries)} queries: nothing to compare"
            )
    train_mean = float(np.mean([len(t) for t in tokens["train"]]))
    test_mean = float(np.mean([len(t) for t in tokens["test"]]))
    vocabulary = {word for words in tokens["train"] for word in words}
    test_words = [word for words in tokens["test"] for word in words]
    overlap = sum(1 for word in test_words if word in vocabulary) / len(test_words)
    names = ("emb_train", "emb_test")
    embeddings = check_embeddings(names, (emb_train, emb_test), (len(train), len(test)))
    centroid = None if embeddings is None else _centroid_cosine(*embeddings)

    ratio = test_mean / train_mean
    warnings = []
    if not 0.5 <= ratio <= 2:
        warnings.append(
            f"test queries average {test_mean:.1f} words against {train_mean:.1f} "
            f"in training (ratio {ratio:.2f}, outside [0.5, 2])"
        )
    if overlap < 0.5:
        warnings.append(f"only {overlap:.0%} of test query words occur in the training queries")
    if centroid is not None and centroid < 0.8:
        warnings.append(
            f"the mean test and training query embeddings have cosine {centroid:.2f} (below 0.8)"
        )
    return ShiftReport(train_mean, test_mean, ratio, overlap, centroid, tuple(warnings))
