"""Tests for honed.data.beir (BEIR loading, carve_dev) and honed.data.check."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from honed.data.beir import BeirData, Document, load_beir
from honed.data.check import LengthStats, SplitStats, check_dataset, length_stats
from honed.data.errors import DataError
from honed.data.splits import carve_dev

# ../shared beside the checkout (as on the dev machines and in CI)
SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"

CORPUS = [
    {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D prevents fractures."},
    {"_id": "d2", "title": "", "text": "Insulin and diabetes."},
    {"_id": "d3", "title": "Malaria", "text": "Bed nets reduce malaria.", "metadata": {"y": 1}},
    {"_id": "d4", "text": "Statins lower cholesterol."},
]
QUERIES = [
    {"_id": "q1", "text": "does vitamin d prevent fractures"},
    {"_id": "q2", "text": "insulin diabetes"},
    {"_id": "q3", "text": "malaria bed nets", "metadata": {}},
]
HEADER = "query-id\tcorpus-id\tscore"
TRAIN = f"{HEADER}\nq1\td1\t1\nq2\td2\t2\n"
TEST = f"{HEADER}\nq3\td3\t1\nq3\td4\t0\n"


def jsonl(objs: list[Any]) -> str:
    return "".join(json.dumps(obj) + "\n" for obj in objs)


def write_beir(root: Path, corpus: str | None = None, queries: str | None = None,
               qrels: dict[str, str] | None = None) -> Path:
    """Write a small BEIR folder; each argument replaces one file's text (None: the default)."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(jsonl(CORPUS) if corpus is None else corpus, "utf-8")
    (root / "queries.jsonl").write_text(jsonl(QUERIES) if queries is None else queries, "utf-8")
    for split, text in ({"train": TRAIN, "test": TEST} if qrels is None else qrels).items():
        (root / "qrels" / f"{split}.tsv").write_text(text, "utf-8")
    return root


def corpus_with(*lines: str) -> str:
    """The default corpus with raw ``lines`` appended (they are lines 5, 6, ...)."""
    return jsonl(CORPUS) + "".join(line + "\n" for line in lines)


def qrels_with(*lines: str) -> dict[str, str]:
    """Default qrels with raw ``lines`` appended to train.tsv (they are lines 4, 5, ...)."""
    return {"train": TRAIN + "".join(line + "\n" for line in lines), "test": TEST}


# --------------------------------------------------------------------------- loading


def test_load_beir_reads_all_files(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path))
    assert data.path == tmp_path
    assert list(data.corpus) == ["d1", "d2", "d3", "d4"]  # file order
    assert data.corpus["d1"] == Document("d1", "Vitamin D", "Vitamin D prevents fractures.")
    assert data.corpus["d4"].title == ""
    assert data.queries == {"q1": "does vitamin d prevent fractures", "q2": "insulin diabetes",
                            "q3": "malaria bed nets"}
    assert data.splits == ("test", "train")
    assert data.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.qrels["test"] == {"q3": {"d3": 1, "d4": 0}}
    assert data.warnings == ()


def test_load_beir_accepts_str_path(tmp_path: Path) -> None:
    assert len(load_beir(str(write_beir(tmp_path))).corpus) == 4


def test_load_beir_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_beir(write_beir(tmp_path, qrels=qrels_with("q1\td1\t1")))  # also produces a warning
    assert capsys.readouterr() == ("", "")


def test_full_text() -> None:
    assert Document("a", "Title", "Body text.").full_text == "Title Body text."
    assert Document("a", "", "Body text.").full_text == "Body text."
    assert Document("a", "  ", "Body").full_text == "Body"
    assert Document("a", "Title ", " Body").full_text == "Title Body"
    assert Document("a", "Title", "").full_text == "Title"
    assert Document("a", " Title", " \n ").full_text == "Title"


def test_mappings_are_read_only(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path))
    with pytest.raises(TypeError):
        data.corpus["d9"] = Document("d9", "", "x")  # type: ignore[index]
    with pytest.raises(TypeError):
        data.queries["q9"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        data.qrels["dev"] = {}  # type: ignore[index]
    with pytest.raises(AttributeError):
        data.path = Path("elsewhere")  # type: ignore[misc]


def test_beir_data_built_from_dicts_is_read_only() -> None:
    corpus = {"d1": Document("d1", "", "x")}
    data = BeirData(Path("."), corpus, {"q1": "y"}, {"test": {"q1": {"d1": 1}}}, ["w"])  # type: ignore[arg-type]
    assert isinstance(data.corpus, MappingProxyType) and isinstance(data.qrels, MappingProxyType)
    assert data.warnings == ("w",)
    corpus["d2"] = Document("d2", "", "z")
    assert list(data.corpus) == ["d1"]  # copied, not a view of the caller's dict


def test_split_returns_a_deep_copy(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path))
    copy = data.split("train")
    copy["q1"]["d1"] = 0
    copy["q9"] = {}
    assert data.split("train") == {"q1": {"d1": 1}, "q2": {"d2": 2}}


def test_unknown_split_names_available_splits_and_folder(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path))
    with pytest.raises(ValueError, match=r"unknown split 'dev' \(expected one of \['test', "
                                         r"'train'\]\).*qrels/dev\.tsv"):
        data.split("dev")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.positives("dev")


def test_positives_filters_by_score_and_drops_empty_queries(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path))
    assert data.positives("test") == {"q3": {"d3": 1}}
    assert data.positives("train", min_score=2) == {"q2": {"d2": 2}}
    assert data.positives("test", min_score=0) == {"q3": {"d3": 1, "d4": 0}}


def test_any_tsv_in_qrels_is_a_split(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path, qrels={"dev": TRAIN, "test": TEST, "extra": TEST}))
    assert data.splits == ("dev", "extra", "test")
    (tmp_path / "qrels" / "notes.txt").write_text("ignored")
    assert load_beir(tmp_path).splits == ("dev", "extra", "test")


def test_mini_beir_fixture_loads(mini_beir: Path) -> None:
    data = load_beir(mini_beir)
    assert (len(data.corpus), len(data.queries)) == (40, 24)
    assert (len(data.split("train")), len(data.split("test"))) == (16, 8)
    assert data.split("test")["q18"]["d06"] == 0


def test_scifact_loads_quickly_without_warnings() -> None:
    if not SCIFACT.is_dir():
        pytest.skip(f"{SCIFACT} not present")
    start = time.perf_counter()
    data = load_beir(SCIFACT)
    assert time.perf_counter() - start < 2.0
    assert (len(data.corpus), len(data.queries)) == (5183, 1109)
    assert (len(data.split("train")), len(data.split("test"))) == (809, 300)
    assert data.warnings == ()
    report = check_dataset(SCIFACT)
    assert report.ok and report.problems == ()
    assert report.n_documents == 5183


# --------------------------------------------------------------------------- encodings, blanks


def test_bom_crlf_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv"):
        text = (root / name).read_text("utf-8").replace("\n", "\r\n\r\n")
        (root / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    data = load_beir(root)
    assert list(data.corpus) == ["d1", "d2", "d3", "d4"]
    assert data.corpus["d1"].text == "Vitamin D prevents fractures."
    assert data.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.warnings == ()


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    raw = jsonl(CORPUS).encode("utf-8") + b'{"_id": "d5", "text": "caf\xe9"}\n'
    (root / "corpus.jsonl").write_bytes(raw)
    with pytest.raises(DataError, match=r"corpus\.jsonl:5: text is not valid UTF-8 \(expected "
                                        r"UTF-8 text, got byte 0xe9 at column 27\); fix: re-save"):
        load_beir(root)


def test_non_utf8_in_qrels(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    (root / "qrels" / "test.tsv").write_bytes(TEST.encode() + b"q\xff\td1\t1\n")
    with pytest.raises(DataError, match=r"test\.tsv:4: text is not valid UTF-8"):
        load_beir(root)


# --------------------------------------------------------------------------- missing files


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope: dataset folder does not exist \(expected "
                                                r"corpus\.jsonl, queries\.jsonl and qrels/"):
        load_beir(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("{}")
    with pytest.raises(FileNotFoundError, match="dataset folder is a file"):
        load_beir(tmp_path / "corpus.jsonl")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_missing_required_file(tmp_path: Path, name: str) -> None:
    (write_beir(tmp_path) / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"missing {re.escape(name)} \(expected corpus"):
        load_beir(tmp_path)


def test_missing_qrels_folder_and_everything(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError,
                       match=r"missing corpus\.jsonl, queries\.jsonl, qrels/\*\.tsv \(expected"):
        load_beir(tmp_path)


def test_qrels_folder_without_tsv(tmp_path: Path) -> None:
    root = write_beir(tmp_path, qrels={})
    (root / "qrels" / "test.txt").write_text(TEST)
    with pytest.raises(FileNotFoundError, match=r"missing qrels/\*\.tsv"):
        load_beir(root)


def test_nested_dataset_folder_is_suggested(tmp_path: Path) -> None:
    write_beir(tmp_path / "scifact")
    with pytest.raises(FileNotFoundError, match=r"fix: pass .*scifact instead"):
        load_beir(tmp_path)


# --------------------------------------------------------------------------- JSONL validation


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"_id": "d5", "text": ', r"corpus\.jsonl:5: malformed JSON \(expected one JSON object "
                                   r"per line, got Expecting value at column 23\); fix: repair"),
        ('["d5", "text"]', r"corpus\.jsonl:5: line is not a JSON object \(expected an object "
                           r"\{\.\.\.\}, got list \['d5', 'text'\]\)"),
        ('"just a string"', r"line is not a JSON object .*got str 'just a string'"),
        ('{"text": "x"}', r'corpus\.jsonl:5: bad "_id" \(expected a non-empty string, got no '
                          r'"_id" key\); fix: give every line a unique string "_id"'),
        ('{"_id": null, "text": "x"}', r'bad "_id" \(expected a non-empty string, got NoneType'),
        ('{"_id": "", "text": "x"}', r"bad \"_id\" .*got str ''"),
        ('{"_id": 1.5, "text": "x"}', r'bad "_id" .*got float 1\.5'),
        ('{"_id": true, "text": "x"}', r'bad "_id" .*got bool True'),
        ('{"_id": "d5", "title": "T"}', r"corpus\.jsonl:5: bad 'text' \(expected a string, got "
                                        r"no 'text' key\); fix: set 'text'"),
        ('{"_id": "d5", "text": 3}', r"bad 'text' \(expected a string, got int 3\)"),
        ('{"_id": "d5", "text": null}', r"bad 'text' \(expected a string, got NoneType None\)"),
        ('{"_id": "d5", "text": ""}', r"corpus\.jsonl:5: empty 'text' \(expected non-empty text "
                                      r"or a non-empty 'title', got ''\); fix: fill in the text "
                                      r"or remove this line"),
        ('{"_id": "d5", "text": " \\t "}', r"empty 'text' .*got ' \\t '"),
        ('{"_id": "d5", "title": "", "text": ""}', r"corpus\.jsonl:5: empty 'text' \(expected "
                                                   r"non-empty text or a non-empty 'title'"),
        ('{"_id": "d5", "title": " ", "text": " "}', r"empty 'text' .*got ' '"),
        ('{"_id": "d5", "title": null, "text": ""}', r"empty 'text' .*got ''"),
        ('{"_id": "d5", "title": 7, "text": "x"}', r"corpus\.jsonl:5: bad 'title' \(expected a "
                                                   r"string, got int 7\)"),
        ('{"_id": "d1", "text": "again"}', r"corpus\.jsonl:5: duplicate _id 'd1' \(expected "
                                           r"unique ids, got the same id on lines 1 and 5\)"),
    ],
)
def test_bad_corpus_lines(tmp_path: Path, line: str, pattern: str) -> None:
    root = write_beir(tmp_path, corpus=corpus_with(line))
    with pytest.raises(DataError, match=pattern) as info:
        load_beir(root)
    assert info.value.path == root / "corpus.jsonl"
    assert info.value.line == 5
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"_id": "q4"}', r"queries\.jsonl:4: bad 'text' \(expected a string, got no 'text' key"),
        ('{"_id": "q4", "text": "  "}', r"queries\.jsonl:4: empty 'text'"),
        ('{"_id": "q1", "text": "dup"}', r"queries\.jsonl:4: duplicate _id 'q1' .*lines 1 and 4"),
        ("{oops}", r"queries\.jsonl:4: malformed JSON"),
    ],
)
def test_bad_query_lines(tmp_path: Path, line: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        load_beir(write_beir(tmp_path, queries=jsonl(QUERIES) + line + "\n"))


def test_empty_title_and_null_title_are_fine(tmp_path: Path) -> None:
    root = write_beir(tmp_path, corpus=corpus_with('{"_id": "d5", "title": null, "text": "x"}'))
    assert load_beir(root).corpus["d5"] == Document("d5", "", "x")


def test_title_only_documents_are_indexed_by_title_with_one_warning(tmp_path: Path) -> None:
    root = write_beir(tmp_path, corpus=corpus_with(
        '{"_id": "d5", "title": "Sleep and memory", "text": ""}',
        '{"_id": "d6", "title": "Coffee", "text": " \\n "}',
        '{"_id": "d7", "title": "Tea", "text": ""}'))
    data = load_beir(root)
    assert data.corpus["d5"] == Document("d5", "Sleep and memory", "")
    assert [data.corpus[d].full_text for d in ("d5", "d6", "d7")] == [
        "Sleep and memory", "Coffee", "Tea"]
    assert data.warnings == (f"{root / 'corpus.jsonl'}: 3 documents have a title but no text; "
                             "they are indexed by title alone",)
    report = check_dataset(root)
    assert report.ok and report.warnings == data.warnings


def test_one_title_only_document_warns_in_the_singular(tmp_path: Path) -> None:
    root = write_beir(tmp_path, corpus=corpus_with('{"_id": "d5", "title": "T", "text": ""}'))
    [warning] = load_beir(root).warnings
    assert re.fullmatch(r".*corpus\.jsonl: 1 document has a title but no text; it is indexed by "
                        r"title alone", warning)


def test_query_with_a_title_but_no_text_is_still_an_error(tmp_path: Path) -> None:
    queries = jsonl(QUERIES) + '{"_id": "q4", "title": "T", "text": ""}\n'
    with pytest.raises(DataError, match=r"queries\.jsonl:4: empty 'text' \(expected non-empty "
                                        r"text, got ''\)"):
        load_beir(write_beir(tmp_path, queries=queries))


def test_check_dataset_reports_bad_id_and_blank_text_of_one_line(tmp_path: Path) -> None:
    report = check_dataset(write_beir(tmp_path, corpus=corpus_with('{"text": ""}')))
    assert [p.split(": ", 1)[1].split(" (")[0] for p in report.problems] == [
        'bad "_id"', "empty 'text'"]


def test_numeric_ids_become_strings_with_a_warning(tmp_path: Path) -> None:
    corpus = jsonl([{"_id": 10, "text": "ten"}, {"_id": "d2", "text": "two"}])
    queries = jsonl([{"_id": 1, "text": "one"}, {"_id": 2, "text": "two"}])
    qrels = {"test": f"{HEADER}\n1\t10\t1\n2\td2\t1\n"}
    data = load_beir(write_beir(tmp_path, corpus, queries, qrels))
    assert list(data.corpus) == ["10", "d2"] and data.corpus["10"].id == "10"
    assert data.qrels["test"] == {"1": {"10": 1}, "2": {"d2": 1}}
    assert data.warnings == (
        f'{tmp_path / "corpus.jsonl"}: 1 numeric "_id" value(s) read as strings (first on line 1)',
        f'{tmp_path / "queries.jsonl"}: 2 numeric "_id" value(s) read as strings '
        "(first on line 1)",
    )


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_corpus_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match=r"corpus\.jsonl: no documents \(expected at least one valid"
                                        r" line \{\"_id\", \"text\"\}, got none\)") as info:
        load_beir(write_beir(tmp_path, corpus=text))
    assert info.value.line is None


def test_empty_queries_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"queries\.jsonl: no queries"):
        load_beir(write_beir(tmp_path, queries=""))


def test_single_document_corpus_warns(tmp_path: Path) -> None:
    corpus = jsonl(CORPUS[:1])
    data = load_beir(write_beir(tmp_path, corpus=corpus, qrels={"test": f"{HEADER}\nq1\td1\t1\n"}))
    assert data.warnings == (f"{tmp_path / 'corpus.jsonl'}: only one document, so retrieval is "
                             "trivial",)


# --------------------------------------------------------------------------- qrels validation


def test_qrels_without_header_warns(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path, qrels={"test": "q1\td1\t1\nq2\td2\t0\n"}))
    assert data.qrels["test"] == {"q1": {"d1": 1}, "q2": {"d2": 0}}
    path = tmp_path / "qrels" / "test.tsv"
    assert f"{path}: no header line; line 1 was read as data" in data.warnings


def test_qrels_header_with_underscores_is_accepted(tmp_path: Path) -> None:
    qrels = {"test": "query_id\tcorpus_id\tScore\nq1\td1\t1\n"}
    data = load_beir(write_beir(tmp_path, qrels=qrels))
    assert data.qrels["test"] == {"q1": {"d1": 1}} and data.warnings == ()


@pytest.mark.parametrize("first", ["qid\tdocid\trel", "q1\td1\tabc", "query-id corpus-id score"])
def test_qrels_bad_first_line(tmp_path: Path, first: str) -> None:
    with pytest.raises(DataError, match=r"test\.tsv:1: first line is neither the header nor a "
                                        r"judgment \(expected the header 'query-id<TAB>corpus-id"):
        load_beir(write_beir(tmp_path, qrels={"test": f"{first}\nq1\td1\t1\n"}))


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("q1\td1", r"train\.tsv:4: wrong number of columns \(expected 3 tab-separated columns "
                   r"query-id, corpus-id, score, got 2 in 'q1\\td1'\); fix: use 3 columns"),
        ("q1\t0\td1\t1", r"wrong number of columns .*got 4 in"),
        ("q1 d1 1", r"wrong number of columns .*got 1 in 'q1 d1 1'\); fix: separate the columns "
                    r"with tabs, not spaces"),
        ("q1\td3\tabc", r"train\.tsv:4: bad score \(expected a non-negative integer such as 0, 1 "
                        r"or 2, got 'abc'\); fix: write the relevance grade as a whole number"),
        ("q1\td3\t0.5", r"bad score .*got '0\.5'"),
        ("q1\td3\t-1", r"bad score .*got '-1'"),
        ("q1\td3\tnan", r"bad score .*got 'nan'"),
        ("q1\td3\t1_0", r"bad score .*got '1_0'"),
        ("q1\td3\t", r"bad score .*got ''"),
        ("q9\td1\t1", r"train\.tsv:4: unknown query-id \(expected an _id from queries\.jsonl, got "
                      r"'q9'\); fix: add it to queries\.jsonl or remove this line"),
        ("q1\td9\t1", r"train\.tsv:4: unknown corpus-id \(expected an _id from corpus\.jsonl, got "
                      r"'d9'\)"),
        ("q1\td1\t2", r"train\.tsv:4: conflicting scores for \('q1', 'd1'\) \(expected one score "
                      r"per \(query-id, corpus-id\), got 1 on line 2 and 2\); fix: keep only"),
    ],
)
def test_bad_qrels_lines(tmp_path: Path, line: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as info:
        load_beir(write_beir(tmp_path, qrels=qrels_with(line)))
    assert (info.value.path, info.value.line) == (tmp_path / "qrels" / "train.tsv", 4)


def test_integral_float_score_is_accepted(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path, qrels=qrels_with("q1\td3\t1.0", "q2\td4\t2.00")))
    assert data.qrels["train"] == {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 2, "d4": 2}}


def test_exact_duplicate_judgment_warns(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path, qrels=qrels_with("q1\td1\t1", "q1\td1\t1")))
    assert data.qrels["train"] == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert data.warnings == (f"{tmp_path / 'qrels' / 'train.tsv'}: 2 repeated judgment(s) "
                             "ignored (first on line 4)",)


def test_queries_without_positive_warn(tmp_path: Path) -> None:
    qrels = {"test": f"{HEADER}\nq1\td1\t0\nq2\td2\t0\nq3\td3\t1\n"}
    data = load_beir(write_beir(tmp_path, qrels=qrels))
    assert data.warnings == ("test: 2 queries have no positive judgment; they are excluded "
                             "from metrics",)
    data = load_beir(write_beir(tmp_path, qrels={"test": TEST + "q1\td1\t0\n"}))
    assert data.warnings == ("test: 1 query has no positive judgment; they are excluded "
                             "from metrics",)


def test_query_in_train_and_test_warns_about_leakage(tmp_path: Path) -> None:
    qrels = {"train": TRAIN + "q3\td1\t1\n", "test": TEST + "q1\td3\t1\n"}
    data = load_beir(write_beir(tmp_path, qrels=qrels))
    assert data.warnings == ("train/test: 2 query id(s) appear in both splits (leakage), "
                             "e.g. 'q1', 'q3'",)


def test_header_only_split_warns(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path, qrels={"train": TRAIN, "dev": HEADER + "\n"}))
    assert data.split("dev") == {}
    assert data.warnings == ("dev: no judgments in qrels/dev.tsv",)


def test_data_error_attributes() -> None:
    err = DataError("bad\nthing", Path("a.tsv"), 3)
    assert (str(err), err.path, err.line) == ("a.tsv:3: bad thing", Path("a.tsv"), 3)
    assert isinstance(err, ValueError)
    assert str(DataError("whole file", "a.tsv")) == "a.tsv: whole file"
    assert DataError("plain").path is None and DataError("plain").line is None


# --------------------------------------------------------------------------- carve_dev


def make_qrels(n: int, prefix: str = "q") -> dict[str, dict[str, int]]:
    return {f"{prefix}{i:04d}": {f"d{i}": 1, f"x{i}": 0} for i in range(n)}


def test_carve_dev_sizes() -> None:
    assert len(carve_dev(make_qrels(100))[1]) == 30  # min_queries wins over 10%
    assert len(carve_dev(make_qrels(1000))[1]) == 100  # 10% wins
    assert len(carve_dev(make_qrels(1000), fraction=0.25, min_queries=1)[1]) == 250
    assert len(carve_dev(make_qrels(10))[1]) == 9  # at least one query stays in train
    train, dev = carve_dev(make_qrels(2))
    assert (len(train), len(dev)) == (1, 1)


def test_carve_dev_partitions_and_copies() -> None:
    qrels = make_qrels(50)
    before = json.dumps(qrels)
    train, dev = carve_dev(qrels)
    assert set(train).isdisjoint(dev) and set(train) | set(dev) == set(qrels)
    assert all(train[q] == qrels[q] for q in train) and all(dev[q] == qrels[q] for q in dev)
    next(iter(dev.values()))["new"] = 5
    assert json.dumps(qrels) == before


def test_carve_dev_is_deterministic_and_independent_of_dict_order() -> None:
    qrels = make_qrels(200)
    _, dev = carve_dev(qrels, seed=7)
    _, dev_reversed = carve_dev(dict(reversed(list(qrels.items()))), seed=7)
    assert set(dev) == set(dev_reversed) == set(carve_dev(qrels, seed=7)[1])
    assert set(carve_dev(qrels, seed=8)[1]) != set(dev)


def test_carve_dev_only_moves_queries_with_a_positive() -> None:
    qrels = make_qrels(40) | {f"z{i}": {"d0": 0} for i in range(40)}
    train, dev = carve_dev(qrels, min_queries=60)
    assert len(dev) == 40 and all(q.startswith("q") for q in dev)
    assert all(f"z{i}" in train for i in range(40))


@pytest.mark.parametrize(
    ("qrels", "kwargs", "pattern"),
    [
        ({"q1": {"d1": 1}}, {}, r"cannot carve a dev split from 1 query\(ies\) \(expected at "
                                r"least 2\); fix: provide a dev split"),
        ({}, {}, r"from 0 query\(ies\)"),
        ({"q1": {"d1": 0}, "q2": {"d1": 0}}, {}, r"none of the 2 queries has a positive judgment"),
        (make_qrels(5), {"fraction": 0.0}, r"fraction must be in \(0, 1\), got 0\.0"),
        (make_qrels(5), {"fraction": 1.0}, r"fraction must be in \(0, 1\), got 1\.0"),
        (make_qrels(5), {"min_queries": 0}, r"min_queries must be >= 1, got 0"),
    ],
)
def test_carve_dev_errors(qrels: dict[str, dict[str, int]], kwargs: dict[str, Any],
                          pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        carve_dev(qrels, **kwargs)


# --------------------------------------------------------------------------- check_dataset


def test_check_dataset_clean(tmp_path: Path) -> None:
    report = check_dataset(write_beir(tmp_path))
    assert report.ok and report.problems == () and report.warnings == ()
    assert (report.path, report.n_documents, report.n_queries) == (tmp_path, 4, 3)
    assert report.splits == (SplitStats("test", 1, 2, 1, 0), SplitStats("train", 2, 2, 2, 0))
    # full texts have 6, 3, 5 and 3 words (p95: rank 2.85 -> 5 + 0.85); the queries 5, 2 and 3
    assert report.document_lengths == LengthStats(4, 4.25, 4.0, pytest.approx(5.85), 6)
    assert report.query_lengths == LengthStats(3, 10 / 3, 3.0, 4.8, 5)


def test_check_dataset_collects_every_problem(tmp_path: Path) -> None:
    corpus = corpus_with("{bad json", '{"_id": "d6", "text": ""}')
    root = write_beir(tmp_path, corpus=corpus, qrels=qrels_with("q1\td6\t1", "q2\td2\tx", "q1"))
    report = check_dataset(root)
    assert not report.ok
    assert [p.split(": ")[0].rsplit("/", 1)[-1] for p in report.problems] == [
        "corpus.jsonl:5", "corpus.jsonl:6", "train.tsv:4", "train.tsv:5", "train.tsv:6"]
    assert "unknown corpus-id" in report.problems[2]
    assert (report.n_documents, report.splits[1].n_judgments) == (4, 2)  # bad lines left out


def test_check_dataset_missing_file_is_the_only_problem(tmp_path: Path) -> None:
    (write_beir(tmp_path) / "corpus.jsonl").unlink()
    report = check_dataset(tmp_path)
    assert not report.ok and len(report.problems) == 1
    assert re.search(r"missing corpus\.jsonl \(expected", report.problems[0])
    assert report.n_documents == 0 and report.splits == ()
    assert report.document_lengths == LengthStats(0, 0.0, 0.0, 0.0, 0)


def test_check_dataset_empty_corpus_after_bad_lines(tmp_path: Path) -> None:
    report = check_dataset(write_beir(tmp_path, corpus='{"_id": "d1"}\n'))
    assert len(report.problems) == 2
    assert "corpus.jsonl:1: bad 'text'" in report.problems[0]
    assert "corpus.jsonl: no documents" in report.problems[1]


def test_check_dataset_caps_problems_per_file(tmp_path: Path) -> None:
    root = write_beir(tmp_path, qrels=qrels_with(*["q1\td9\t1"] * 25))
    report = check_dataset(root)
    assert len(report.problems) == 21
    assert report.problems[-1] == f"{root / 'qrels' / 'train.tsv'}: 5 more problem(s) not shown"


def test_check_dataset_keeps_warnings(tmp_path: Path) -> None:
    report = check_dataset(write_beir(tmp_path, qrels={"test": TEST + "q1\td1\t0\n"}))
    assert report.ok
    assert report.warnings == ("test: 1 query has no positive judgment; they are excluded from "
                               "metrics",)
    assert report.splits == (SplitStats("test", 2, 3, 1, 1),)


def test_length_stats_by_hand() -> None:
    assert length_stats(["a", "a b", "a b c", "a b c d", "a b c d e"]) == LengthStats(
        5, 3.0, 3.0, 4.8, 5)  # p95: rank 0.95 * 4 = 3.8 -> 4 + 0.8 * (5 - 4)
    assert length_stats([]) == LengthStats(0, 0.0, 0.0, 0.0, 0)
