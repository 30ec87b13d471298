"""Train, dev and test: which queries may train, which may choose, which may only be reported.

One implementation of the split rules, used by ``honed run``, ``honed check``, ``honed diagnose``
and ``honed evaluate --hybrid``: the test split is used for nothing but the final evaluation; a
training query that is also a test query (or a near duplicate of one) is dropped from training;
dev is the data's own ``dev`` split, or carved from train by query.

:func:`split_data` refuses splits that leave ``honed run`` nothing to report, choose or train
on (a test split without a positive, a leakage filter that drops every training query, a dev
split without a positive or a carve that takes every positive, too few training pairs), each
with a one-line :class:`~honed.data.errors.DataError` naming the qrels file and the fix.
``honed check`` applies it to the model-free part of the leakage filter, ``honed run`` before
it loads a model and again with the base model's near duplicates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from honed.data.beir import BeirData
from honed.data.errors import DataError, data_error
from honed.types import Qrels

__all__ = [
    "MIN_TRAIN_PAIRS",
    "SplitRule",
    "Splits",
    "carve_dev",
    "count_pairs",
    "positives_only",
    "require_positives",
    "require_splits",
    "sample_train",
    "split_data",
]

DEFAULT_DEV_FRACTION = 0.1
DEFAULT_MIN_DEV_QUERIES = 30  # below ~30 queries a dev nDCG@10 moves by several points per query
DEFAULT_SEED = 42
# honed run trains on rows mined for these pairs: with none left it has nothing to train on
# (it used to find out after encoding the corpus, in the training estimate).
MIN_TRAIN_PAIRS = 1


@dataclass(frozen=True)
class SplitRule:
    """How a dev split is carved from train when the data has none.

    Attributes:
        dev_fraction: share of the training queries for dev, in (0, 1).
        min_dev_queries: smallest dev split (before the caps of :func:`carve_dev`).
        seed: seed of the shuffle.
    """

    dev_fraction: float = DEFAULT_DEV_FRACTION
    min_dev_queries: int = DEFAULT_MIN_DEV_QUERIES
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        # The messages of RunConfig's own checks of the same fields (honed run and honed check).
        if not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction: expected a value in (0, 1), got {self.dev_fraction}")
        if self.min_dev_queries < 1:
            raise ValueError(
                f"min_dev_queries: expected a positive integer, got {self.min_dev_queries}"
            )

    def describe(self) -> str:
        """E.g. ``"10%, at least 30, seed 42"``."""
        return f"{self.dev_fraction:.0%}, at least {self.min_dev_queries}, seed {self.seed}"


@dataclass(frozen=True)
class Splits:
    """The qrels of each split after the rules, and the training queries dropped as leaked."""

    train: Qrels
    dev: Qrels
    test: Qrels
    dropped: tuple[str, ...]


def carve_dev(qrels: Qrels, fraction: float = 0.1, min_queries: int = 30,
              seed: int = 42) -> tuple[Qrels, Qrels]:
    """Split qrels by query into ``(train_rest, dev)``, for data without a dev split.

    ``n_dev = max(min_queries, round(fraction * n_queries))``, capped so that at least one query
    stays in train; only queries with a positive (score >= 1) can go to dev. The choice depends
    only on the qids and ``seed`` (sorted, then shuffled), not on dict order.

    Args:
        qrels: judgments to split; not modified.
        fraction: share of the queries for dev, in (0, 1).
        min_queries: smallest dev size (before the caps), so small datasets get a usable dev set.
        seed: seed of the shuffle.

    Returns:
        Two copies with disjoint query sets that together cover ``qrels``.

    Raises:
        ValueError: bad ``fraction``/``min_queries``, fewer than 2 queries, or no positives.

    Example:
        >>> train, dev = carve_dev({"q1": {"d1": 1}, "q2": {"d2": 1}}, min_queries=1)
        >>> len(train), len(dev)
        (1, 1)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}; fix: use e.g. 0.1")
    if min_queries < 1:
        raise ValueError(f"min_queries must be >= 1, got {min_queries}; fix: use e.g. 30")
    if len(qrels) < 2:
        raise ValueError(f"cannot carve a dev split from {len(qrels)} query(ies) (expected at "
                         "least 2); fix: provide a dev split or more training queries")
    eligible = sorted(qid for qid, docs in qrels.items() if docs and max(docs.values()) >= 1)
    if not eligible:
        raise ValueError(f"none of the {len(qrels)} queries has a positive judgment (expected "
                         "score >= 1 for some); fix: check the qrels scores")
    n_dev = min(max(min_queries, round(fraction * len(qrels))), len(eligible), len(qrels) - 1)
    random.Random(seed).shuffle(eligible)
    dev_ids = set(eligible[:n_dev])
    train = {qid: dict(docs) for qid, docs in qrels.items() if qid not in dev_ids}
    return train, {qid: dict(qrels[qid]) for qid in sorted(dev_ids)}


def require_splits(data: BeirData) -> None:
    """Raise unless the dataset has the train and test splits that ``honed run`` needs."""
    for needed in ("train", "test"):
        if needed not in data.splits:
            raise ValueError(
                f"{data.path}/qrels: no {needed}.tsv (found: {', '.join(data.splits) or 'none'}); "
                "fix: honed run needs qrels/train.tsv to train and qrels/test.tsv for the final "
                "evaluation"
            )


def count_pairs(qrels: Qrels) -> int:
    """The (query, document) judgments with score >= 1."""
    return sum(1 for docs in qrels.values() for score in docs.values() if score >= 1)


def _qrels_file(data: BeirData, split: str) -> Path:
    return data.path / "qrels" / f"{split}.tsv"


def _no_positive(data: BeirData, split: str, what: str, expected: str, fix: str) -> DataError:
    n = sum(len(docs) for docs in data.qrels.get(split, {}).values())
    got = f"only 0 in {n} judgment{'s' * (n != 1)}" if n else "no judgments"
    return data_error(_qrels_file(data, split), None, what, expected, got, fix)


def require_positives(data: BeirData, split: str, what: str = "no positive judgment") -> Qrels:
    """The split's positive judgments (:meth:`BeirData.positives`); DataError when there are none.

    ``honed mine`` calls it before it loads a model: a split without a positive has no pair to
    mine, and an empty mined.jsonl would only fail later, in ``honed train``.
    """
    positives = data.positives(split)
    if not positives:
        raise _no_positive(data, split, what, "at least one (query, document) judgment with "
                           "score >= 1", "mark the relevant documents with score 1 or more, or "
                           "pick another --split")
    return positives


def _too_few_pairs(data: BeirData, train: Qrels, after: str) -> DataError:
    return data_error(_qrels_file(data, "train"), None, "too few training pairs",
                      f"at least {MIN_TRAIN_PAIRS} (query, document) pair with score >= 1",
                      f"{count_pairs(train)} in {len(train)} queries{after}",
                      "mark the relevant documents of the training queries with score 1 or more")


def _check_leakage_left(data: BeirData, train_all: Qrels, by_id: set[str], by_text: set[str],
                        kept: Qrels) -> None:
    """Refuse a leakage filter that dropped every training query, or left no training pair."""
    if train_all and not kept:
        fix = ("give qrels/test.tsv queries of its own, or pass --allow-leakage to train on the "
               "duplicates anyway" if by_text else
               "give qrels/test.tsv queries of its own (is it a copy of train.tsv?)")
        raise data_error(_qrels_file(data, "train"), None,
                         "the leakage filter drops every training query",
                         "training queries that are not test queries",
                         f"{len(train_all)} of {len(train_all)} dropped: {len(by_id)} with a test "
                         f"query's id, {len(by_text)} with a test query's text", fix)
    if count_pairs(kept) < MIN_TRAIN_PAIRS:
        dropped = len(by_id) + len(by_text)
        raise _too_few_pairs(data, kept, f" after the leakage filter dropped {dropped}" * bool(dropped))


def _user_dev(data: BeirData, test: Qrels, drop: frozenset[str], kept: Qrels) -> tuple[Qrels, Qrels]:
    """(train, dev) with the data's own dev split; DataError when either is left without a pair."""
    dev_all = data.split("dev")
    dev = {q: d for q, d in dev_all.items() if q not in test and q not in drop}
    if not count_pairs(dev):
        n_drop = len(dev_all) - len(dev)
        got = (f"{len(dev)} queries" + ", none with a score >= 1" * bool(dev)
               + f", after dropping {n_drop} that are or duplicate test queries" * bool(n_drop))
        raise data_error(_qrels_file(data, "dev"), None, "no dev query with a positive judgment",
                         "at least one, to choose checkpoints on", got,
                         "mark the relevant documents with score 1 or more in qrels/dev.tsv, or "
                         "delete it to carve dev from train")
    train = {q: d for q, d in kept.items() if q not in dev}
    if count_pairs(train) < MIN_TRAIN_PAIRS:
        raise _too_few_pairs(data, train, ", once the queries of qrels/dev.tsv are left out")
    return train, dev


def _carved_dev(data: BeirData, kept: Qrels, rule: SplitRule, n_dropped: int) -> tuple[Qrels, Qrels]:
    """(train, dev) with dev carved from train; DataError when the carve leaves train no pair."""
    train_file = _qrels_file(data, "train")
    if len(kept) < 2:
        raise data_error(train_file, None, "too few training queries to carve a dev split",
                         "at least 2: one to train on, one to choose checkpoints on",
                         f"{len(kept)}" + f" after the leakage filter dropped {n_dropped}" * bool(n_dropped),
                         "add training queries, or add a qrels/dev.tsv")
    train, dev = carve_dev(kept, rule.dev_fraction, rule.min_dev_queries, rule.seed)
    if count_pairs(train) < MIN_TRAIN_PAIRS:
        taken = len(positives_only(kept))
        raise data_error(train_file, None,
                         "the dev split carved from train takes every query with a positive",
                         f"at least {MIN_TRAIN_PAIRS} (query, positive) pair left to train on",
                         f"{count_pairs(train)}: dev ({rule.describe()}) takes the {taken} such "
                         f"quer{'y' if taken == 1 else 'ies'} and leaves {len(train)} without one",
                         "add training queries with a positive, add a qrels/dev.tsv, or lower "
                         "--min-dev-queries")
    return train, dev


def split_data(
    data: BeirData, rule: SplitRule | None = None, drop: frozenset[str] = frozenset()
) -> Splits:
    """Train, dev and test qrels: dev is the user's ``dev`` split or carved from train.

    Training queries that are also test queries, or that are in ``drop`` (near duplicates of
    test queries), are removed from train and dev before the dev split is carved.

    Raises:
        ValueError: no train or test split (:func:`require_splits`).
        DataError: nothing left to report, choose or train on (see the module docstring).
    """
    rule = rule or SplitRule()
    require_splits(data)
    test = data.split("test")
    if not count_pairs(test):
        raise _no_positive(data, "test", "no positive judgment", "a score >= 1 for at least one "
                           "test query", "mark the relevant documents with score 1 or more: honed "
                           "run reports its metrics on the test queries that have one")
    train_all = data.split("train")
    by_id = set(train_all) & set(test)
    by_text = (set(train_all) & drop) - by_id
    kept = {q: d for q, d in train_all.items() if q not in by_id | by_text}
    _check_leakage_left(data, train_all, by_id, by_text, kept)
    if "dev" in data.splits:
        train, dev = _user_dev(data, test, drop, kept)
    else:
        train, dev = _carved_dev(data, kept, rule, len(by_id | by_text))
    return Splits(train, dev, test, tuple(sorted(by_id | by_text)))


def positives_only(qrels: Qrels) -> Qrels:
    """Only the judgments with score >= 1; queries left without any are dropped."""
    return {
        q: {d: s for d, s in docs.items() if s >= 1}
        for q, docs in qrels.items()
        if any(s >= 1 for s in docs.values())
    }


def sample_train(splits: Splits, n: int | None, seed: int) -> Splits:
    """``splits`` with a seeded sample of ``n`` of its training queries (all when None or fewer).

    Drawn among the training queries with a positive (the others give no row), *after* the dev
    split was carved, so dev and test are the same whatever ``n``: a smaller run is measured on
    the same queries as a full one.

    Example:
        >>> full = Splits({"a": {"d": 1}, "b": {"d": 1}, "c": {"d": 0}}, {}, {}, ())
        >>> sorted(sample_train(full, 1, 42).train), sorted(sample_train(full, None, 42).train)
        (['a'], ['a', 'b', 'c'])
    """
    usable = sorted(positives_only(splits.train))
    if n is None or n >= len(usable):
        return splits
    chosen = random.Random(seed).sample(usable, n)
    return replace(splits, train={q: splits.train[q] for q in sorted(chosen)})
