"""A generator of malformed datasets: a clear one-line error or a correct load, nothing else.

Hypothesis builds a valid BEIR folder (or pair file), then breaks it in one to three ways:

- bytes: truncated at a random byte, emptied, deleted, gzip-compressed, re-encoded (latin-1,
  cp1252, UTF-16 with and without BOM, UTF-8 with BOM), a BOM or random bytes (NUL, CR, NEL,
  U+2028, invalid UTF-8, ...) inserted at a random place, line endings changed to CR alone;
- structure: a line deleted or repeated, two lines swapped;
- values: a JSON field ("_id", "text", "title", "query", "positive", "negatives") replaced by a
  value of another type (null, bool, number, 10**30, list, object, empty or blank string), a
  qrels score (or a TSV cell) replaced by an odd number or word (``1e30``, ``10**30`` written
  out, ``-1``, ``nan``, ``inf``, ``1_0``, a full-width digit, 400 nines, ...);
- ids: one id made to collide with another, or changed invisibly (surrounding spaces, NBSP, a
  zero-width space, NFD instead of NFC, a tab inside).

The property, for ``load_beir``, ``check_dataset``, ``plan_run`` (the rules of ``honed check`` and
``honed run``) and ``load_pairs``: each returns, or raises ``DataError`` / ``ValueError`` /
``FileNotFoundError`` with a message of one line that starts with a path inside the case and
contains ``fix:``. Any other exception fails the test, and so does an example that runs past
its deadline (2 s, hypothesis) or a 10 s watchdog (SIGALRM: a real hang is interrupted). A load
that succeeds must be consistent (every judged id exists, scores are ints in range, no blank
document), and after the changes that keep the meaning (a leading BOM, CRLF) it must be exactly
the original data. An id changed invisibly, when refused, is refused with the reason named.

The example counts keep the whole file near 10 s on a laptop core (``EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import signal
import string
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honed.data.beir import MAX_SCORE, BeirData, load_beir
from honed.data.check import check_dataset
from honed.data.errors import DataError
from honed.data.pairs import load_pairs
from honed.data.plan import plan_run

EXAMPLES = {"beir": 250, "pairs": 200, "ids": 100}
WATCHDOG_SECONDS = 10
CLEAR_ERRORS = (DataError, ValueError, FileNotFoundError)


def _settings(examples: int) -> Any:
    return settings(max_examples=examples, deadline=timedelta(seconds=2), database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def watchdog(seconds: int = WATCHDOG_SECONDS) -> Iterator[None]:
    """Interrupt a call that hangs (the deadline alone only measures a call that returns)."""
    def hang(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no result after {seconds} s: a loader hangs")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: Callable[[], Any], root: Path) -> Any:
    """The call's result, or None after a clear error; any other exception propagates."""
    try:
        with watchdog():
            return call()
    except CLEAR_ERRORS as exc:
        assert_clear(str(exc), root)
        return None


def assert_clear(message: str, root: Path) -> None:
    assert len(message.splitlines()) == 1, message  # one line, whatever the input held
    assert message.startswith(str(root)), message  # names the file (or the folder)
    assert "fix: " in message, message


# --------------------------------------------------------------------------- valid inputs

ID = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=6)
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
               max_size=20).filter(str.strip)


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    """A valid BEIR dataset as file name -> lines (the text of each file, line by line)."""
    corpus = draw(st.dictionaries(ID, st.tuples(st.text(max_size=8), TEXT), min_size=2, max_size=6))
    queries = draw(st.dictionaries(ID, TEXT, min_size=2, max_size=6))
    qids, dids = sorted(queries), sorted(corpus)
    judged = st.lists(st.tuples(st.sampled_from(qids), st.sampled_from(dids), st.integers(0, 3)),
                      min_size=1, max_size=6, unique_by=lambda t: t[:2])
    files = {
        "corpus.jsonl": [json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in corpus.items()],
        "queries.jsonl": [json.dumps({"_id": i, "text": x}) for i, x in queries.items()],
    }
    for split in draw(st.lists(st.sampled_from(["train", "test", "dev"]), min_size=1,
                               max_size=3, unique=True)):
        files[f"qrels/{split}.tsv"] = ["query-id\tcorpus-id\tscore"] + [
            f"{q}\t{d}\t{s}" for q, d, s in draw(judged)]
    return files


PAIR_TEXT = st.text(st.one_of(st.sampled_from(list('",\t \'')), st.characters(
    codec="utf-8", exclude_characters="\x00\r\n")), min_size=1, max_size=12).filter(str.strip)


@st.composite
def pair_files(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A valid pair file: (suffix, lines)."""
    rows = draw(st.lists(st.tuples(PAIR_TEXT, PAIR_TEXT, st.lists(PAIR_TEXT, max_size=2)),
                         min_size=1, max_size=4))
    suffix = draw(st.sampled_from([".jsonl", ".csv", ".tsv"]))
    if suffix == ".jsonl":
        return suffix, [json.dumps({"query": q, "positive": p, "negatives": n}) for q, p, n in rows]
    sep = "," if suffix == ".csv" else "\t"

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return suffix, [sep.join(["query", "positive", "negative"])] + [
        sep.join([cell(q), cell(p), cell(n[0] if n else "")]) for q, p, n in rows]


# --------------------------------------------------------------------------- breaking them

ODD_VALUES = st.sampled_from([None, True, 0, -1, 2.5, 10**30, [], ["x"], {}, {"a": 1}, "", "  ",
                              "\t", "x" * 300])
ODD_SCORES = st.sampled_from(["1e30", "1" + "0" * 30, "-1", "nan", "inf", "1_0", "0x1", "½",
                              "１", "", " ", "1.5", "2.0", "+1", "9" * 400])
ODD_BYTES = st.sampled_from([b"\x00", b"\r", b"\n", b"\xc2\x85", "\u2028".encode(), b"\xff",
                             b"\xe9", b"\xef\xbb\xbf", b"\x1f\x8b", b"\t", b"{", b'"', b"\\"])
INVISIBLE = st.sampled_from([" {}", "{} ", "\u00a0{}", "\u200b{}", "{}\ufeff", "{}\t", "nfd"])


def _invisibly(value: str, how: str) -> str:
    if how == "nfd":
        return unicodedata.normalize("NFD", value + "\u00e9")
    return how.format(value)


@st.composite
def broken_line(draw: st.DrawFn, lines: list[str], name: str) -> list[str]:
    """One line of one file changed in value: a field's type, a score, an id."""
    if not lines:
        return lines
    at = draw(st.integers(0, len(lines) - 1))
    line, out = lines[at], list(lines)
    if name.endswith(".tsv"):
        cells = line.split("\t")
        column = draw(st.integers(0, len(cells) - 1))
        if column == len(cells) - 1 and len(cells) == 3:
            cells[column] = draw(ODD_SCORES)
        else:
            cells[column] = _invisibly(cells[column], draw(INVISIBLE))
        out[at] = "\t".join(cells)
        return out
    try:
        obj = json.loads(line)
    except ValueError:
        return out
    if isinstance(obj, dict) and obj:
        key = draw(st.sampled_from(sorted(obj)))
        if key == "_id" and draw(st.booleans()):
            obj[key] = _invisibly(str(obj[key]), draw(INVISIBLE))
        else:
            obj[key] = draw(ODD_VALUES)
        out[at] = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return out


@st.composite
def broken_score(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """A qrels judgment's score replaced by an odd number or word (the header line is kept)."""
    rows = [i for i, line in enumerate(lines[1:], start=1) if line.count("\t") == 2]
    if not rows:
        return lines
    at, out = draw(st.sampled_from(rows)), list(lines)
    out[at] = out[at].rsplit("\t", 1)[0] + "\t" + draw(ODD_SCORES)
    return out


@st.composite
def broken_structure(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """A line deleted, repeated or swapped with another (ids collide, headers move)."""
    if not lines:
        return lines
    out, at = list(lines), draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["delete", "repeat", "swap", "collide"]))
    if how == "delete":
        del out[at]
    elif how == "repeat":
        out.insert(at, out[at])
    elif how == "swap":
        other = draw(st.integers(0, len(lines) - 1))
        out[at], out[other] = out[other], out[at]
    elif len(out) > 1:  # collide: this line's id becomes the next line's id
        out[at] = out[(at + 1) % len(out)].split("\t")[0] + out[at][len(out[at].split("\t")[0]):]
    return out


@st.composite
def broken_bytes(draw: st.DrawFn, raw: bytes) -> bytes | None:
    """The file's bytes broken; None = the file is deleted."""
    how = draw(st.sampled_from(["truncate", "empty", "delete", "gzip", "encode", "insert",
                                "cr", "bom"]))
    at = draw(st.integers(0, len(raw)))
    if how == "truncate":
        return raw[:at]
    if how == "empty":
        return b""
    if how == "delete":
        return None
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "encode":
        codec = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-8-sig"]))
        return raw.decode("utf-8", errors="replace").encode(codec, errors="replace")
    if how == "insert":
        return raw[:at] + draw(ODD_BYTES) + raw[at:]
    if how == "cr":
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    return b"\xef\xbb\xbf" + raw  # a BOM: legal, keeps the meaning


@st.composite
def broken(draw: st.DrawFn, files: dict[str, list[str]]) -> dict[str, bytes | None]:
    """1-3 changes, each to one file, as file name -> bytes (None: deleted)."""
    lines = {name: list(text) for name, text in files.items()}
    raw: dict[str, bytes | None] = {}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(lines)))
        kind = draw(st.sampled_from(["line", "structure", "bytes", "score"]))
        if kind == "score":
            lines[name] = draw(broken_score(lines[name]))
        elif kind == "line":
            lines[name] = draw(broken_line(lines[name], name))
        elif kind == "structure":
            lines[name] = draw(broken_structure(lines[name]))
        else:
            current = raw.get(name, _encode(lines[name]))
            raw[name] = None if current is None else draw(broken_bytes(current))
    return {name: raw[name] if name in raw else _encode(text) for name, text in lines.items()}


def _encode(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def write(root: Path, files: dict[str, bytes | None]) -> None:
    for name, raw in files.items():
        if raw is not None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(raw)


# --------------------------------------------------------------------------- the properties


def assert_consistent(data: BeirData) -> None:
    for split in data.qrels.values():
        for qid, docs in split.items():
            assert qid in data.queries
            for doc_id, score in docs.items():
                assert doc_id in data.corpus
                assert type(score) is int and 0 <= score <= MAX_SCORE
    assert all(doc.full_text.strip() for doc in data.corpus.values())
    assert all(text.strip() for text in data.queries.values())


def _meaning_kept(files: dict[str, list[str]], broken_files: dict[str, bytes | None]) -> bool:
    """Whether every file is the original, up to a leading BOM and CRLF line ends."""
    for name, lines in files.items():
        raw = broken_files.get(name)
        if raw is None or raw.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n") != _encode(lines):
            return False
    return True


@_settings(EXAMPLES["beir"])
@given(st.data())
def test_a_broken_beir_folder_gets_a_clear_error_or_loads_correctly(data: st.DataObject) -> None:
    files = data.draw(datasets())
    broken_files = data.draw(broken(files))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, broken_files)
        loaded = outcome(lambda: load_beir(root), root)
        with watchdog():
            report = check_dataset(root)  # collects instead of raising: never raises
        for line in (*report.problems, *([report.refusal] if report.refusal else [])):
            assert_clear(line, root)
        if loaded is None:
            assert report.problems or not report.ok
            return
        assert_consistent(loaded)
        assert report.ok
        if _meaning_kept(files, broken_files):
            original = Path(tmp) / "original"
            write(original, {name: _encode(lines) for name, lines in files.items()})
            assert load_beir(original).qrels == loaded.qrels
            assert dict(load_beir(original).corpus) == dict(loaded.corpus)
        if {"train", "test"} <= set(loaded.splits):
            plan = outcome(lambda: plan_run(loaded), root)
            assert (plan is None) == (report.refusal is not None)
            if plan is not None:
                assert plan.train_pairs >= 1 and plan.splits.dev and plan.splits.test


@_settings(EXAMPLES["pairs"])
@given(st.data())
def test_a_broken_pair_file_gets_a_clear_error_or_loads_correctly(data: st.DataObject) -> None:
    suffix, lines = data.draw(pair_files())
    name = f"pairs{suffix}"
    broken_file = data.draw(broken({name: lines}))[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        if broken_file is not None:
            path.write_bytes(broken_file)
        pairs = outcome(lambda: load_pairs(path), path)
    if pairs is not None:
        assert pairs and all(p.query.strip() and p.positive.strip() for p in pairs)
        assert all(isinstance(n, str) and n.strip() for p in pairs for n in p.negatives)


# Each id holds an accented letter (NFC), so that its NFD form is another string.
ACCENTED_ID = st.text(string.ascii_lowercase + "\u00f1\u00c5", max_size=4).map(lambda s: s + "\u00e9")
SPACES = (" {}", "{} ", "\u00a0{}")  # what str.strip() removes from a qrels cell


@_settings(EXAMPLES["ids"])
@given(st.data())
def test_an_id_that_differs_invisibly_is_named_as_such(data: st.DataObject) -> None:
    """The qrels name an id of corpus.jsonl or queries.jsonl with an invisible difference."""
    qid, did = data.draw(ACCENTED_ID), data.draw(ACCENTED_ID)
    how = data.draw(st.sampled_from([" {}", "{} ", "\u00a0{}", "\u200b{}", "{}\ufeff", "nfd"]))
    on_doc, in_qrels = data.draw(st.booleans()), data.draw(st.booleans())
    changed = unicodedata.normalize("NFD", did if on_doc else qid) if how == "nfd" else (
        how.format(did if on_doc else qid))
    ids = {"q": qid, "d": did}
    file_side = dict(ids)
    qrels_side = dict(ids)
    (qrels_side if in_qrels else file_side)["d" if on_doc else "q"] = changed
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, {
            "corpus.jsonl": _encode([json.dumps({"_id": file_side["d"], "text": "a document"}),
                                     json.dumps({"_id": "other", "text": "another"})]),
            "queries.jsonl": _encode([json.dumps({"_id": file_side["q"], "text": "a query"})]),
            "qrels/test.tsv": _encode(["query-id\tcorpus-id\tscore",
                                       f"{qrels_side['q']}\t{qrels_side['d']}\t1"]),
        })
        loaded = outcome(lambda: load_beir(root), root)
        if loaded is None:
            (message,) = check_dataset(root).problems
            assert "only by " in message and ("surrounding spaces" in message or "invisible" in
                                              message or "Unicode normalisation" in message)
            assert repr(changed) in message or ascii(changed) in message
        assert (loaded is not None) == (in_qrels and how in SPACES)  # qrels cells are stripped
