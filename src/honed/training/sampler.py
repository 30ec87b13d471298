"""Batches without false in-batch negatives: label-aware no-duplicates batch sampling.

In-batch losses (MultipleNegativesRankingLoss and its cached form, GISTEmbedLoss) score every
query against every positive and negative text of the batch; all but its own positive are pushed
away. sentence-transformers' ``NoDuplicatesBatchSampler`` keeps a batch free of repeated texts,
which stops a query from being pushed away from a *copy* of its own positive. It cannot stop the
other case: query A has positives X and Y (rows ``(A, X, ...)`` and ``(A, Y, ...)``), and X enters
the batch of A's row ``(A, Y, ...)`` as the positive or a mined negative of another query's row.
The loss then pushes A away from X, one of its own positives. On data with several positives per
query (NFCorpus, TREC-COVID, multi-label data) this happens constantly.

:class:`LabelAwareBatchSampler` adds the labels to the batch construction: each row carries the set
of texts it must not share a batch with (all known positives of its query), and a row only joins
a batch when it neither brings nor meets a forbidden text. :func:`false_negative_exposure` counts
how often the stock sampler lets such pairs through, without a model.

Example:
    >>> from datasets import Dataset
    >>> data = Dataset.from_dict({"anchor": ["a", "a", "b"], "positive": ["x", "y", "x2"],
    ...                           "negative_1": ["n1", "n2", "x"]})
    >>> sampler = LabelAwareBatchSampler(data, batch_size=2, drop_last=False,
    ...                                  forbidden=[{"x", "y"}, {"x", "y"}, {"x2"}])
    >>> all(set(batch) != {1, 2} for batch in sampler)  # row 2 brings "x", a positive of "a"
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

from honed.training.config import LossName
from honed.training.dataset import build_dataset

if TYPE_CHECKING:
    from datasets import Dataset

    from honed.mining.rows import MinedRow

__all__ = [
    "Exposure",
    "LabelAwareBatchSampler",
    "build_label_aware_sampler",
    "false_negative_exposure",
    "positives_by_query",
    "text_hash",
]

# Columns that are bookkeeping, not texts (as in sentence-transformers' sampler).
_NOT_TEXT = frozenset({"dataset_name"})
_NOTHING: frozenset[int] = frozenset()


def text_hash(text: str) -> int:
    """A stable signed 64-bit hash of ``text`` (BLAKE2b), equal in every process.

    Python's ``hash`` is salted per process; under ``torchrun`` every process must build the
    same batches, so the sampler needs a hash that does not depend on the process.

    >>> text_hash("a") == text_hash("a") != text_hash("b")
    True
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class LabelAwareBatchSampler(NoDuplicatesBatchSampler):  # type: ignore[misc]
    """``NoDuplicatesBatchSampler`` that also keeps each row away from its forbidden texts.

    A row joins the batch being built only if (a) none of its texts is already in the batch,
    (b) none of its texts is forbidden by a row already in the batch, and (c) none of its own
    forbidden texts is already in the batch. A row that does not fit waits for a later batch of
    the same pass, exactly as in the parent: with ``drop_last=False`` every row appears exactly
    once per epoch; with ``drop_last=True`` incomplete batches are dropped. With no forbidden
    texts the batches equal the parent's for the same seed and epoch.

    One difference: ``len()`` is exact. The parent advertises ``ceil(rows / batch_size)`` and,
    with ``drop_last``, tops a short epoch up with repeated rows from reshuffled passes. Here
    rows conflict far more often (each row of a query with 30 positives forbids all 30, so a row
    of any other query that brings one of them conflicts with all of that query's rows), so
    batches can get smaller and more numerous. The trainer sizes its learning-rate schedule from
    ``len()``, so ``len()`` runs the epoch's pass (cached with its batches, ``rows x 4`` bytes)
    and reports what ``iter()`` will yield.
    Without a ``generator`` a private one is used, so the shuffle is always ``seed + epoch``.

    Texts are compared by a 64-bit hash (:func:`text_hash`). Two different texts with the same
    hash (probability about ``n**2 / 2**65``: 3e-8 for a million texts) are treated as equal,
    which can only defer a row to a later batch, never let a forbidden pair through.

    Memory: one hash per (row, text column), ``rows x columns x 8`` bytes (SciFact's 708 rows x 9
    columns: 51 KB; a million rows x 9: 72 MB), plus one frozenset of hashes per distinct
    forbidden collection (rows that pass the same collection object share it), about
    ``216 + 120 x texts`` bytes each. Texts are hashed one column at a time, so at most one
    column's strings exist at once; the texts themselves are not kept.

    Args:
        dataset: the training dataset; every column except label columns and ``dataset_name``
            holds texts (non-string values are compared by their ``str``).
        batch_size: rows per batch.
        drop_last: drop incomplete batches.
        valid_label_columns: label columns to ignore, as in the parent.
        generator: random generator for the per-epoch shuffle, reseeded with ``seed + epoch``.
        seed: base seed of the shuffle.
        forbidden: per dataset row, the texts that must not share a batch with that row (all
            known positives of its query). None: no constraint beyond the parent's.

    Raises:
        ValueError: ``forbidden`` does not have one entry per dataset row, or an entry is a
            single string instead of a collection of texts.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        forbidden: Sequence[Collection[str]] | None = None,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        n_rows = len(self.dataset)
        if forbidden is not None and len(forbidden) != n_rows:
            raise ValueError(
                f"forbidden: expected one collection of texts per dataset row ({n_rows} rows), "
                f"got {len(forbidden)}; fix: build it from the dataset's anchor column, "
                "e.g. with honed.training.sampler.build_label_aware_sampler"
            )
        columns = [c for c in self.dataset.column_names if c not in _NOT_TEXT]
        hashes = np.empty((n_rows, len(columns)), dtype=np.int64)  # (rows, columns)
        for j, column in enumerate(columns):  # one column's strings at a time
            values = self.dataset[column]
            hashes[:, j] = [text_hash(v if isinstance(v, str) else str(v)) for v in values]
        self._hashes = hashes
        self._forbidden = _hash_forbidden(forbidden, n_rows)
        self._cached: tuple[int, list[np.ndarray]] | None = None  # (epoch, its batches)

    def __len__(self) -> int:
        """The number of batches of the current epoch (runs its pass once, then cached)."""
        return len(self._epoch_batches())

    def __iter__(self) -> Iterator[list[int]]:
        """Batches of row indices for the current epoch (shuffled with ``seed + epoch``)."""
        for batch in self._epoch_batches():
            yield batch.tolist()

    def _epoch_batches(self) -> list[np.ndarray]:
        """The current epoch's batches; recomputed only when the epoch changes."""
        if self._cached is None or self._cached[0] != self.epoch:
            if self.generator is None:
                self.generator = torch.Generator()
            self.generator.manual_seed((self.seed or 0) + self.epoch)
            batches = [np.asarray(b, dtype=np.int32) for b in self._one_pass()]  # (batch,) each
            self._cached = (self.epoch, batches)
        return self._cached[1]

    def _one_pass(self) -> Iterator[list[int]]:
        """One shuffle of the rows into batches; rows that do not fit wait for a later batch.

        The shuffled order is a singly linked list (``following[position]``, -1 at the end), so a
        batch scan unlinks the rows it takes in O(1) and later scans skip them: the pass costs
        the number of rows visited, not batches x rows.
        """
        n_rows = len(self._hashes)
        if n_rows == 0:
            return
        dtype = torch.int32 if n_rows <= np.iinfo(np.int32).max else torch.int64  # as the parent
        order = torch.randperm(n_rows, generator=self.generator, dtype=dtype).numpy()
        following = np.arange(1, n_rows + 1, dtype=np.int64)
        following[-1] = -1
        head = 0
        while head != -1:
            batch: list[int] = []
            taken: set[int] = set()  # hashes of the texts in the batch
            banned: set[int] = set()  # hashes forbidden by the rows in the batch
            position, previous = head, -1
            while position != -1:
                after, index = int(following[position]), int(order[position])
                texts, forbidden = self._hashes[index].tolist(), self._forbidden[index]
                if not (
                    taken.isdisjoint(texts)
                    and banned.isdisjoint(texts)
                    and forbidden.isdisjoint(taken)
                ):
                    previous, position = position, after
                    continue
                batch.append(index)
                if previous == -1:
                    head = after
                else:
                    following[previous] = after
                if len(batch) == self.batch_size:
                    break
                taken.update(texts)
                banned.update(forbidden)
                position = after
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch


def _hash_forbidden(
    forbidden: Sequence[Collection[str]] | None, n_rows: int
) -> list[frozenset[int]]:
    """Per row, the hashes of its forbidden texts; rows passing the same object share one set."""
    if forbidden is None:
        return [_NOTHING] * n_rows
    shared: dict[int, frozenset[int]] = {}
    result = []
    for i, texts in enumerate(forbidden):
        if isinstance(texts, str):
            raise ValueError(
                f"forbidden[{i}]: expected a collection of texts, got the string {texts[:60]!r}; "
                "fix: wrap a single text in a set: {text}"
            )
        key = id(texts)  # the caller's objects stay alive during this loop: ids are unique
        if key not in shared:
            shared[key] = frozenset(text_hash(t) for t in texts) if texts else _NOTHING
        result.append(shared[key])
    return result


def build_label_aware_sampler(
    dataset: Dataset,
    positives: Mapping[str, Collection[str]],
    anchor_column: str = "anchor",
    **kwargs: Any,
) -> LabelAwareBatchSampler:
    """A :class:`LabelAwareBatchSampler` whose rows forbid every known positive of their anchor.

    Args:
        dataset: training rows; ``anchor_column`` holds the query texts.
        positives: query text -> all its positive texts (from the qrels). Queries absent from it
            forbid nothing beyond the no-duplicates rule.
        anchor_column: the column with the query texts.
        **kwargs: the sampler's other arguments (batch_size, drop_last, valid_label_columns,
            generator, seed), as sentence-transformers' ``get_batch_sampler`` passes them.

    Raises:
        ValueError: ``anchor_column`` is not a column of ``dataset``.

    Example:
        >>> from datasets import Dataset
        >>> data = Dataset.from_dict({"anchor": ["a", "b"], "positive": ["x", "y"]})
        >>> sampler = build_label_aware_sampler(data, {"a": {"x", "y"}}, batch_size=2,
        ...                                     drop_last=False)
        >>> sorted(len(b) for b in sampler)
        [1, 1]
    """
    if anchor_column not in dataset.column_names:
        raise ValueError(
            f"anchor_column: expected one of the dataset's columns {dataset.column_names}, "
            f"got {anchor_column!r}; fix: name the column that holds the queries"
        )
    none: frozenset[str] = frozenset()
    forbidden = [positives.get(anchor, none) for anchor in dataset[anchor_column]]
    return LabelAwareBatchSampler(dataset, forbidden=forbidden, **kwargs)


def positives_by_query(rows: Sequence[MinedRow]) -> dict[str, frozenset[str]]:
    """Query text -> the positive texts of its rows: the known positives of a pair file.

    >>> from honed.mining.rows import MinedRow
    >>> row = lambda q, p: MinedRow(q, q, p, p, 1.0, (), (), ())
    >>> positives_by_query([row("q", "x"), row("q", "y"), row("r", "x")])["q"] == {"x", "y"}
    True
    """
    grouped: dict[str, set[str]] = {}
    for row in rows:
        grouped.setdefault(row.query, set()).add(row.positive)
    return {query: frozenset(texts) for query, texts in grouped.items()}


@dataclass(frozen=True)
class Exposure:
    """False negatives of one epoch of batches (see :func:`false_negative_exposure`).

    ``false_negative_pairs`` is what batching controls: a known positive of the query brought in
    by *another* row. ``false_hard_negative_pairs`` is what mining controls: a row's own mined
    negative that is a known positive of its query (e.g. two query ids with the same text and
    different qrels); no sampler can remove those.
    """

    rows: int  # rows placed in batches
    batches: int
    negative_pairs: int  # (query, document) pairs the loss treats as negatives, in-batch + hard
    in_batch_pairs: int  # of those, the document comes from another row of the batch
    false_negative_pairs: int  # in-batch pairs whose document is a known positive of the query
    false_hard_negative_pairs: int  # own mined negatives that are known positives of the query
    rows_exposed: int  # rows with at least one false in-batch negative
    queries_exposed: int  # distinct queries with at least one

    @property
    def fraction(self) -> float:
        """``false_negative_pairs / in_batch_pairs`` (0.0 without any pair)."""
        return self.false_negative_pairs / self.in_batch_pairs if self.in_batch_pairs else 0.0


def false_negative_exposure(
    rows: Sequence[MinedRow],
    positives: Mapping[str, Collection[str]],
    batch_size: int,
    seed: int,
    epoch: int = 0,
    label_aware: bool = False,
) -> Exposure:
    """Count the false in-batch negatives of one epoch, without a model.

    The rows are laid out as training lays them out (columns anchor, positive, negative_1..N)
    and batched by sentence-transformers' stock ``NoDuplicatesBatchSampler`` (or, with
    ``label_aware``, by :class:`LabelAwareBatchSampler`) with ``seed`` and ``epoch``, as the
    trainer does with ``TrainConfig.seed`` on one process. In a batch the loss scores every
    query against all ``batch x (1 + N)`` positive and negative texts; every one but the row's
    own positive is a negative pair, and a false one when it is a known positive of the query.
    False pairs brought by other rows (what batching controls) and by the row's own mined
    negatives (what mining controls) are counted apart; see :class:`Exposure`.

    Args:
        rows: training rows (``honed.mining.rows.read_mined``).
        positives: query text -> all its positive texts.
        batch_size: rows per batch.
        seed: the training seed.
        epoch: which epoch's shuffle (0-based).
        label_aware: batch with :class:`LabelAwareBatchSampler` instead of the stock sampler.

    Example:
        >>> from honed.mining.rows import MinedRow
        >>> row = lambda q, p, n: MinedRow(q, q, p, p, 1.0, (n,), (n,), (0.0,))
        >>> rows = [row("a", "x", "n1"), row("a", "y", "n2"), row("b", "z", "x")]
        >>> stock = false_negative_exposure(rows, {"a": {"x", "y"}}, 2, seed=0)
        >>> aware = false_negative_exposure(rows, {"a": {"x", "y"}}, 2, seed=0, label_aware=True)
        >>> stock.false_negative_pairs, aware.false_negative_pairs
        (1, 0)
    """
    dataset = build_dataset(rows, LossName.CACHED_MNRL)
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "drop_last": False,
        "generator": torch.Generator(),
        "seed": seed,
    }
    sampler = (
        build_label_aware_sampler(dataset, positives, **options)
        if label_aware
        else NoDuplicatesBatchSampler(dataset, **options)
    )
    sampler.set_epoch(epoch)
    return _count_exposure(dataset, sampler, positives)


def _count_exposure(
    dataset: Dataset, batches: Iterable[list[int]], positives: Mapping[str, Collection[str]]
) -> Exposure:
    """Count the negative pairs of ``batches`` of ``dataset`` rows, and the false ones among them."""
    anchors = list(dataset["anchor"])
    documents = [c for c in dataset.column_names if c != "anchor"]  # positive, negative_1..N
    texts = list(zip(*(dataset[c] for c in documents)))  # per row: (positive, negatives...)
    known = {query: frozenset(docs) for query, docs in positives.items()}
    counts = dict.fromkeys(("rows", "batches", "pairs", "in_batch", "false", "hard", "exposed"), 0)
    exposed_queries: set[str] = set()
    for batch in batches:
        candidates = [t for index in batch for t in texts[index]]  # (batch x (1 + N),)
        counts["batches"] += 1
        for index in batch:
            own = known.get(anchors[index], frozenset())
            in_row = sum(t in own for t in texts[index])  # its positive and mined negatives
            in_batch = sum(t in own for t in candidates) - in_row  # brought by other rows
            counts["rows"] += 1
            counts["pairs"] += len(candidates) - 1
            counts["in_batch"] += len(candidates) - len(texts[index])
            counts["false"] += in_batch
            counts["hard"] += in_row - (texts[index][0] in own)
            if in_batch:
                counts["exposed"] += 1
                exposed_queries.add(anchors[index])
    return Exposure(
        rows=counts["rows"],
        batches=counts["batches"],
        negative_pairs=counts["pairs"],
        in_batch_pairs=counts["in_batch"],
        false_negative_pairs=counts["false"],
        false_hard_negative_pairs=counts["hard"],
        rows_exposed=counts["exposed"],
        queries_exposed=len(exposed_queries),
    )
