"""The rules ``honed check`` and ``honed run`` share (honed.data.plan, honed.data.splits), the
look-alike ids of honed.data.ids, and the messages the catalogue's cases do not reach.

The catalogue (test_bad_inputs.py) checks each refusal on files; these tests build datasets in
memory to reach the remaining branches: a user dev split that takes every training query, the
dropped counts, the leakage reasons and the split options.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from honed.data.beir import BeirData, Document
from honed.data.ids import LookAlikes, canonical_id
from honed.data.plan import plan_run
from honed.data.splits import SplitRule, require_positives, split_data


def dataset(qrels: dict[str, dict[str, dict[str, int]]], texts: dict[str, str] | None = None,
            n_docs: int = 4) -> BeirData:
    """A dataset in memory: documents d1..dN, one query per judged id (text = its id)."""
    corpus = {f"d{i}": Document(f"d{i}", "", f"text {i}") for i in range(1, n_docs + 1)}
    queries = {q: q for split in qrels.values() for q in split}
    queries.update(texts or {})
    return BeirData(Path("/data"), corpus, queries, qrels)


TRAIN = {f"t{i}": {"d1": 1} for i in range(1, 5)}
TEST = {"s1": {"d2": 1}}


def test_plan_is_the_split_of_honed_run_and_says_why_a_query_was_dropped() -> None:
    data = dataset({"train": TRAIN, "test": {**TEST, "t4": {"d3": 1}}},
                   texts={"t1": "what is x?", "s1": "What is X"})
    plan = plan_run(data, SplitRule(0.5, 1, 0))
    assert plan.splits == split_data(data, SplitRule(0.5, 1, 0), frozenset({"t1"}))
    assert plan.drop_reasons() == {"t1": "text of a test query", "t4": "id of a test query"}
    assert plan.dev_source == "carved from train: 50%, at least 1, seed 0"
    kept = plan_run(data, SplitRule(0.5, 1, 0), allow_leakage=True)
    assert kept.drop_reasons() == {"t4": "id of a test query"}  # a shared id is never kept


def test_a_user_dev_split_that_takes_every_training_query_is_refused() -> None:
    data = dataset({"train": TRAIN, "dev": TRAIN, "test": TEST})
    with pytest.raises(ValueError, match=re.escape(
            "/data/qrels/train.tsv: too few training pairs (expected at least 1 (query, document) "
            "pair with score >= 1, got 0 in 0 queries, once the queries of qrels/dev.tsv are "
            "left out); fix: ")):
        plan_run(data)


def test_a_dev_split_emptied_by_the_leakage_filter_says_how_many_it_dropped() -> None:
    data = dataset({"train": TRAIN, "dev": {"s1": {"d2": 1}}, "test": TEST})
    with pytest.raises(ValueError, match=re.escape(
            "/data/qrels/dev.tsv: no dev query with a positive judgment (expected at least one, "
            "to choose checkpoints on, got 0 queries, after dropping 1 that are or duplicate "
            "test queries); fix: ")):
        plan_run(data)
    zeros = dataset({"train": TRAIN, "dev": {"v1": {"d2": 0}}, "test": TEST})
    with pytest.raises(ValueError, match=r"got 1 queries, none with a score >= 1\); fix: "):
        plan_run(zeros)


def test_too_few_training_pairs_counts_what_the_leakage_filter_dropped() -> None:
    data = dataset({"train": {"t1": {"d1": 1}, "t2": {"d2": 0}}, "test": TEST},
                   texts={"t1": "same words", "s1": "Same words!"})
    with pytest.raises(ValueError, match=re.escape(
            "too few training pairs (expected at least 1 (query, document) pair with score >= 1, "
            "got 0 in 1 queries after the leakage filter dropped 1); fix: ")):
        plan_run(data)


def test_a_test_split_without_judgments_and_a_split_without_positives() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "/data/qrels/test.tsv: no positive judgment (expected a score >= 1 for at least one "
            "test query, got no judgments); fix: ")):
        plan_run(dataset({"train": TRAIN, "test": {}}))
    zeros = dataset({"train": {"t1": {"d1": 0}, "t2": {"d2": 0}}, "test": TEST})
    with pytest.raises(ValueError, match=re.escape(
            "/data/qrels/train.tsv: no positive pair to mine (expected at least one (query, "
            "document) judgment with score >= 1, got only 0 in 2 judgments); fix: mark the "
            "relevant documents with score 1 or more, or pick another --split")):
        require_positives(zeros, "train", "no positive pair to mine")
    assert require_positives(zeros, "test") == TEST


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dev_fraction": 1.0}, r"dev_fraction: expected a value in \(0, 1\), got 1\.0"),
        ({"dev_fraction": 0.0}, r"dev_fraction: expected a value in \(0, 1\), got 0\.0"),
        ({"min_dev_queries": 0}, r"min_dev_queries: expected a positive integer, got 0"),
    ],
)
def test_split_rule_names_the_option_it_refuses(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SplitRule(**kwargs)  # type: ignore[arg-type]


def test_look_alikes_name_every_invisible_difference() -> None:
    assert canonical_id(" \u200bcafe\u0301\ufeff ") == "caf\u00e9"
    alike = LookAlikes(["caf\u00e9", "q1 ", "\u200bd7"], "corpus.jsonl")
    assert alike.explain("q1") == ("'q1', which differs from the corpus.jsonl id 'q1 ' only by "
                                   "surrounding spaces")
    assert alike.explain("d7") == ("'d7', which differs from the corpus.jsonl id '\\u200bd7' only "
                                   "by invisible characters (e.g. a zero-width space) around it")
    assert alike.explain(" cafe\u0301") == (
        "' cafe\\u0301', which differs from the corpus.jsonl id 'caf\\xe9' only by surrounding "
        "spaces and Unicode normalisation (NFD vs NFC)")
    assert alike.explain("Q1") is None  # a different case is a visible difference
