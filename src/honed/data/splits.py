"""Train, dev and test: which queries may train, which may choose, which may only be reported.

One implementation of the split rules, used by ``honed run``, ``honed check``, ``honed diagnose``
and ``honed evaluate --hybrid``: the test split is used for nothing but the final evaluation; a
training query that is also a test query (or a near duplicate of one) is dropped from training;
dev is the data's own ``dev`` split, or carved from train by query.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from honed.data.beir import BeirData
from honed.types import Qrels

__all__ = [
    "SplitRule",
    "Splits",
    "carve_dev",
    "positives_only",
    "require_splits",
    "split_data",
]

DEFAULT_DEV_FRACTION = 0.1
DEFAULT_MIN_DEV_QUERIES = 30  # below ~30 queries a dev nDCG@10 moves by several points per query
DEFAULT_SEED = 42


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


def split_data(
    data: BeirData, rule: SplitRule | None = None, drop: frozenset[str] = frozenset()
) -> Splits:
    """Train, dev and test qrels: dev is the user's ``dev`` split or carved from train.

    Training queries that are also test queries, or that are in ``drop`` (near duplicates of
    test queries), are removed from train and dev before the dev split is carved.
    """
    rule = rule or SplitRule()
    require_splits(data)
    test = data.split("test")
    train_all = data.split("train")
    dropped = sorted((set(train_all) & set(test)) | (set(train_all) & drop))
    train_all = {q: d for q, d in train_all.items() if q not in set(dropped)}
    if "dev" in data.splits:
        dev = {q: d for q, d in data.split("dev").items() if q not in test and q not in drop}
        train = {q: d for q, d in train_all.items() if q not in dev}
    else:
        train, dev = carve_dev(train_all, rule.dev_fraction, rule.min_dev_queries, rule.seed)
    return Splits(train, dev, test, tuple(dropped))


def positives_only(qrels: Qrels) -> Qrels:
    """Only the judgments with score >= 1; queries left without any are dropped."""
    return {
        q: {d: s for d, s in docs.items() if s >= 1}
        for q, docs in qrels.items()
        if any(s >= 1 for s in docs.values())
    }
