"""Every malformed input of the catalogue in tests/data/bad/ (described in its CATALOGUE.md).

An error case must raise a one-line message that names the file, the line where there is one,
and a fix, and ``honed check`` / ``honed train`` must turn it into exit code 1 without a
traceback. A warning or legal case must load, say what it found, and load the right values.
A refused case loads, but the split rules that ``honed check`` and ``honed run`` share refuse
it: ``check`` exits 1 with the rule's one-line message and ``run`` raises the same message
before it loads a model. The bad option values and commands of the catalogue's second table
fail with a message naming the option, before any encoding.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from honed.cli.main import main
from honed.data.beir import BeirData, Document, load_beir
from honed.data.errors import DataError
from honed.data.pairs import TrainPair, load_pairs
from honed.data.plan import plan_run
from honed.data.splits import SplitRule, positives_only, require_splits, split_data
from honed.evaluation.metrics import per_query

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"

# Cases too big to check in hold a placeholder that the test expands in a copy.
EXPANSIONS = {"@@2MB@@": "lorem " * 350_000 + "ipsum", "@@200KB@@": "x" * 200_000}


@dataclass(frozen=True)
class Case:
    """One catalogue entry; ``fragment`` is part of the error message or of one warning."""

    name: str  # folder (BEIR) or file (pair file) under tests/data/bad/
    outcome: str  # "error", "run error", "refused", "train error", "warning" or "loads"
    fragment: str = ""
    file: str = ""  # the file the message names, relative to the case ("" = the case itself)
    line: int | None = None
    error: type[Exception] = DataError
    warns: str = ""  # a refused case: part of the loader's one warning ("" = no warning)

    @property
    def is_pairs(self) -> bool:
        return "." in self.name


def error(name: str, file: str, line: int | None, fragment: str,
          kind: type[Exception] = DataError) -> Case:
    return Case(name, "error", fragment, file, line, kind)


def warning(name: str, file: str, fragment: str) -> Case:
    return Case(name, "warning", fragment, file)


def loads(name: str, file: str = "") -> Case:
    return Case(name, "loads", "", file)


def refused(name: str, file: str, fragment: str, warns: str = "") -> Case:
    """Loads, but the split rules of `honed check` and `honed run` refuse it."""
    return Case(name, "refused", fragment, file, None, DataError, warns)


CASES = [
    # ------------------------------------------------------------- BEIR: corpus and queries
    error("corpus_broken_json", "corpus.jsonl", 4,
          "malformed JSON (expected one JSON object per line, got Unterminated string"),
    error("corpus_line_is_array", "corpus.jsonl", 4,
          "line is not a JSON object (expected an object {...}, got list ['d4'"),
    error("corpus_deeply_nested_json", "corpus.jsonl", 4, "malformed JSON (expected one JSON "
          "object per line, got nesting too deep)"),
    error("corpus_huge_integer_id", "corpus.jsonl", 4,
          "malformed JSON (expected one JSON object per line, got 'Exceeds the limit (4300 digits)"),
    error("corpus_latin1_bytes", "corpus.jsonl", 4,
          "got byte 0xe9 at column 27); fix: re-save the file as UTF-8 (e.g. `iconv -f latin1"),
    error("corpus_utf16_bom", "corpus.jsonl", 1,
          "got a UTF-16 byte-order mark); fix: re-save the file as UTF-8 (e.g. `iconv -f utf-16"),
    error("queries_utf16_no_bom", "queries.jsonl", 1,
          "got a NUL byte at column 2, as in UTF-16); fix: re-save the file as UTF-8"),
    error("corpus_missing_id", "corpus.jsonl", 4,
          'bad "_id" (expected a non-empty string, got no "_id" key)'),
    error("corpus_duplicate_id", "corpus.jsonl", 4,
          "duplicate _id 'd2' (expected unique ids, got the same id on lines 2 and 4)"),
    error("queries_duplicate_id", "queries.jsonl", 4,
          "duplicate _id 'q1' (expected unique ids, got the same id on lines 1 and 4)"),
    error("corpus_empty_text", "corpus.jsonl", 4,
          "empty 'text' (expected non-empty text or a non-empty 'title', got '')"),
    error("corpus_whitespace_text", "corpus.jsonl", 4,
          "empty 'text' (expected non-empty text or a non-empty 'title', got ' \\t\\n ')"),
    error("queries_empty_text", "queries.jsonl", 4, "empty 'text' (expected non-empty text, "
          "got '')"),
    error("corpus_text_not_string", "corpus.jsonl", 4, "bad 'text' (expected a string, got int "
          "42)"),
    error("corpus_empty", "corpus.jsonl", None, "no documents (expected at least one valid line"),
    loads("corpus_utf8_bom", "corpus.jsonl, queries.jsonl, qrels/train.tsv"),
    loads("crlf_line_endings", "all four files"),
    loads("blank_lines", "corpus.jsonl, queries.jsonl, qrels/train.tsv"),
    warning("corpus_numeric_ids", "corpus.jsonl",
            'corpus.jsonl: 2 numeric "_id" value(s) read as strings (first on line 1)'),
    warning("queries_numeric_ids", "queries.jsonl",
            'queries.jsonl: 3 numeric "_id" value(s) read as strings'),
    warning("corpus_title_only", "corpus.jsonl",
            "corpus.jsonl: 1 document has a title but no text; it is indexed by title alone"),
    refused("corpus_one_document", "corpus.jsonl", "too few documents for honed run (expected "
            "at least 2: a training row needs a document other than its positive as its "
            "negative, got 1); fix: add documents",
            "corpus.jsonl: only one document, so retrieval is trivial"),
    error("corpus_gzip", "corpus.jsonl", None, "is gzip-compressed (expected UTF-8 text, got the "
          "gzip magic bytes 0x1f 0x8b); fix: gunzip it"),
    loads("corpus_enormous_line", "corpus.jsonl"),
    # ------------------------------------------------------------- BEIR: missing files
    error("missing_corpus", "", None, "missing corpus.jsonl (expected corpus.jsonl, "
          "queries.jsonl and qrels/<split>.tsv); fix: add the missing files", FileNotFoundError),
    error("missing_queries", "", None, "missing queries.jsonl (expected corpus.jsonl",
          FileNotFoundError),
    error("missing_qrels_folder", "", None, "missing qrels/*.tsv (expected corpus.jsonl",
          FileNotFoundError),
    error("qrels_not_tsv", "", None, "missing qrels/*.tsv (expected corpus.jsonl",
          FileNotFoundError),
    error("nested_dataset_folder", "", None, "missing corpus.jsonl, queries.jsonl, qrels/*.tsv "
          "(expected", FileNotFoundError),
    error("corpus_gz_only", "", None, "missing corpus.jsonl (expected corpus.jsonl, queries.jsonl "
          "and qrels/<split>.tsv; found corpus.jsonl.gz, which is compressed); fix: gunzip",
          FileNotFoundError),
    Case("qrels_missing_test_split", "run error", "qrels: no test.tsv (found: train); fix: honed "
         "run needs qrels/train.tsv to train", "qrels", None, ValueError),
    # ------------------------------------------------------------- BEIR: qrels
    error("qrels_unknown_query_id", "qrels/train.tsv", 4,
          "unknown query-id (expected an _id from queries.jsonl, got 'q9')"),
    error("qrels_unknown_doc_id", "qrels/train.tsv", 4,
          "unknown corpus-id (expected an _id from corpus.jsonl, got 'd9')"),
    error("qrels_score_not_a_number", "qrels/train.tsv", 4,
          "bad score (expected a non-negative integer such as 0, 1 or 2, got 'abc')"),
    error("qrels_score_fraction", "qrels/train.tsv", 4,
          "bad score (expected a non-negative integer such as 0, 1 or 2, got '0.5')"),
    error("qrels_score_negative", "qrels/train.tsv", 4,
          "bad score (expected a non-negative integer such as 0, 1 or 2, got '-1')"),
    error("qrels_score_overflow", "qrels/train.tsv", 4, "score too large (expected a relevance "
          "grade of at most 2147483647, got '1000000000000000000000000000000'); fix:"),
    error("qrels_wrong_header", "qrels/train.tsv", 1, "first line is neither the header nor a "
          "judgment (expected the header 'query-id<TAB>corpus-id<TAB>score', got"),
    error("qrels_two_columns", "qrels/train.tsv", 4,
          "wrong number of columns (expected 3 tab-separated columns"),
    error("qrels_trec_four_columns", "qrels/train.tsv", 2,
          "); fix: drop the second column of these TREC-style qrels"),
    error("qrels_trec_format", "qrels/test.tsv", 1,
          "fix: drop the second column of these TREC-style qrels, and separate the columns with "
          "tabs"),
    error("qrels_space_separated", "qrels/train.tsv", 4,
          "got 1 in 'q1 d3 1'); fix: separate the columns with tabs, not spaces"),
    error("qrels_conflicting_duplicate", "qrels/train.tsv", 4,
          "conflicting scores for ('q1', 'd1') (expected one score per (query-id, corpus-id)"),
    error("qrels_latin1_bytes", "qrels/test.tsv", 4,
          "text is not valid UTF-8 (expected UTF-8 text, got byte 0xe9 at column 5)"),
    error("qrels_id_with_tab", "qrels/train.tsv", 4, "query-id 'q\\t4' contains a tab (expected "
          "3 tab-separated columns query-id, corpus-id, score, got 4: the tab inside the id "
          "splits it); fix: remove the tab from the id in queries.jsonl and in this file"),
    error("qrels_id_surrounding_spaces", "qrels/train.tsv", 2, "unknown query-id (expected an _id "
          "from queries.jsonl, got 'q1', which differs from the queries.jsonl id 'q1 ' only by "
          "surrounding spaces); fix: make the two ids identical"),
    error("qrels_id_unicode_nfd", "qrels/train.tsv", 4, "unknown corpus-id (expected an _id from "
          "corpus.jsonl, got 'de\\u0301', which differs from the corpus.jsonl id 'd\\xe9' only by "
          "Unicode normalisation (NFD vs NFC)); fix: make the two ids identical"),
    warning("qrels_missing_header", "qrels/train.tsv",
            "train.tsv: no header line; line 1 was read as data"),
    loads("qrels_underscore_header", "qrels/train.tsv"),
    loads("qrels_score_integral_float", "qrels/train.tsv"),
    warning("qrels_query_without_positive", "qrels/test.tsv",
            "test: 1 query has no positive judgment; they are excluded from metrics"),
    refused("qrels_query_in_train_and_test", "qrels/train.tsv", "too few training queries to "
            "carve a dev split (expected at least 2: one to train on, one to choose checkpoints "
            "on, got 1 after the leakage filter dropped 1); fix: add training queries, or add a "
            "qrels/dev.tsv", "train/test: 1 query id(s) appear in both splits (leakage), e.g. 'q1'"),
    warning("qrels_duplicate_line", "qrels/train.tsv",
            "train.tsv: 1 repeated judgment(s) ignored (first on line 4)"),
    refused("qrels_header_only_split", "qrels/dev.tsv", "no dev query with a positive judgment "
            "(expected at least one, to choose checkpoints on, got 0 queries); fix: mark the "
            "relevant documents with score 1 or more in qrels/dev.tsv, or delete it to carve dev "
            "from train", "dev: no judgments in qrels/dev.tsv"),
    # ------------------------------------------------------------- BEIR: what `honed run` refuses
    refused("refused_test_equal_train", "qrels/train.tsv", "the leakage filter drops every "
            "training query (expected training queries that are not test queries, got 2 of 2 "
            "dropped: 2 with a test query's id, 0 with a test query's text); fix: give "
            "qrels/test.tsv queries of its own (is it a copy of train.tsv?)",
            "train/test: 2 query id(s) appear in both splits (leakage)"),
    refused("refused_test_copies_train_texts", "qrels/train.tsv", "the leakage filter drops every "
            "training query (expected training queries that are not test queries, got 2 of 2 "
            "dropped: 0 with a test query's id, 2 with a test query's text); fix:"),
    refused("refused_test_all_zero", "qrels/test.tsv", "no positive judgment (expected a score >= 1 "
            "for at least one test query, got only 0 in 2 judgments); fix: mark the relevant "
            "documents with score 1 or more",
            "test: 1 query has no positive judgment; they are excluded from metrics"),
    refused("refused_dev_carve_takes_every_positive", "qrels/train.tsv", "the dev split carved "
            "from train takes every query with a positive (expected at least 1 (query, positive) "
            "pair left to train on, got 0: dev (10%, at least 30, seed 42) takes the 1 such query "
            "and leaves 1 without one); fix: add training queries with a positive, add a "
            "qrels/dev.tsv, or lower --min-dev-queries",
            "train: 1 query has no positive judgment"),
    refused("refused_no_training_pair", "qrels/train.tsv", "too few training pairs (expected at "
            "least 1 (query, document) pair with score >= 1, got 0 in 2 queries); fix: mark the "
            "relevant documents of the training queries with score 1 or more",
            "train: 2 queries have no positive judgment"),
    # ------------------------------------------------------------- pair files
    error("pairs_missing_positive.csv", "", 1,
          "missing or repeated column (expected one 'query' and one 'positive'"),
    error("pairs_anchor_column.csv", "", 1, "fix: name the columns query, positive; rename "
          "'anchor' to 'query'"),
    error("pairs_semicolon_separated.csv", "", 1,
          "separate the columns with ',' in a .csv file or with tabs in a .tsv file"),
    error("pairs_missing_query_key.jsonl", "", 2,
          "missing or repeated column (expected one 'query' and one 'positive'"),
    error("pairs_empty_query.csv", "", 3, "bad 'query' (expected non-empty text, got '')"),
    error("pairs_whitespace_positive.jsonl", "", 2,
          "bad 'positive' (expected non-empty text, got '  ')"),
    error("pairs_non_string_negative.jsonl", "", 2,
          "bad 'negative' (expected non-empty text, got 7)"),
    error("pairs_negatives_not_a_list.jsonl", "", 2,
          "bad 'negatives' (expected a list of strings, got 'Bed nets.')"),
    error("pairs_broken_json.jsonl", "", 2,
          "malformed JSON (expected one JSON object per line, got Expecting value at column 43)"),
    error("pairs_first_line_broken_json.jsonl", "", 1, "malformed JSON (expected one JSON object "
          "per line, got Expecting ',' delimiter"),
    error("pairs_line_is_array.jsonl", "", 2,
          "line is not a JSON object (expected an object {...}, got list"),
    error("pairs_wrong_cell_count.csv", "", 3,
          "wrong number of cells (expected 3 as in the header, got 4)"),
    error("pairs_unclosed_quote.csv", "", 3,
          "bad CSV record (expected cells separated by ','"),
    error("pairs_text_after_closing_quote.csv", "", 3,
          "inner quotes doubled, got ',' expected after '\"')"),
    error("pairs_enormous_cell.csv", "", 3,
          "got a cell longer than 131072 characters, usually an unclosed quote)"),
    error("pairs_latin1_bytes.csv", "", 3,
          "text is not valid UTF-8 (expected UTF-8 text, got byte 0xe9 at column 4)"),
    error("pairs_utf16.tsv", "", 1, "got a UTF-16 byte-order mark); fix: re-save the file as "
          "UTF-8 (e.g. `iconv -f utf-16"),
    error("pairs_header_only.csv", "", None, "no training pairs (expected at least one pair"),
    error("pairs_empty.jsonl", "", None, "no training pairs (expected at least one pair"),
    error("pairs_unknown_extension.parquet", "", None, "unknown pair-file extension '.parquet' "
          "(expected one of .jsonl, .json-lines, .csv, .tsv)", ValueError),
    error("pairs_gzip.jsonl", "", None, "is gzip-compressed (expected UTF-8 text, got the gzip "
          "magic bytes 0x1f 0x8b); fix: gunzip it"),
    error("pairs_gzip.tsv", "", None, "is gzip-compressed (expected UTF-8 text, got the gzip magic "
          "bytes 0x1f 0x8b); fix: gunzip it"),
    error("pairs_compressed.jsonl.gz", "", None, "is gzip-compressed (expected a plain-text "
          ".jsonl, .json-lines, .csv or .tsv file); fix: gunzip it", ValueError),
    Case("pairs_one_row.jsonl", "train error", "too few documents for the rotation (rotate, on by "
         "default: expected at least 2 distinct positives and negatives to fit it, got 1); fix: "
         "pass --no-rotate, or add rows or negatives", error=ValueError),
    loads("pairs_quotes_newlines_commas.csv"),
    loads("pairs_bom_crlf.tsv"),
    loads("pairs_negative_styles.jsonl"),
]
BY_NAME = {case.name: case for case in CASES}
ERRORS = [c for c in CASES if c.outcome == "error"]
LEGAL = [c for c in CASES if c.outcome in ("warning", "loads")]
REFUSED = [c for c in CASES if c.outcome == "refused"]


def ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


def materialise(case: Case, tmp_path: Path) -> Path:
    """The case's path, or a copy with its placeholder expanded when it has one."""
    source = BAD / case.name
    files = [source] if source.is_file() else sorted(source.rglob("*"))
    texts = {p: p.read_bytes() for p in files if p.is_file()}
    if not any(key.encode() in raw for raw in texts.values() for key in EXPANSIONS):
        return source
    target = tmp_path / case.name
    shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
    for p, raw in texts.items():
        for key, value in EXPANSIONS.items():
            raw = raw.replace(key.encode(), value.encode())
        (target / p.relative_to(source) if source.is_dir() else target).write_bytes(raw)
    return target


def load(case: Case, path: Path) -> Any:
    if case.is_pairs:
        return load_pairs(path)
    data = load_beir(path)
    if case.outcome == "run error":
        require_splits(data)
    if case.outcome == "refused":
        plan_run(data)
    return data


# --------------------------------------------------------------------------- the catalogue


def _table(text: str) -> list[list[str]]:
    return [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| `")]


def test_catalogue_lists_every_case_and_every_case_has_files() -> None:
    files, _ = (BAD / "CATALOGUE.md").read_text("utf-8").split(COMMANDS_HEADING)
    rows = _table(files)
    listed = {cells[0].strip().strip("`"): [c.strip().strip("`").strip() for c in cells[1:]]
              for cells in rows}  # .strip("`").strip(): ``code with a ` in it``
    assert len(rows) == len(listed) == len(CASES) >= 40
    on_disk = {p.name for p in BAD.iterdir()} - {"CATALOGUE.md"}
    assert set(listed) == on_disk == set(BY_NAME)
    for name, (_file, outcome, fragment) in listed.items():
        assert outcome == BY_NAME[name].outcome, name
        if BY_NAME[name].fragment:
            assert fragment == BY_NAME[name].fragment, name


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case", ERRORS + REFUSED + [BY_NAME["qrels_missing_test_split"]],
                         ids=ids(ERRORS + REFUSED) + ["qrels_missing_test_split"])
def test_error_is_one_line_naming_file_line_and_fix(case: Case, tmp_path: Path) -> None:
    path = materialise(case, tmp_path)
    start = time.perf_counter()
    with pytest.raises(case.error, match=re.escape(case.fragment)) as info:
        load(case, path)
    assert time.perf_counter() - start < 10  # never hangs, even on a huge line
    message = str(info.value)
    named = path / case.file if case.file else path
    assert "\n" not in message
    assert message.startswith(f"{named}:" if case.line is None else f"{named}:{case.line}: ")
    assert "fix: " in message
    if isinstance(info.value, DataError):
        assert (info.value.path, info.value.line) == (named, case.line)


BEIR_ERRORS = [c for c in ERRORS if not c.is_pairs]
PAIR_ERRORS = [c for c in ERRORS if c.is_pairs]


@pytest.mark.parametrize("case", BEIR_ERRORS, ids=ids(BEIR_ERRORS))
def test_cli_check_exits_1_without_traceback(case: Case, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = materialise(case, tmp_path)
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"problem: {path / case.file if case.file else path}" in out
    assert case.fragment in out
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("case", PAIR_ERRORS, ids=ids(PAIR_ERRORS))
def test_cli_train_exits_1_without_traceback(case: Case, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = materialise(case, tmp_path)
    # The pair file is read before any model is loaded, so this stays fast.
    assert main(["train", str(path), "--out", str(tmp_path / "model")]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1
    assert case.fragment in err
    assert not (tmp_path / "model").exists()


# --------------------------------------------------------------------------- warnings, legal input


def _beir_defaults(data: BeirData) -> None:
    """The values of the base dataset every BEIR case starts from."""
    assert data.corpus["d1"] == Document("d1", "Vitamin D", "Vitamin D prevents fractures.")
    assert data.queries["q3"] == "malaria bed nets"
    assert data.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def _numeric_corpus_ids(data: BeirData) -> None:
    assert list(data.corpus) == ["1", "2", "3"]
    assert data.corpus["2"].text == "Insulin and diabetes."
    assert data.qrels["train"] == {"q1": {"1": 1}, "q2": {"2": 1}}


def _numeric_query_ids(data: BeirData) -> None:
    assert data.queries == {"1": "vitamin d", "2": "insulin", "3": "malaria"}
    assert data.qrels["test"] == {"3": {"d3": 1}}


def _title_only(data: BeirData) -> None:
    _beir_defaults(data)
    assert data.corpus["d4"].text == ""
    assert data.corpus["d4"].full_text == "Statins lower cholesterol"


def _enormous(data: BeirData) -> None:
    _beir_defaults(data)
    assert data.corpus["d4"].text == EXPANSIONS["@@2MB@@"]
    assert len(data.corpus["d4"].text) > 2_000_000


def _integral_float(data: BeirData) -> None:
    assert data.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert type(data.qrels["train"]["q1"]["d1"]) is int


def _without_positive(data: BeirData) -> None:
    _beir_defaults(data)
    assert data.qrels["test"]["q4"] == {"d2": 0}
    assert "q4" not in data.positives("test")
    scores = per_query(data.split("test"), {"q3": {"d3": 1.0}, "q4": {"d2": 1.0}}, ["ndcg@10"])
    assert scores == {"ndcg@10": {"q3": 1.0}}  # q4 is excluded from the metrics


def _leakage(data: BeirData) -> None:
    assert "q1" in data.qrels["train"] and data.qrels["test"]["q1"] == {"d3": 1}


def _header_only(data: BeirData) -> None:
    _beir_defaults(data)
    assert data.splits == ("dev", "test", "train") and data.qrels["dev"] == {}


def _one_document(data: BeirData) -> None:
    assert list(data.corpus) == ["d1"] and data.qrels["test"] == {"q3": {"d1": 1}}


def _quoted_pairs(pairs: tuple[TrainPair, ...]) -> None:
    assert pairs == (
        TrainPair("vitamin d, fractures", 'She said "yes".\nSecond line, with a comma.', ("n2",)),
        TrainPair("plain", "multi\r\nline\r\n", ("n1",)),  # quoted CRLFs are text, kept
    )


def _bom_crlf_pairs(pairs: tuple[TrainPair, ...]) -> None:
    assert pairs == (TrainPair("insulin diabetes", "Insulin and diabetes.", ("Bed nets.",)),)


def _negative_styles(pairs: tuple[TrainPair, ...]) -> None:
    assert pairs == (
        TrainPair("q1", "p1"), TrainPair("q2", "p2", ("n",)), TrainPair("q3", "p3", ("n1", "n2")),
        TrainPair("q4", "p4", ("n1", "n2", "n10")),  # numbered keys in numeric order
    )


def _missing_test(data: BeirData) -> None:
    _beir_defaults(data)
    assert data.splits == ("train",)


SPOT_CHECKS: dict[str, Callable[[Any], None]] = {
    "corpus_utf8_bom": _beir_defaults,
    "crlf_line_endings": _beir_defaults,
    "blank_lines": _beir_defaults,
    "corpus_numeric_ids": _numeric_corpus_ids,
    "queries_numeric_ids": _numeric_query_ids,
    "corpus_title_only": _title_only,
    "corpus_one_document": _one_document,
    "corpus_enormous_line": _enormous,
    "qrels_missing_header": _beir_defaults,  # the first line is data, not lost as a header
    "qrels_underscore_header": _beir_defaults,
    "qrels_score_integral_float": _integral_float,
    "qrels_query_without_positive": _without_positive,
    "qrels_query_in_train_and_test": _leakage,
    "qrels_duplicate_line": _beir_defaults,
    "qrels_header_only_split": _header_only,
    "pairs_quotes_newlines_commas.csv": _quoted_pairs,
    "pairs_bom_crlf.tsv": _bom_crlf_pairs,
    "pairs_negative_styles.jsonl": _negative_styles,
}


def test_every_legal_case_has_a_spot_check() -> None:
    assert set(ids(LEGAL)) <= set(SPOT_CHECKS) <= set(ids(LEGAL + REFUSED))


@pytest.mark.parametrize("case", LEGAL, ids=ids(LEGAL))
def test_legal_input_loads_the_right_values(case: Case, tmp_path: Path) -> None:
    path = materialise(case, tmp_path)
    start = time.perf_counter()
    loaded = load(case, path)
    assert time.perf_counter() - start < 10
    SPOT_CHECKS[case.name](loaded)
    if case.is_pairs:
        return
    if case.outcome == "loads":
        assert loaded.warnings == ()
    else:
        assert len(loaded.warnings) == 1
        assert case.fragment in loaded.warnings[0]


def test_missing_test_split_loads_but_honed_run_refuses() -> None:
    data = load_beir(BAD / "qrels_missing_test_split")
    _missing_test(data)
    with pytest.raises(ValueError, match=r"qrels: no test\.tsv \(found: train\); fix: "):
        require_splits(data)


BEIR_LEGAL = [c for c in LEGAL if not c.is_pairs]


@pytest.mark.parametrize("case", BEIR_LEGAL, ids=ids(BEIR_LEGAL))
def test_cli_check_prints_the_warning_and_exits_0(case: Case, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = materialise(case, tmp_path)
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "problem:" not in out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == (case.outcome == "warning")
    assert case.fragment in "".join(warnings)


# --------------------------------------------------------------------------- refused by the run's rules


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_refused_case_loads_with_only_its_warning(case: Case) -> None:
    data = load_beir(BAD / case.name)
    assert len(data.warnings) == bool(case.warns)
    assert case.warns in "".join(data.warnings)
    if case.name in SPOT_CHECKS:
        SPOT_CHECKS[case.name](data)


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(stdout, the error line) of a command that must exit 1 with one `error: ` line."""
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    # Before it: `honed run`'s "[honed] loading ..." and the model loader's progress bars.
    progress, _, last = err.rstrip("\n").rpartition("\n")
    assert last.startswith("error: ") and "error: " not in progress
    return out, last


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_check_and_run_refuse_with_the_same_line_before_any_model(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = BAD / case.name
    out, checked = _refusal(["check", str(path)], capsys)
    assert "problem:" not in out and "next: honed run" not in out
    assert checked.startswith(f"error: {path / case.file}: ") and case.fragment in checked
    # No such model: `honed run` must refuse the data before it loads a model (or encodes).
    base = str(tmp_path / "no-such-model")
    _, ran = _refusal(["run", str(path), "--out", str(tmp_path / "run"), "--base", base,
                       "--no-cache"], capsys)
    assert ran == checked


def test_check_says_what_honed_run_will_do(mini_beir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rule = SplitRule(dev_fraction=0.25, min_dev_queries=4, seed=7)
    assert main(["check", str(mini_beir), "--dev-fraction", "0.25", "--min-dev-queries", "4",
                 "--seed", "7"]) == 0
    out = capsys.readouterr().out
    splits = split_data(load_beir(mini_beir), rule)  # what `honed run` trains, chooses, tests on
    train, dev, test = (positives_only(q) for q in (splits.train, splits.dev, splits.test))
    pairs = sum(len(docs) for docs in train.values())
    assert (len(train), pairs, len(dev), len(test)) == (12, 13, 4, 8)
    assert (f"honed run will train on {len(train)} queries ({pairs} pairs), choose "
            f"checkpoints on {len(dev)} dev queries (carved from train: 25%, at least 4, "
            f"seed 7) and report on {len(test)} test queries; the leakage filter drops 0 "
            "training queries") in out
    assert out.rstrip().endswith(f"next: honed run {mini_beir} --out runs/{mini_beir.name}")


def test_check_counts_the_queries_the_leakage_filter_drops(
    mini_beir_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries = mini_beir_copy / "queries.jsonl"
    lines = queries.read_text("utf-8").splitlines()
    test_text = json.loads(lines[16])["text"]  # q17, a test query
    lines[0] = json.dumps({"_id": "q01", "text": test_text.upper() + "?"})  # train q01 = q17
    queries.write_text("\n".join(lines) + "\n", "utf-8")
    assert main(["check", str(mini_beir_copy), "--min-dev-queries", "4"]) == 0
    assert "the leakage filter drops 1 training query (q01: text of a test query)" in (
        capsys.readouterr().out)
    assert main(["check", str(mini_beir_copy), "--min-dev-queries", "4", "--allow-leakage"]) == 0
    assert "--allow-leakage: the leakage filter is off" in capsys.readouterr().out


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "train error"],
                         ids=lambda c: c.name)
def test_cli_train_refuses_before_loading_a_model(case: Case, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / case.name
    assert len(load_pairs(path)) == 1  # legal as a pair file: `honed train` refuses it
    _, err = _refusal(["train", str(path), "--out", str(tmp_path / "model"), "--base",
                       str(tmp_path / "no-such-model")], capsys)
    assert err.startswith(f"error: {path}: ") and case.fragment in err
    assert not (tmp_path / "model").exists()


# --------------------------------------------------------------------------- bad options, commands

COMMANDS_HEADING = "## Bad option values and commands"


@dataclass(frozen=True)
class CommandCase:
    """A command of the catalogue's second table: ``{bad}``, ``{tiny}``, ``{mini}``, ``{tmp}``
    and ``{nomodel}`` (a model folder that does not exist) are filled in by the test."""

    name: str
    argv: tuple[str, ...]
    fragment: str

    def command(self, **paths: Path) -> list[str]:
        return [arg.format(**paths) for arg in self.argv]


ONE_PAIR = ("train", "{bad}/pairs_bom_crlf.tsv", "--out", "{tmp}/model", "--base",
            "{nomodel}")
COMMAND_CASES = [
    CommandCase("mine_split_without_positive",
                ("mine", "{bad}/refused_no_training_pair", "--split", "train", "--out",
                 "{tmp}/mined.jsonl", "--base", "{nomodel}"),
                "qrels/train.tsv: no positive pair to mine (expected at least one (query, "
                "document) judgment with score >= 1, got only 0 in 2 judgments); fix:"),
    CommandCase("max_seq_length_zero", (*ONE_PAIR, "--max-seq-length", "0"),
                "max_seq_length: expected a positive integer (tokens per text) or None for the "
                "model's own, got 0; fix: pass --max-seq-length"),
    CommandCase("max_seq_length_negative", (*ONE_PAIR, "--max-seq-length", "-3"),
                "max_seq_length: expected a positive integer (tokens per text) or None for the "
                "model's own, got -3"),
    CommandCase("dims_ascending", (*ONE_PAIR, "--dims", "16,32"),
                "dims: expected distinct integers, largest first (e.g. --dims 384,256,128,64), "
                "got (16, 32)"),
    CommandCase("dims_zero", (*ONE_PAIR, "--dims", "32,0"),
                "dims: expected positive integers, got (32, 0)"),
    CommandCase("dims_wider_than_the_model_train",
                ("train", "{bad}/pairs_bom_crlf.tsv", "--out", "{tmp}/model", "--base",
                 "{tiny}", "--dims", "64,32"),
                "dims: 64 is larger than the model's embedding width 32 (expected dims <= 32, got "
                "(64, 32)); fix: pass --dims with values up to 32"),
    CommandCase("dims_wider_than_the_model_evaluate",
                ("evaluate", "{tiny}", "{mini}", "--dims", "64"),
                "dims: 64 is larger than the model's embedding width 32 (expected dims <= 32, got "
                "(64,)); fix: pass --dims with values up to 32"),
    CommandCase("dims_wider_than_the_model_run",
                ("run", "{mini}", "--out", "{tmp}/run", "--base", "{tiny}", "--no-cache",
                 "--dims", "64,32"),
                "dims: 64 is larger than the model's embedding width 32 (expected dims <= 32, got "
                "(64, 32)); fix: pass --dims with values up to 32"),
]


def test_catalogue_lists_every_command_case() -> None:
    _, commands = (BAD / "CATALOGUE.md").read_text("utf-8").split(COMMANDS_HEADING)
    listed = {cells[0].strip().strip("`"): cells[2].strip().strip("`").strip()
              for cells in _table(commands)}
    assert listed == {case.name: case.fragment for case in COMMAND_CASES}


@pytest.mark.parametrize("case", COMMAND_CASES, ids=lambda c: c.name)
def test_bad_option_or_command_fails_naming_it_before_any_encoding(
    case: CommandCase, tmp_path: Path, tiny_model_path: Path, mini_beir: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from honed.encoding import encoder
    from honed.pipeline import commands

    def no_encoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("encoded texts before refusing the option")

    monkeypatch.setattr(encoder.EmbeddingCache, "encode", no_encoding)
    monkeypatch.setattr(encoder, "encode_texts", no_encoding)
    monkeypatch.setattr(commands, "encode_texts", no_encoding)  # the rotation's encoder
    argv = case.command(bad=BAD, tiny=tiny_model_path, mini=mini_beir, tmp=tmp_path,
                        nomodel=tmp_path / "no-such-model")
    _, err = _refusal(argv, capsys)
    assert case.fragment in err
    assert not (tmp_path / "mined.jsonl").exists() and not (tmp_path / "model").exists()
