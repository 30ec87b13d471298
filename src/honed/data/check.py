"""Dataset health check for ``honed check``: every problem found, plus size and length statistics.

Unlike :func:`honed.data.beir.load_beir`, which stops at the first bad line, :func:`check_dataset`
collects all the problems it can so that a user fixes a file in one pass. On data that loads,
it then applies the rules of ``honed run`` (:func:`honed.data.plan.plan_run`, the very function
``honed run`` calls before it loads a model): the report says what run will train, choose and
report on, or the one line with which run would refuse the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from honed.data.beir import BeirData, read_beir
from honed.data.errors import DataError, Issues
from honed.data.plan import RunPlan, plan_run
from honed.data.shift import SplitShift, compare_splits
from honed.data.splits import SplitRule, positives_only
from honed.types import Qrels

# Enough to see the pattern; a file of bad lines would otherwise flood the terminal.
MAX_PROBLEMS_PER_FILE = 20


@dataclass(frozen=True)
class SplitStats:
    """Counts for one qrels split."""

    name: str
    n_queries: int
    n_judgments: int
    n_positive: int
    queries_without_positive: int


@dataclass(frozen=True)
class LengthStats:
    """Whitespace-separated word counts of a set of texts (all 0 for no texts)."""

    count: int
    mean_words: float
    p50_words: float
    p95_words: float
    max_words: int


@dataclass(frozen=True)
class CheckReport:
    """Everything :func:`check_dataset` found; ``ok`` is True when there are no problems.

    ``plan`` is what ``honed run`` will do with the data; ``refusal`` the one-line reason it
    would refuse it instead. Both are None when the data does not load or lacks the train or
    test split (``honed evaluate`` may still use it). ``shift`` compares the splits' queries
    (train, dev and test as run will use them, or the qrels files as they are) with the test
    split and with the user queries given; None when the data does not load.
    """

    path: Path
    n_documents: int
    n_queries: int
    splits: tuple[SplitStats, ...]
    document_lengths: LengthStats
    query_lengths: LengthStats
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    plan: RunPlan | None = None
    refusal: str | None = None
    shift: SplitShift | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found (warnings do not count)."""
        return not self.problems


def _percentile(ordered: list[int], q: float) -> float:
    """Linear interpolation between closest ranks, like ``numpy.percentile``'s default."""
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def length_stats(texts: Iterable[str]) -> LengthStats:
    """Word-count statistics of ``texts``.

    Example:
        >>> length_stats(["a b", "c d e f"]).mean_words
        3.0
    """
    words = sorted(len(text.split()) for text in texts)
    if not words:
        return LengthStats(0, 0.0, 0.0, 0.0, 0)
    return LengthStats(len(words), sum(words) / len(words), _percentile(words, 0.5),
                       _percentile(words, 0.95), words[-1])


def split_stats(name: str, qrels: Qrels) -> SplitStats:
    """Counts of queries, judgments and positives (score >= 1) in one split."""
    positives = [sum(1 for score in docs.values() if score >= 1) for docs in qrels.values()]
    return SplitStats(name, len(qrels), sum(len(docs) for docs in qrels.values()),
                      sum(positives), sum(1 for n in positives if n == 0))


def _capped(problems: list[DataError]) -> list[str]:
    """The first MAX_PROBLEMS_PER_FILE problems of each file, then a count of the rest."""
    shown: list[str] = []
    per_file: dict[Path | None, int] = {}
    for err in problems:
        per_file[err.path] = per_file.get(err.path, 0) + 1
        if per_file[err.path] <= MAX_PROBLEMS_PER_FILE:
            shown.append(str(err))
    shown += [f"{path}: {n - MAX_PROBLEMS_PER_FILE} more problem(s) not shown"
              for path, n in per_file.items() if n > MAX_PROBLEMS_PER_FILE]
    return shown


def _plan(data: BeirData, rule: SplitRule | None, allow_leakage: bool) -> tuple[RunPlan | None, str | None]:
    """``honed run``'s plan for ``data``, or the line with which it refuses it."""
    if not {"train", "test"} <= set(data.splits):
        return None, None
    try:
        return plan_run(data, rule, allow_leakage), None
    except ValueError as exc:  # DataError included
        return None, str(exc)


def split_queries(data: BeirData, plan: RunPlan | None,
                  user_queries: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``split -> {qid: text}``: run's train/dev/test when planned, else each qrels file.

    Only queries with a positive judgment count (the others are in no training pair and no
    metric); ``"user"`` holds ``user_queries`` when given.
    """
    qrels = (
        {"train": plan.splits.train, "dev": plan.splits.dev, "test": plan.splits.test}
        if plan is not None else dict(data.qrels)
    )
    sets = {
        name: {q: data.queries[q] for q in sorted(positives_only(split)) if q in data.queries}
        for name, split in qrels.items()
    }
    sets = {name: texts for name, texts in sets.items() if texts}
    if user_queries:
        sets["user"] = dict(user_queries)
    return sets


def shift_of(sets: Mapping[str, Mapping[str, str]]) -> SplitShift | None:
    """Every set against test and the user queries (those present); None with one set."""
    references = [name for name in ("test", "user") if name in sets]
    if len(sets) < 2 or not references:
        return None
    try:
        return compare_splits(sets, references)
    except ValueError:  # a split without a single word: nothing to compare, reported elsewhere
        return None


def check_dataset(path: str | Path, rule: SplitRule | None = None,
                  allow_leakage: bool = False,
                  user_queries: Mapping[str, str] | None = None) -> CheckReport:
    """Validate a BEIR folder, collecting every problem instead of stopping at the first.

    A problem that makes further checks impossible (a missing file, an empty corpus) ends the
    check: it is listed last, after what was found before it, and the counts are zero.

    Args:
        path: folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        rule: ``honed run``'s dev carve (``--dev-fraction``, ``--min-dev-queries``, ``--seed``).
        allow_leakage: as ``honed run --allow-leakage``.
        user_queries: real user queries (``--queries FILE``, see
            :func:`honed.data.user_queries.load_user_queries`) to compare every split with.

    Returns:
        A :class:`CheckReport`; ``report.ok`` tells whether ``load_beir`` would succeed.

    Example:
        >>> report = check_dataset("data/scifact")  # doctest: +SKIP
        >>> report.ok, report.n_documents  # doctest: +SKIP
        (True, 5183)
    """
    root = Path(path)
    issues = Issues(strict=False)
    try:
        data = read_beir(root, issues)
    except (FileNotFoundError, DataError) as exc:
        empty = length_stats([])
        return CheckReport(root, 0, 0, (), empty, empty, tuple(issues.warnings),
                           (*_capped(issues.problems), str(exc)))
    plan, refusal = _plan(data, rule, allow_leakage) if not issues.problems else (None, None)
    return CheckReport(
        path=root,
        n_documents=len(data.corpus),
        n_queries=len(data.queries),
        splits=tuple(split_stats(name, qrels) for name, qrels in data.qrels.items()),
        document_lengths=length_stats(doc.full_text for doc in data.corpus.values()),
        query_lengths=length_stats(data.queries.values()),
        warnings=data.warnings,
        problems=tuple(_capped(issues.problems)),
        plan=plan,
        refusal=refusal,
        shift=shift_of(split_queries(data, plan, user_queries)),
    )
