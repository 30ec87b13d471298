"""Tests for honed.data.pairs (training-pair files: JSONL, CSV, TSV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from honed.data.errors import DataError
from honed.data.pairs import TrainPair, load_pairs


def jsonl(objs: list[Any]) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objs)


def test_pairs_jsonl_negative_styles(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"query": "q a", "positive": "p a"},
        {"query": "q b", "positive": "p b", "negative": "n1"},
        {"query": "q c", "positive": "p c", "negatives": ["n1", "n2"], "extra": 1},
        {"query": "q d", "positive": "p d", "negative_10": "n10", "negative_2": "n2",
         "negative_1": "n1"},
    ]
    path.write_text(jsonl(rows[:2]) + "\n" + jsonl(rows[2:]), "utf-8")  # with a blank line
    assert load_pairs(path) == (
        TrainPair("q a", "p a"),
        TrainPair("q b", "p b", ("n1",)),
        TrainPair("q c", "p c", ("n1", "n2")),
        TrainPair("q d", "p d", ("n1", "n2", "n10")),
    )


def test_pairs_json_lines_extension(tmp_path: Path) -> None:
    path = tmp_path / "pairs.JSON-LINES"
    path.write_text(jsonl([{"query": "q", "positive": "p"}]), "utf-8")
    assert load_pairs(str(path)) == (TrainPair("q", "p"),)


def test_pairs_csv_with_quotes_newlines_and_negatives(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    text = ('\ufeffQuery,positive,negative_1,negative_2\n'
            'plain q,plain p,n1,n2\n'
            '"q, with comma","p with ""quotes""\nand a newline",,n2\n'
            'q3,p3,,\n')
    path.write_text(text, "utf-8")
    assert load_pairs(path) == (
        TrainPair("plain q", "plain p", ("n1", "n2")),
        TrainPair("q, with comma", 'p with "quotes"\nand a newline', ("n2",)),
        TrainPair("q3", "p3"),
    )


def test_pairs_tsv(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("query\tpositive\tnegative\r\nq, 1\tp\tn\r\n\r\n", "utf-8")
    assert load_pairs(path) == (TrainPair("q, 1", "p", ("n",)),)


def test_train_pair_coerces_negatives_to_tuple() -> None:
    pair = TrainPair("q", "p", ["n"])  # type: ignore[arg-type]
    assert pair.negatives == ("n",) and hash(pair)


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ({"positive": "p", "text": "t"}, r"pairs\.jsonl:2: missing or repeated column \(expected "
                                         r"one 'query' and one 'positive' \(plus optional "
                                         r"negative\*\), got \['positive', 'text'\]\)"),
        ({"anchor": "q", "positive": "p"}, r"fix: name the columns query, positive; rename "
                                           r"'anchor' to 'query'"),
        ({"query": "", "positive": "p"}, r"pairs\.jsonl:2: bad 'query' \(expected non-empty text, "
                                         r"got ''\); fix: fill in 'query' or remove this line"),
        ({"query": "q", "positive": "  "}, r"pairs\.jsonl:2: bad 'positive' .*got '  '"),
        ({"query": "q", "positive": 3}, r"bad 'positive' .*got 3"),
        ({"query": "q", "positive": "p", "negatives": "n"}, r"pairs\.jsonl:2: bad 'negatives' "
                                                             r"\(expected a list of strings"),
        ({"query": "q", "positive": "p", "negatives": ["n", ""]}, r"pairs\.jsonl:2: bad "
                                                                   r"'negative'"),
        ({"query": "q", "positive": "p", "negative": None}, r"bad 'negative' .*got None"),
        (["q", "p"], r"pairs\.jsonl:2: line is not a JSON object"),
    ],
)
def test_bad_jsonl_pairs(tmp_path: Path, row: Any, pattern: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(jsonl([{"query": "q", "positive": "p"}, row]), "utf-8")
    with pytest.raises(DataError, match=pattern):
        load_pairs(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("question,answer\nq,p\n", r"pairs\.csv:1: missing or repeated column .*got "
                                   r"\['question', 'answer'\]\); fix: name the columns"),
        ("query,query,positive\nq,q,p\n", r"pairs\.csv:1: missing or repeated column"),
        ("", r"pairs\.csv:1: missing or repeated column .*got \[\]"),
        ('query,positive\nq,p\n"multi\nline",p\n,p\n', r"pairs\.csv:5: bad 'query' \(expected "
                                                        r"non-empty text, got ''\)"),
        ("query,positive\nq,p\nq,p,extra\n", r"pairs\.csv:3: wrong number of cells \(expected 2 "
                                             r"as in the header, got 3\); fix: quote cells"),
        ("query,positive\n", r"pairs\.csv: no training pairs \(expected at least one pair"),
    ],
)
def test_bad_csv_pairs(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text, "utf-8")
    with pytest.raises(DataError, match=pattern):
        load_pairs(path)


def test_non_utf8_csv_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"query,positive\nq,p\nq,caf\xe9\n")
    with pytest.raises(DataError, match=r"pairs\.csv:3: text is not valid UTF-8 \(expected UTF-8 "
                                        r"text, got byte 0xe9 at column 6\)"):
        load_pairs(path)


def test_empty_jsonl_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n\n", "utf-8")
    with pytest.raises(DataError, match=r"pairs\.jsonl: no training pairs"):
        load_pairs(path)


def test_pairs_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown pair-file extension '\.parquet' \(expected one "
                                         r"of \.jsonl, \.json-lines, \.csv, \.tsv\)"):
        load_pairs(tmp_path / "pairs.parquet")


def test_pairs_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pairs\.jsonl: pair file not found"):
        load_pairs(tmp_path / "pairs.jsonl")


def test_pairs_are_exported_from_the_package() -> None:
    import honed

    assert honed.load_pairs is load_pairs and honed.TrainPair is TrainPair
    assert "load_pairs" in honed.__all__ and "TrainPair" in honed.__all__
