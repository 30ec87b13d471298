"""What ``honed run`` will do with a dataset, decided before any model is loaded.

``honed check`` and ``honed run`` both call :func:`plan_run`, so check says exactly what run
will train, choose and report on, and refuses what run would refuse, with the same message:

- the train and test splits exist (:func:`~honed.data.splits.require_splits`);
- the corpus has at least 2 documents (a training row needs a negative other than its positive,
  and the rotation needs two directions);
- the leakage filter's model-free part: training queries whose text duplicates a test query's,
  exactly or by characters (:func:`~honed.data.leakage.find_duplicates` without embeddings),
  are dropped unless ``allow_leakage``;
- the split rules and minimum sizes of :func:`~honed.data.splits.split_data`.

``honed run`` applies the same rules again once the base model has encoded the queries, with
the near duplicates the embeddings find as well (:func:`leakage_queries` gives both the query
sets), so the plan is what run does unless the base model finds more duplicates.

Example:
    >>> plan = plan_run(load_beir("data/scifact"))  # doctest: +SKIP
    >>> len(plan.splits.train), plan.dev_source  # doctest: +SKIP
    (729, 'carved from train: 10%, at least 30, seed 42')
"""

from __future__ import annotations

from dataclasses import dataclass

from honed.data.beir import BeirData
from honed.data.errors import data_error
from honed.data.leakage import LeakageReport, find_duplicates
from honed.data.splits import SplitRule, Splits, count_pairs, require_splits, split_data

__all__ = ["MIN_DOCUMENTS", "RunPlan", "leakage_queries", "plan_run"]

MIN_DOCUMENTS = 2


@dataclass(frozen=True)
class RunPlan:
    """The splits ``honed run`` will use, and why training queries were dropped.

    Attributes:
        splits: train, dev and test after the model-free leakage filter and the dev carve.
        leakage: exact and character near duplicates of test queries among train + dev.
        allow_leakage: the duplicates were kept (only same-id queries were dropped).
        dev_source: ``"qrels/dev.tsv"`` or ``"carved from train: 10%, at least 30, seed 42"``.
    """

    splits: Splits
    leakage: LeakageReport
    allow_leakage: bool
    dev_source: str

    @property
    def train_pairs(self) -> int:
        """(query, positive) pairs the miner starts from."""
        return count_pairs(self.splits.train)

    def drop_reasons(self) -> dict[str, str]:
        """Dropped training query -> ``"id of a test query"`` or ``"text of a test query"``."""
        return {
            qid: "id of a test query" if qid in self.splits.test else "text of a test query"
            for qid in self.splits.dropped
        }


def leakage_queries(data: BeirData) -> tuple[dict[str, str], dict[str, str]]:
    """``(train + dev queries, test queries)``, ``qid -> text``: what the leakage filter compares."""
    train = {q: data.queries[q] for q in data.split("train")}
    if "dev" in data.splits:
        train.update({q: data.queries[q] for q in data.split("dev")})
    return train, {q: data.queries[q] for q in data.split("test")}


def _require_documents(data: BeirData) -> None:
    if len(data.corpus) < MIN_DOCUMENTS:
        raise data_error(
            data.path / "corpus.jsonl",
            None,
            "too few documents for honed run",
            f"at least {MIN_DOCUMENTS}: a training row needs a document other than "
            "its positive as its negative",
            str(len(data.corpus)),
            "add documents (honed evaluate can still use this folder)",
        )


def plan_run(data: BeirData, rule: SplitRule | None = None, allow_leakage: bool = False) -> RunPlan:
    """The splits ``honed run`` will use on ``data``, or the one-line reason it refuses it.

    Args:
        data: a loaded dataset.
        rule: how dev is carved from train (``RunConfig.split_rule``); None = the defaults.
        allow_leakage: keep training queries that duplicate a test query (``--allow-leakage``).

    Raises:
        ValueError: no train or test split.
        DataError: too few documents, or splits that leave nothing to train, choose or report
            on (the qrels file and the fix in the message).
    """
    rule = rule or SplitRule()
    require_splits(data)
    _require_documents(data)
    report = find_duplicates(*leakage_queries(data))
    splits = split_data(data, rule, frozenset() if allow_leakage else report.leaked_qids)
    source = "qrels/dev.tsv" if "dev" in data.splits else f"carved from train: {rule.describe()}"
    return RunPlan(splits, report, allow_leakage, source)
