"""Property tests (hypothesis): loaders round-trip what they are given; metrics keep their laws.

Loaders:
    - a random BEIR dataset written to disk (ids from a safe alphabet, digits-only ids included
      and sometimes written as JSON numbers; any Unicode text without NUL; graded scores 0..3;
      with or without BOM, CRLF and qrels header) loads back as exactly the same data;
    - random training pairs written as CSV/TSV (texts with quotes, commas, tabs and newlines)
      and as JSONL load back as exactly the same pairs.

Metrics (``evaluate`` / ``per_query``) on random qrels and runs:
    - every value is in [0, 1], give or take 1e-12 (a perfect ranking of 8+ documents can
      score nDCG 1.0000000000000002 before a fix; a test now pins exactly 1.0);
    - recall@k, mrr@k and map@k are non-decreasing in k, up to 1e-12 of float rounding
      (ndcg@k is not monotone: see the last test);
    - the order of the run's (and qrels') dicts does not matter;
    - adding documents scored strictly below every document of a query's run:
        * when none of them is relevant, no metric of any query changes, with or without a
          cutoff (they only add zero-gain ranks after all existing ones), up to 1e-12 of float
          rounding;
        * when some are relevant, no ``@k`` metric changes, exactly, for the queries whose run
          already held at least k documents (the top k is unchanged); other values may change;
    - adding to the run a query that is not in the qrels, or to the qrels a query without a
      relevant document, changes nothing;
    - ``evaluate`` is the mean of ``per_query`` over the evaluated queries; inputs are not
      modified.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from honed.data.beir import Document, load_beir
from honed.data.pairs import TrainPair, load_pairs
from honed.evaluation.metrics import evaluate, per_query

PROPERTY = settings(max_examples=50, deadline=None)

# --------------------------------------------------------------------------- strategies

SAFE_ID = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=10),
    st.from_regex(r"[0-9]{1,6}", fullmatch=True),  # digits only, leading zeros included
)
# Any Unicode character but NUL (a NUL byte is read as a sign of UTF-16; see test_bad_inputs).
CHAR = st.characters(codec="utf-8", exclude_characters="\x00")
TEXT = st.text(CHAR, min_size=1, max_size=40).filter(str.strip)  # blank texts are errors
TITLE = st.text(CHAR, max_size=20)
# Pair texts lean on the characters that CSV has to quote.
PAIR_TEXT = st.text(st.one_of(st.sampled_from(list('",\n\r\t \'')), CHAR), min_size=1,
                    max_size=30).filter(str.strip)


@st.composite
def beir_datasets(draw: st.DrawFn) -> dict[str, Any]:
    """corpus (id -> (title, text)), queries, qrels per split, and how to write them."""
    corpus = draw(st.dictionaries(SAFE_ID, st.tuples(TITLE, TEXT), min_size=1, max_size=8))
    queries = draw(st.dictionaries(SAFE_ID, TEXT, min_size=1, max_size=6))
    judgments = st.dictionaries(st.sampled_from(sorted(queries)), st.dictionaries(
        st.sampled_from(sorted(corpus)), st.integers(0, 3), min_size=1, max_size=4), max_size=6)
    splits = draw(st.lists(st.sampled_from(["train", "test", "dev"]), min_size=1, max_size=3,
                           unique=True))
    return {
        "corpus": corpus,
        "queries": queries,
        "qrels": {name: draw(judgments) for name in splits},
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "bom": draw(st.booleans()),
        "header": draw(st.booleans()),
        "ascii": draw(st.booleans()),
        "int_ids": draw(st.booleans()),  # write canonical digit ids as JSON numbers
    }


def write_beir(root: Path, ds: dict[str, Any]) -> None:
    nl, bom = ds["newline"], "\ufeff" if ds["bom"] else ""

    def put(name: str, lines: list[str]) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((bom + "".join(line + nl for line in lines)).encode("utf-8"))

    def ident(value: str) -> str | int:
        canonical = value.isdigit() and str(int(value)) == value
        return int(value) if ds["int_ids"] and canonical else value

    def dump(obj: dict[str, Any]) -> str:
        return json.dumps(obj, ensure_ascii=ds["ascii"])

    put("corpus.jsonl", [dump({"_id": ident(i), "title": title, "text": text})
                         for i, (title, text) in ds["corpus"].items()])
    put("queries.jsonl", [dump({"_id": ident(i), "text": text}) for i, text in ds["queries"].items()])
    for split, qrels in ds["qrels"].items():
        header = ["query-id\tcorpus-id\tscore"] if ds["header"] else []
        put(f"qrels/{split}.tsv", header + [f"{q}\t{d}\t{s}" for q, docs in qrels.items()
                                            for d, s in docs.items()])


# --------------------------------------------------------------------------- loaders


@PROPERTY
@given(beir_datasets())
def test_beir_round_trip(ds: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_beir(Path(tmp), ds)
        data = load_beir(tmp)
    assert list(data.corpus) == list(ds["corpus"])  # file order
    assert dict(data.corpus) == {i: Document(i, title, text)
                                 for i, (title, text) in ds["corpus"].items()}
    assert list(data.queries) == list(ds["queries"])
    assert dict(data.queries) == ds["queries"]
    assert {name: dict(split) for name, split in data.qrels.items()} == ds["qrels"]
    assert all(type(s) is int for split in data.qrels.values() for docs in split.values()
               for s in docs.values())


def _write_csv(path: Path, pairs: list[TrainPair], delimiter: str, line_end: str) -> None:
    width = max(len(p.negatives) for p in pairs)
    buffer = io.StringIO(newline="")
    # QUOTE_MINIMAL quotes a cell holding a character of the line terminator; with "\n" alone a
    # bare "\r" would stay unquoted, and every CSV reader takes a bare "\r" for a line break.
    quoting = csv.QUOTE_MINIMAL if line_end == "\r\n" else csv.QUOTE_ALL
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end, quoting=quoting)
    writer.writerow(["query", "positive"] + [f"negative_{i + 1}" for i in range(width)])
    for p in pairs:  # a pair with fewer negatives leaves the last cells empty
        writer.writerow([p.query, p.positive, *p.negatives] + [""] * (width - len(p.negatives)))
    path.write_bytes(buffer.getvalue().encode("utf-8"))


PAIRS = st.lists(st.builds(TrainPair, PAIR_TEXT, PAIR_TEXT,
                           st.lists(PAIR_TEXT, max_size=3).map(tuple)), min_size=1, max_size=6)


@PROPERTY
@given(PAIRS, st.sampled_from([(".csv", ","), (".tsv", "\t")]), st.sampled_from(["\n", "\r\n"]))
def test_pairs_csv_round_trip(pairs: list[TrainPair], kind: tuple[str, str],
                              line_end: str) -> None:
    suffix, delimiter = kind
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"pairs{suffix}"
        _write_csv(path, pairs, delimiter, line_end)
        assert load_pairs(path) == tuple(pairs)


@PROPERTY
@given(PAIRS, st.booleans())
def test_pairs_jsonl_round_trip(pairs: list[TrainPair], ascii_only: bool) -> None:
    lines = []
    for p in pairs:
        row: dict[str, Any] = {"query": p.query, "positive": p.positive}
        if len(p.negatives) == 1:
            row["negative"] = p.negatives[0]
        elif p.negatives:
            row["negatives"] = list(p.negatives)
        lines.append(json.dumps(row, ensure_ascii=ascii_only) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        path.write_text("".join(lines), "utf-8")
        assert load_pairs(path) == tuple(pairs)


# --------------------------------------------------------------------------- metrics

QIDS = [f"q{i}" for i in range(5)]
DOCS = [f"d{i}" for i in range(12)]
KS = range(1, 13)
METRICS = [*(f"{m}@{k}" for m in ("ndcg", "mrr", "recall", "map", "precision") for k in (1, 3, 10)),
           "ndcg", "mrr", "map"]
SCORE = st.floats(-1000, 1000, allow_nan=False)  # bounded, so "min - 1" is strictly below


@st.composite
def qrels_and_runs(draw: st.DrawFn) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Qrels with at least one relevant judgment, and a run over an overlapping doc pool."""
    qrels = draw(st.dictionaries(st.sampled_from(QIDS), st.dictionaries(
        st.sampled_from(DOCS), st.integers(0, 3), min_size=1, max_size=6), min_size=1))
    assume(any(rel >= 1 for docs in qrels.values() for rel in docs.values()))
    # Few distinct scores, so ties (broken by doc id) are common.
    scores = st.one_of(SCORE, st.sampled_from([0.0, 0.5, 1.0]))
    run = draw(st.dictionaries(st.sampled_from(QIDS), st.dictionaries(
        st.sampled_from(DOCS), scores, max_size=10)))
    return qrels, run


def _in_unit_interval(values: list[float]) -> bool:
    """In [0, 1], give or take rounding: see test_perfect_ranking_scores_ndcg_exactly_1."""
    return all(-1e-12 <= v <= 1.0 + 1e-12 for v in values)


@PROPERTY
@given(qrels_and_runs())
def test_every_metric_is_in_0_1_and_evaluate_is_the_mean_of_per_query(case: Any) -> None:
    qrels, run = case
    before = copy.deepcopy((qrels, run))
    table = per_query(qrels, run, METRICS)
    means = evaluate(qrels, run, METRICS)
    assert (qrels, run) == before  # neither input modified
    assert _in_unit_interval([v for values in table.values() for v in values.values()])
    assert _in_unit_interval(list(means.values()))
    evaluated = {q for q, docs in qrels.items() if max(docs.values()) >= 1}
    for name in METRICS:
        assert set(table[name]) == evaluated
        assert means[name] == pytest.approx(math.fsum(table[name].values()) / len(evaluated),
                                            rel=1e-12, abs=1e-12)


@PROPERTY
@given(qrels_and_runs())
def test_recall_mrr_and_map_are_non_decreasing_in_k(case: Any) -> None:
    qrels, run = case
    for family in ("recall", "mrr", "map"):
        names = [f"{family}@{k}" for k in KS]
        table = per_query(qrels, run, names)
        for qid in table[names[0]]:
            values = [table[name][qid] for name in names]
            # 1e-12: numpy sums 8+ numbers pairwise, so map@8 may round 1 ulp under map@7.
            assert all(b >= a - 1e-12 for a, b in zip(values, values[1:])), (family, values)


def _shuffled(nested: dict[str, dict[str, Any]], rng: random.Random) -> dict[str, dict[str, Any]]:
    outer = list(nested.items())
    rng.shuffle(outer)
    result = {}
    for key, inner in outer:
        items = list(inner.items())
        rng.shuffle(items)
        result[key] = dict(items)
    return result


@PROPERTY
@given(qrels_and_runs(), st.randoms(use_true_random=False))
def test_dict_order_does_not_matter(case: Any, rng: random.Random) -> None:
    qrels, run = case
    assert per_query(_shuffled(qrels, rng), _shuffled(run, rng), METRICS) == \
        per_query(qrels, run, METRICS)


def _append_below(run: dict[str, dict[str, float]], extra: dict[str, list[str]]
                  ) -> dict[str, dict[str, float]]:
    """A copy of ``run`` with ``extra[qid]`` scored strictly below that query's documents."""
    grown = {qid: dict(docs) for qid, docs in run.items()}
    for qid, new_docs in extra.items():
        docs = grown.setdefault(qid, {})
        floor = min(docs.values(), default=0.0)
        for i, doc_id in enumerate(d for d in new_docs if d not in docs):
            docs[doc_id] = floor - 1.0 - i
    return grown


@PROPERTY
@given(qrels_and_runs(), st.data())
def test_adding_irrelevant_documents_below_changes_nothing(case: Any, data: st.DataObject) -> None:
    qrels, run = case
    pool = [f"x{i}" for i in range(6)] + DOCS  # unjudged ids and judged ones
    extra = data.draw(st.dictionaries(st.sampled_from(QIDS), st.lists(
        st.sampled_from(pool), max_size=6)))
    # Keep only ids that are not relevant (score >= 1) for that query.
    extra = {q: [d for d in docs if qrels.get(q, {}).get(d, 0) < 1] for q, docs in extra.items()}
    after, before = per_query(qrels, _append_below(run, extra), METRICS), per_query(qrels, run, METRICS)
    # Equal up to rounding: a longer array of gains (zeros appended) may be summed in another
    # order by numpy's pairwise summation.
    assert after == {name: pytest.approx(values, rel=1e-12, abs=1e-15)
                     for name, values in before.items()}


@PROPERTY
@given(qrels_and_runs(), st.data())
def test_adding_any_documents_below_keeps_the_top_k_metrics(case: Any,
                                                             data: st.DataObject) -> None:
    qrels, run = case
    extra = data.draw(st.dictionaries(st.sampled_from(QIDS), st.lists(
        st.sampled_from(DOCS), min_size=1, max_size=6)))  # relevant ones included
    at_k = [name for name in METRICS if "@" in name]
    before, after = per_query(qrels, run, at_k), per_query(qrels, _append_below(run, extra), at_k)
    for name in at_k:
        k = int(name.split("@")[1])
        for qid, value in before[name].items():
            if len(run.get(qid, {})) >= k:
                assert after[name][qid] == value, (name, qid)


@PROPERTY
@given(qrels_and_runs(), st.dictionaries(st.sampled_from(DOCS), SCORE, max_size=5),
       st.dictionaries(st.sampled_from(DOCS), st.just(0), min_size=1, max_size=5))
def test_queries_outside_the_evaluated_set_change_nothing(
        case: Any, extra_run: dict[str, float], zero_judgments: dict[str, int]) -> None:
    qrels, run = case
    expected = per_query(qrels, run, METRICS)
    # A run query that is not in the qrels.
    assert per_query(qrels, {**run, "unjudged-query": extra_run}, METRICS) == expected
    # A qrels query with no relevant document (only score 0), ranked or not.
    qrels_more = {**qrels, "no-positive": zero_judgments}
    run_more = {**run, "no-positive": extra_run}
    assert per_query(qrels_more, run_more, METRICS) == expected
    assert evaluate(qrels_more, run_more, METRICS) == evaluate(qrels, run, METRICS)


def test_perfect_ranking_scores_ndcg_exactly_1() -> None:
    qrels = {"q": {"a": 3, "b": 3, "c": 2, "d": 2, "e": 1}}
    run = {"q": {doc: float(8 - i) for i, doc in enumerate("abcdexyz")}}  # ideal, then 3 misses
    assert evaluate(qrels, run, ["ndcg"]) == {"ndcg": 1.0}


def test_ndcg_at_k_is_not_monotone_in_k() -> None:
    """Why the monotonicity property leaves ndcg@k out: the ideal DCG grows with k too."""
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": {"a": 3.0, "x": 2.0, "b": 1.0}}
    values = evaluate(qrels, run, ["ndcg@1", "ndcg@2"])
    assert values["ndcg@1"] == 1.0 and values["ndcg@2"] < 1.0
