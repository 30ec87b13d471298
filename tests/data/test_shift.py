"""Shift before compute: ``honed check`` compares every split (and ``--queries``) with test.

The synthetic dataset of ``tests/shift_helpers.py`` is built like issue #18's consumer-health
case (templated training questions, long free-form test messages); its ``shifted=False`` twin
draws every split from one population and must stay silent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honed.cli.main import main
from honed.data.check import check_dataset
from honed.data.errors import DataError
from honed.data.shift import compare_splits, profile_queries
from honed.data.user_queries import load_user_queries
from shift_helpers import write_shift_beir, write_user_queries


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shift_beir(tmp_path_factory.mktemp("shifted"), shifted=True)


@pytest.fixture(scope="module")
def same(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shift_beir(tmp_path_factory.mktemp("same"), shifted=False)


def test_generator_builds_templated_train_and_long_test(shifted: Path) -> None:
    report = check_dataset(shifted)
    assert report.ok and report.shift is not None
    profiles = {p.name: p for p in report.shift.profiles}
    assert profiles["train"].mean_words < 10 and profiles["test"].mean_words > 25
    assert profiles["train"].top_opening == "what are the"
    assert profiles["train"].template_share > 0.8 and profiles["test"].template_share < 0.1


def test_check_flags_templated_train_against_free_form_test(shifted: Path) -> None:
    shift = check_dataset(shifted).shift
    assert shift is not None
    assert len(shift.warnings) == 1  # one line for the test reference
    line = shift.warnings[0]
    assert line.startswith("shift: train queries and dev queries look unlike the test queries")
    train_vs_test = shift.pairs[("train", "test")]
    assert f"ratio {train_vs_test.length_ratio:.2f}" in line
    assert len(train_vs_test.warnings) == 3  # length, vocabulary, openings (no embeddings here)
    assert '"what are the"' in line


def test_check_is_silent_on_one_population(same: Path) -> None:
    shift = check_dataset(same).shift
    assert shift is not None
    assert shift.warnings == ()
    assert all(0.5 <= r.length_ratio <= 2 for r in shift.pairs.values())


def test_user_queries_are_a_second_reference(same: Path, tmp_path: Path) -> None:
    # The user file holds only free-form messages: unlike the half-templated splits in length
    # only partly, but the templated share of the splits differs from the file's by design.
    user = load_user_queries(write_user_queries(tmp_path / "user.txt"))
    shift = check_dataset(same, user_queries=user).shift
    assert shift is not None
    assert {ref for _, ref in shift.pairs} == {"test", "user"}
    assert ("test", "user") in shift.pairs and ("user", "test") not in shift.pairs
    assert [p.name for p in shift.profiles] == ["train", "dev", "test", "user"]
    assert all("look unlike the user queries" in w for w in shift.warnings)


def test_cli_check_prints_one_shift_line(shifted: Path, same: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(shifted)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("warning: shift:")]
    assert len(lines) == 1 and "words per query" in lines[0]
    assert "train queries: mean" in out and "test queries: mean" in out
    assert main(["check", str(same)]) == 0
    assert "warning: shift" not in capsys.readouterr().out


def test_cli_check_queries_file(shifted: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    user = write_user_queries(tmp_path / "user.txt")
    assert main(["check", str(shifted), "--queries", str(user)]) == 0
    out = capsys.readouterr().out
    assert "user queries: mean" in out
    assert sum(line.startswith("warning: shift:") for line in out.splitlines()) == 2
    assert main(["check", str(shifted), "--queries", str(tmp_path / "missing.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.txt: no such file" in err[0] and "--queries" in err[0]


def test_load_user_queries_reads_text_and_jsonl(tmp_path: Path) -> None:
    plain = tmp_path / "q.txt"
    plain.write_text("first query\n\n  second one  \n", encoding="utf-8")
    assert load_user_queries(plain) == {"line 1": "first query", "line 3": "second one"}
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(json.dumps({"text": "a b", "id": 7}) + "\n" + json.dumps({"text": "c"}) + "\n")
    assert load_user_queries(jsonl) == {"line 1": "a b", "line 2": "c"}


def test_load_user_queries_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.txt: no such file .*fix: check the path"):
        load_user_queries(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty.txt: no query .*fix: put one query per line"):
        load_user_queries(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.jsonl:2: not a JSON object"):
        load_user_queries(broken)
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"query": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r'no_text.jsonl:1: no "text" field'):
        load_user_queries(no_text)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt: not UTF-8 text .*iconv"):
        load_user_queries(latin)


def test_template_share_counts_openings_repeated_by_three_queries() -> None:
    texts = ["what are the signs of flu", "what are the causes of flu", "what are the risks",
             "how is flu treated", "how is flu spread", "why"]
    p = profile_queries("train", texts)
    assert p.template_share == pytest.approx(3 / 6)  # "how is flu" is only twice
    assert p.top_opening == "what are the" and p.top_opening_share == pytest.approx(0.5)
    assert profile_queries("empty", []).template_share == 0.0


def test_compare_splits_refuses_an_unknown_reference() -> None:
    with pytest.raises(ValueError, match=r"references: expected names among \['train'\], got \['test'\]"):
        compare_splits({"train": {"a": "x y"}}, ["test"])
