"""Distribution shift between query sets: are the test queries from the training population?

A model tuned on templated training questions can lose on real user messages; these checks say
so before anyone spends compute (``honed check``, ``honed diagnose``) and again in the run's
report. One implementation: :func:`distribution_shift` compares two query sets,
:func:`compare_splits` runs it for every split against each reference (the test split, a file
of real user queries) and writes one warning line per reference.

The checks and why their thresholds sit where they do (each must stay silent on two samples of
one population, e.g. SciFact's train and test claims, and fire on templated questions against
free-form messages):

* **length**: the ratio of mean words per query outside ``[0.5, 2]``. Sampling noise moves a
  mean of 30+ queries by a few percent, and SciFact's train/test ratio is 1.0; a factor of two
  is a different way of writing (8-word templates against 30-word messages is 3.75).
* **vocabulary**: the share of the reference's word occurrences that occur in the other set's
  vocabulary depends on how large that vocabulary is (SciFact's 76 dev claims cover 50% of the
  test claims' words, its 683 training claims 81%), so it is measured against the set itself:
  the set is halved (seeded), and the share of held-out-half word occurrences found in the first
  half's vocabulary is the same-population expectation; an equal number of reference queries is
  measured against the same half. Warn when the reference falls ``VOCABULARY_GAP`` (0.2) or more
  below the expectation: SciFact's train and dev land 2 and 1 points below it against test
  (73% vs 71%, 40% vs 39%), templates against free-form messages (97-100% vs 11%) far beyond.
* **templates**: the share of queries that open with a repeated leading trigram (its first
  three words are the first three words of at least ``TEMPLATE_MIN_QUERIES`` queries and 1% of
  the set), differing by ``TEMPLATE_GAP`` (0.3) or more. The standard error of a difference of
  two shares is at most ``0.5 * sqrt(2 / n)``: 0.13 for 30 queries a side, 0.04 for 300; 0.3 is
  more than two standard errors for the smallest sets honed accepts and far more for real ones.
* **embeddings**: the cosine between the two mean query embeddings below 0.8. Two halves of one
  set of sentence embeddings have centroid cosines above 0.95; 0.8 leaves room for the topic mix
  of a small sample to differ.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from honed.data.leakage import check_embeddings

__all__ = [
    "LENGTH_RANGE", "MIN_CENTROID_COSINE", "TEMPLATE_GAP", "VOCABULARY_GAP", "QuerySetProfile",
    "ShiftReport", "SplitShift", "compare_splits", "distribution_shift", "profile_queries",
]  # fmt: skip

_WORD_RE = re.compile(r"\w+")
LENGTH_RANGE = (0.5, 2.0)
VOCABULARY_GAP = 0.2
_HALVING_SEED = 0  # the halving is part of the measurement, not of a run: fixed, not a setting
MIN_CENTROID_COSINE = 0.8
TEMPLATE_WORDS = 3  # "what are the", "how is x": a template shows in its first three words
TEMPLATE_MIN_QUERIES = 3  # two queries sharing an opening is chance, three is a pattern
TEMPLATE_MIN_SHARE = 0.01  # ... and, in a large set, at least 1% of it
TEMPLATE_GAP = 0.3


@dataclass(frozen=True)
class QuerySetProfile:
    """What one query set looks like, without a model.

    Attributes:
        name: ``"train"``, ``"dev"``, ``"test"`` or ``"queries"`` (a file of user queries).
        n_queries: queries in the set.
        mean_words: mean words per query.
        template_share: share of queries opening with a repeated leading trigram.
        top_opening: the most common leading trigram ("" for an empty set).
        top_opening_share: share of queries opening with it.
    """

    name: str
    n_queries: int
    mean_words: float
    template_share: float
    top_opening: str
    top_opening_share: float


@dataclass(frozen=True)
class ShiftReport:
    """How far the ``test`` (reference) queries are from the ``train`` queries.

    The field names keep the run's train-vs-test wording; ``names`` says which two sets they are
    (``("dev", "queries")`` when dev is compared with a file of user queries).

    Attributes:
        train_mean_words: mean words per query of the first set.
        test_mean_words: mean words per query of the reference set.
        length_ratio: ``test_mean_words / train_mean_words``.
        vocabulary_overlap: share of reference word occurrences (lowercased) that also occur in
            the first set's queries.
        vocabulary_expected: share of the first set's held-out-half word occurrences found in
            its other half's vocabulary (None with fewer than 2 queries).
        vocabulary_matched: share of as many reference queries' word occurrences found in that
            same half's vocabulary (None with fewer than 2 queries).
        centroid_cosine: cosine between the two mean query embeddings, None without embeddings.
        warnings: one sentence per check outside its expected range (empty when none).
        train_template_share: share of the first set's queries opening with a repeated trigram.
        test_template_share: the same for the reference set.
        train_top_opening: the first set's most common leading trigram.
        names: the two sets' names.
    """

    train_mean_words: float
    test_mean_words: float
    length_ratio: float
    vocabulary_overlap: float
    centroid_cosine: float | None
    warnings: tuple[str, ...]
    train_template_share: float = 0.0
    test_template_share: float = 0.0
    train_top_opening: str = ""
    names: tuple[str, str] = ("train", "test")
    vocabulary_expected: float | None = None
    vocabulary_matched: float | None = None


@dataclass(frozen=True)
class SplitShift:
    """Every split compared with each reference; one warning line per reference that differs.

    Attributes:
        profiles: one per query set, in the order given.
        pairs: ``(name, reference) -> ShiftReport`` for every set against every other reference.
        warnings: one line per reference with the numbers of each set that differs from it.
    """

    profiles: tuple[QuerySetProfile, ...]
    pairs: dict[tuple[str, str], ShiftReport]
    warnings: tuple[str, ...]


def _words(text: str) -> list[str]:
    """Lowercased word tokens."""
    return _WORD_RE.findall(text.lower())


def _openings(tokens: Sequence[list[str]]) -> tuple[float, str, float]:
    """(template share, most common opening, its share) of tokenised queries."""
    starts = [" ".join(words[:TEMPLATE_WORDS]) for words in tokens if words]
    if not starts:
        return 0.0, "", 0.0
    counts = Counter(starts)
    repeated = max(TEMPLATE_MIN_QUERIES, math.ceil(TEMPLATE_MIN_SHARE * len(tokens)))
    templated = sum(c for c in counts.values() if c >= repeated)
    top, top_count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return templated / len(tokens), top, top_count / len(tokens)


def profile_queries(name: str, texts: Iterable[str]) -> QuerySetProfile:
    """Length and template repetition of one query set.

    Example:
        >>> p = profile_queries("train", ["what are the symptoms of flu"] * 3 + ["why"])
        >>> p.template_share, p.top_opening
        (0.75, 'what are the')
    """
    tokens = [_words(text) for text in texts]
    mean = float(np.mean([len(t) for t in tokens])) if tokens else 0.0
    share, top, top_share = _openings(tokens)
    return QuerySetProfile(name, len(tokens), mean, share, top, top_share)


def _found(tokens: Sequence[list[str]], vocabulary: set[str]) -> float:
    """Share of the word occurrences of ``tokens`` that are in ``vocabulary``."""
    words = [word for query in tokens for word in query]
    return sum(1 for word in words if word in vocabulary) / max(len(words), 1)


def _vocabulary_check(
    a_tokens: Sequence[list[str]], b_tokens: Sequence[list[str]]
) -> tuple[float | None, float | None]:
    """(expected, matched): a's held-out half and as many b queries against a's other half."""
    if len(a_tokens) < 2:
        return None, None
    order = list(range(len(a_tokens)))
    random.Random(_HALVING_SEED).shuffle(order)
    half = len(order) // 2
    vocabulary = {w for i in order[:half] for w in a_tokens[i]}
    n = min(len(order) - half, len(b_tokens))
    held_out = [a_tokens[i] for i in order[half:][:n]]
    sample = random.Random(_HALVING_SEED).sample(list(b_tokens), n)
    return _found(held_out, vocabulary), _found(sample, vocabulary)


def _centroid_cosine(emb_train: np.ndarray, emb_test: np.ndarray) -> float:
    """Cosine between the row means of two embedding matrices."""
    centroids = emb_train.mean(axis=0), emb_test.mean(axis=0)  # (dim,), (dim,)
    norms = [float(np.linalg.norm(c)) for c in centroids]
    if min(norms) == 0:
        raise ValueError("an embedding centroid has zero norm: the mean of the embeddings is 0")
    return float(centroids[0] @ centroids[1]) / (norms[0] * norms[1])


def _warnings(r: ShiftReport) -> list[str]:
    """One sentence per check of ``r`` outside its range (the module doc says why each)."""
    a, b = r.names
    out = []
    if not LENGTH_RANGE[0] <= r.length_ratio <= LENGTH_RANGE[1]:
        out.append(
            f"{b} {r.test_mean_words:.1f} vs {a} {r.train_mean_words:.1f} words per query "
            f"(ratio {r.length_ratio:.2f}, outside [{LENGTH_RANGE[0]:g}, {LENGTH_RANGE[1]:g}])"
        )
    expected, matched = r.vocabulary_expected, r.vocabulary_matched
    if expected is not None and matched is not None and expected - matched >= VOCABULARY_GAP:
        out.append(
            f"{matched:.0%} of {b} query words occur in {a} queries vs {expected:.0%} of "
            f"held-out {a} query words (gap at least {VOCABULARY_GAP:.0%})"
        )
    if abs(r.train_template_share - r.test_template_share) >= TEMPLATE_GAP:
        out.append(
            f"{r.train_template_share:.0%} of {a} vs {r.test_template_share:.0%} of {b} queries "
            f'open with a repeated first {TEMPLATE_WORDS} words ({a}: "{r.train_top_opening}"; '
            f"gap at least {TEMPLATE_GAP:.0%})"
        )
    if r.centroid_cosine is not None and r.centroid_cosine < MIN_CENTROID_COSINE:
        out.append(
            f"{b} and {a} query-embedding centroids have cosine {r.centroid_cosine:.2f} "
            f"(below {MIN_CENTROID_COSINE})"
        )
    return out


def distribution_shift(
    train: Mapping[str, str],
    test: Mapping[str, str],
    emb_train: np.ndarray | None = None,
    emb_test: np.ndarray | None = None,
    names: tuple[str, str] = ("train", "test"),
) -> ShiftReport:
    """Compare query length, vocabulary, openings and (optionally) embedding centroids.

    Warnings are raised by the thresholds of the module doc: length ratio outside ``[0.5, 2]``,
    reference words found 0.2 below the set's own held-out half, template shares 0.3 apart,
    centroid cosine below 0.8.

    Args:
        train: the first query set, ``qid -> text``.
        test: the reference set (test, or real user queries), ``qid -> text``.
        emb_train: optional ``(len(train), dim)`` embeddings in sorted-qid order.
        emb_test: the same for ``test``; give both or neither.
        names: how the sentences name the two sets.

    Returns:
        A :class:`ShiftReport`.

    Raises:
        ValueError: a query set is empty or has no words, or the embeddings are one-sided, of
            the wrong shape, not finite or average to zero.
    """
    tokens: dict[str, list[list[str]]] = {}
    for name, queries in zip(names, (train, test), strict=True):
        tokens[name] = [_words(text) for text in queries.values()]
        if not any(tokens[name]):
            raise ValueError(
                f"{name} has no words in its {len(queries)} queries: nothing to compare"
            )
    a_tokens, b_tokens = tokens[names[0]], tokens[names[1]]
    vocabulary = {word for words in a_tokens for word in words}
    test_words = [word for words in b_tokens for word in words]
    overlap = sum(1 for word in test_words if word in vocabulary) / len(test_words)
    embeddings = check_embeddings(
        ("emb_train", "emb_test"), (emb_train, emb_test), (len(train), len(test))
    )
    expected, matched = _vocabulary_check(a_tokens, b_tokens)
    a_share, a_top, _ = _openings(a_tokens)
    b_share = _openings(b_tokens)[0]
    a_mean = float(np.mean([len(t) for t in a_tokens]))
    b_mean = float(np.mean([len(t) for t in b_tokens]))
    report = ShiftReport(
        train_mean_words=a_mean,
        test_mean_words=b_mean,
        length_ratio=b_mean / a_mean,
        vocabulary_overlap=overlap,
        centroid_cosine=None if embeddings is None else _centroid_cosine(*embeddings),
        warnings=(),
        train_template_share=a_share,
        test_template_share=b_share,
        train_top_opening=a_top,
        names=names,
        vocabulary_expected=expected,
        vocabulary_matched=matched,
    )
    return replace(report, warnings=tuple(_warnings(report)))


def _score_note(
    scores: Mapping[str, Mapping[str, float]], name: str, reference: str
) -> str:
    """``"; base model nDCG@10 0.62 vs 0.31"`` for each score both sets have."""
    a, b = scores.get(name, {}), scores.get(reference, {})
    shared = [metric for metric in a if metric in b]
    return "".join(f"; base model {m} {a[m]:.3f} vs {b[m]:.3f}" for m in shared)


def compare_splits(
    query_sets: Mapping[str, Mapping[str, str]],
    references: Sequence[str],
    embeddings: Mapping[str, np.ndarray] | None = None,
    scores: Mapping[str, Mapping[str, float]] | None = None,
) -> SplitShift:
    """Compare every query set with each reference set (test, real user queries).

    Args:
        query_sets: ``name -> {qid: text}``, e.g. train, dev, test and ``"queries"``.
        references: the names compared against (each in ``query_sets``); a set is not compared
            with itself, and two references are compared once (the later one as reference).
        embeddings: optional ``name -> (n, dim)`` query embeddings in sorted-qid order.
        scores: optional ``name -> {label: value}`` (a base model's scores of each set), quoted
            in the warning line next to the text measurements.

    Returns:
        A :class:`SplitShift` with one warning line per reference that some set differs from.

    Raises:
        ValueError: a reference is not among the query sets; see :func:`distribution_shift`.

    Example:
        >>> shift = compare_splits({"train": train, "test": test}, ["test"])  # doctest: +SKIP
        >>> shift.warnings  # doctest: +SKIP
        ('shift: train queries differ from test: test queries average 31.5 words ...',)
    """
    unknown = [r for r in references if r not in query_sets]
    if unknown:
        raise ValueError(
            f"references: expected names among {sorted(query_sets)}, got {unknown}"
        )
    emb = embeddings or {}
    pairs: dict[tuple[str, str], ShiftReport] = {}
    lines = []
    for ref in references:
        parts = []
        for name, queries in query_sets.items():
            if name == ref or (name in references and references.index(name) > references.index(ref)):
                continue
            key = (name, ref)
            both = name in emb and ref in emb
            pairs[key] = distribution_shift(
                queries, query_sets[ref], emb[name] if both else None, emb[ref] if both else None,
                names=key,
            )
            if pairs[key].warnings:
                parts.append((name, ", ".join(pairs[key].warnings)
                              + _score_note(scores or {}, name, ref)))
        if parts:
            names = " and ".join(f"{name} queries" for name, _ in parts)
            lines.append(
                f"shift: {names} look unlike the {ref} queries: "
                + " | ".join(text for _, text in parts)
                + f". A model tuned and measured on them may not carry over to the {ref} queries."
            )
    profiles = tuple(profile_queries(name, q.values()) for name, q in query_sets.items())
    return SplitShift(profiles, pairs, tuple(lines))
