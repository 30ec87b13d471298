"""Loading and validating BEIR datasets.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line), ``queries.jsonl``
(``{"_id", "text"}``, all splits in one file) and ``qrels/<split>.tsv`` with the header
``query-id<TAB>corpus-id<TAB>score``. A bad line raises a :class:`DataError` naming the file,
the 1-based line, what was expected and how to fix it. A document may have an empty text when
it has a title (TREC-COVID has such documents); it is then indexed by its title alone.

Training-pair files are read by :mod:`honed.data.pairs`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from honed.types import Qrels

QRELS_HEADER = ("query-id", "corpus-id", "score")


class DataError(ValueError):
    """A bad input file.

    ``str(err)`` is one line: ``'<path>:<line>: <what> (expected ..., got ...); fix: <how>'``.

    Attributes:
        path: the offending file, or None.
        line: the 1-based line number, or None when the problem concerns the whole file.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(" ".join(f"{where}{message}".splitlines()))  # always one line


def _error(path: Path, line: int | None, what: str, expected: str, got: str, fix: str) -> DataError:
    return DataError(f"{what} (expected {expected}, got {got}); fix: {fix}", path, line)


def _show(value: Any, limit: int = 60) -> str:
    """A short one-line rendering of a bad value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad_utf8(path: Path, raw: bytes, position: int, first_line: int = 1) -> DataError:
    """Error for the bad byte ``raw[position]``, where ``raw`` starts at line ``first_line``.

    A NUL byte (valid UTF-8, but never in a text file) or a UTF-16 byte-order mark means the
    file is UTF-16, which needs another ``iconv`` source encoding than the usual latin-1.
    """
    line_start = raw.rfind(b"\n", 0, position) + 1
    line = first_line + raw.count(b"\n", 0, position)
    got = f"byte 0x{raw[position]:02x} at column {position - line_start + 1}"
    source = "latin1"
    if line == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        got, source = "a UTF-16 byte-order mark", "utf-16"
    elif raw[position] == 0:
        got, source = f"a NUL byte at column {position - line_start + 1}, as in UTF-16", "utf-16"
    return _error(path, line, "text is not valid UTF-8", "UTF-8 text", got,
                  f"re-save the file as UTF-8 (e.g. `iconv -f {source} -t utf-8`)")


@dataclass
class _Issues:
    """Where loaders send problems: raised at once (strict) or collected (check_dataset)."""

    strict: bool
    warnings: list[str] = field(default_factory=list)
    problems: list[DataError] = field(default_factory=list)

    def error(self, err: DataError) -> None:
        if self.strict:
            raise err
        self.problems.append(err)


@dataclass(frozen=True)
class Document:
    """One corpus entry."""

    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and text joined by one space, or just the one that is not blank."""
        return " ".join(part for part in (self.title.strip(), self.text.strip()) if part)


@dataclass(frozen=True)
class BeirData:
    """A loaded BEIR dataset. Mappings are read-only; :meth:`split` returns a private copy.

    Example:
        >>> data = load_beir("data/scifact")  # doctest: +SKIP
        >>> test = data.positives("test")  # doctest: +SKIP
    """

    path: Path
    corpus: Mapping[str, Document]
    queries: Mapping[str, str]
    qrels: Mapping[str, Qrels]
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Wrap plain dicts so that a BeirData built by hand is as read-only as a loaded one.
        for name in ("corpus", "queries", "qrels"):
            if not isinstance(getattr(self, name), MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def splits(self) -> tuple[str, ...]:
        """Names of the qrels splits, e.g. ``("test", "train")``."""
        return tuple(self.qrels)

    def split(self, name: str) -> Qrels:
        """A deep copy of one split's qrels; ValueError listing the splits if it is unknown."""
        if name not in self.qrels:
            raise ValueError(f"unknown split {name!r} (expected one of {list(self.qrels)}); fix: "
                             f"pick one of those or add {self.path / 'qrels' / (name + '.tsv')}")
        return {qid: dict(docs) for qid, docs in self.qrels[name].items()}

    def positives(self, split: str, min_score: int = 1) -> Qrels:
        """Judgments with ``score >= min_score``; queries left with none are dropped."""
        kept = {qid: {d: s for d, s in docs.items() if s >= min_score}
                for qid, docs in self.split(split).items()}
        return {qid: docs for qid, docs in kept.items() if docs}


# --------------------------------------------------------------------------- BEIR files


def _read_lines(path: Path, issues: _Issues) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) of a UTF-8 file; a BOM and CRLF are accepted.

    Decoded line by line so that a bad byte is reported with its line number.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                issues.error(_bad_utf8(path, raw, exc.start, line_no))
                continue
            if b"\0" in raw:  # UTF-16 without a BOM decodes as UTF-8 full of NULs
                issues.error(_bad_utf8(path, raw, raw.index(b"\0"), line_no))
                continue
            yield line_no, text.rstrip("\r\n")


def _json_problem(exc: ValueError | RecursionError) -> str:
    """What ``json.loads`` found wrong, for the "got" part of an error message."""
    if isinstance(exc, json.JSONDecodeError):
        # "Unterminated string starting at" would otherwise read "... at at column 5"
        return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
    if isinstance(exc, RecursionError):  # e.g. "[[[[..." thousands deep
        return "nesting too deep"
    return _show(str(exc), 80)  # e.g. an integer of more than 4300 digits


def _read_jsonl(path: Path, issues: _Issues) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line that is a JSON object."""
    for line_no, text in _read_lines(path, issues):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            issues.error(_error(path, line_no, "malformed JSON", "one JSON object per line",
                                _json_problem(exc), "repair or remove this line"))
            continue
        if isinstance(obj, dict):
            yield line_no, obj
        else:
            issues.error(_error(path, line_no, "line is not a JSON object", "an object {...}",
                                f"{type(obj).__name__} {_show(obj)}", "write one object per line"))


def _get_id(path: Path, line: int, obj: dict[str, Any], issues: _Issues) -> str | None:
    """The entry's "_id" as a string (ints are coerced); None after reporting an error."""
    value = obj.get("_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    got = 'no "_id" key' if "_id" not in obj else f"{type(value).__name__} {_show(value)}"
    issues.error(_error(path, line, 'bad "_id"', "a non-empty string", got,
                        'give every line a unique string "_id"'))
    return None


def _get_text(path: Path, line: int, obj: dict[str, Any], key: str, issues: _Issues,
              required: bool) -> str | None:
    """A string field (an absent or null optional one is ""); None after reporting an error."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        got = f"no {key!r} key" if key not in obj else f"{type(value).__name__} {_show(value)}"
        issues.error(_error(path, line, f"bad {key!r}", "a string", got,
                            f"set {key!r} to the text as a JSON string"))
        return None
    return value


def _all_blank(path: Path, line: int, keys: tuple[str, ...], values: list[str],
               issues: _Issues) -> bool:
    """Report a line whose first field is blank and no other field can stand in for it.

    A blank first field is legal when a later one is filled in: a corpus line with a title but
    no text is a title-only document.
    """
    if values[0].strip() or any(value.strip() for value in values[1:]):
        return False
    alternatives = "".join(f" or a non-empty {key!r}" for key in keys[1:])
    issues.error(_error(path, line, f"empty {keys[0]!r}", f"non-empty text{alternatives}",
                        _show(values[0]), "fill in the text or remove this line"))
    return True


def _read_entries(path: Path, issues: _Issues, keys: tuple[str, ...],
                  noun: str) -> dict[str, list[str]]:
    """id -> values of ``keys`` for each valid line, in file order.

    The first key is required; it may be blank only when one of the others is not.
    """
    entries: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    numeric = 0  # ids written as JSON ints; the first such line is in first_numeric
    first_numeric = 0
    for line_no, obj in _read_jsonl(path, issues):
        entry_id = _get_id(path, line_no, obj, issues)
        values = [_get_text(path, line_no, obj, key, issues, i == 0) for i, key in enumerate(keys)]
        texts = [value for value in values if value is not None]
        # Blank fields are reported even when the id is bad, so check_dataset lists both.
        if len(texts) < len(keys) or _all_blank(path, line_no, keys, texts, issues):
            continue
        if entry_id is None:
            continue
        if entry_id in first_line:
            issues.error(_error(path, line_no, f"duplicate _id {entry_id!r}", "unique ids",
                                f"the same id on lines {first_line[entry_id]} and {line_no}",
                                "remove one of the two lines or give it another id"))
            continue
        first_line[entry_id] = line_no
        if not isinstance(obj["_id"], str):
            numeric, first_numeric = numeric + 1, first_numeric or line_no
        entries[entry_id] = texts
    if numeric:
        issues.warnings.append(f'{path}: {numeric} numeric "_id" value(s) read as '
                               f"strings (first on line {first_numeric})")
    if not entries:
        raise _error(path, None, f"no {noun}", 'at least one valid line {"_id", "text"}', "none",
                     "point to the folder of a complete BEIR dataset")
    return entries


def _parse_score(text: str) -> int | None:
    """An integer score ("1.0" is accepted as 1); None when not integral."""
    if "_" in text:  # int() and float() accept "1_0" as 10; no qrels file means that
        return None
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
    return int(value) if value.is_integer() else None


def _columns_fix(fields: list[str]) -> str:
    """How to repair a qrels line that does not have 3 tab-separated columns."""
    spaced = len(fields) == 1
    columns = fields[0].split() if spaced else fields
    tabs = ", and separate the columns with tabs" if spaced else ""
    if len(columns) == 4:  # TREC qrels: query-id, iteration (usually 0), doc-id, relevance
        return f"drop the second column of these TREC-style qrels{tabs}"
    if spaced and len(columns) == 3:
        return "separate the columns with tabs, not spaces"
    return "use 3 columns"


def _qrels_row(path: Path, line: int, fields: list[str], ids: tuple[Mapping[str, Any], ...],
               issues: _Issues) -> tuple[str, str, int] | None:
    """One validated judgment (qid, docid, score); None after reporting an error."""
    if len(fields) != 3:
        issues.error(_error(path, line, "wrong number of columns",
                            "3 tab-separated columns query-id, corpus-id, score",
                            f"{len(fields)} in {_show(chr(9).join(fields))}", _columns_fix(fields)))
        return None
    score = _parse_score(fields[2])
    if score is None or score < 0:
        issues.error(_error(path, line, "bad score", "a non-negative integer such as 0, 1 or 2",
                            _show(fields[2]), "write the relevance grade as a whole number"))
        return None
    sources = ("queries.jsonl", "corpus.jsonl")
    for value, known, name, source in zip(fields[:2], ids, QRELS_HEADER[:2], sources, strict=True):
        if value not in known:
            issues.error(_error(path, line, f"unknown {name}", f"an _id from {source}",
                                _show(value), f"add it to {source} or remove this line"))
            return None
    return fields[0], fields[1], score


def _is_header(path: Path, line: int, fields: list[str], issues: _Issues) -> bool | None:
    """Whether the first line is the header; None (after an error) when it is neither."""
    if len(fields) == 3 and _parse_score(fields[2]) is not None:
        issues.warnings.append(f"{path}: no header line; line {line} was read as data")
        return False
    if tuple(f.lower().replace("_", "-") for f in fields) == QRELS_HEADER:
        return True
    fix = "make that header the first line" if len(fields) == 3 else _columns_fix(fields)
    issues.error(_error(path, line, "first line is neither the header nor a judgment",
                        "the header 'query-id<TAB>corpus-id<TAB>score'",
                        _show("\t".join(fields)), fix))
    return None


def _read_qrels(path: Path, ids: tuple[Mapping[str, Any], ...], issues: _Issues) -> Qrels:
    """Read one qrels/<split>.tsv; ``ids`` are (queries, corpus) to check the ids against."""
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    repeated: list[int] = []
    lines = ((n, [f.strip() for f in t.split("\t")]) for n, t in _read_lines(path, issues)
             if t.strip())
    for index, (line_no, fields) in enumerate(lines):
        if index == 0 and _is_header(path, line_no, fields, issues) is not False:
            continue
        row = _qrels_row(path, line_no, fields, ids, issues)
        if row is None:
            continue
        qid, doc_id, score = row
        previous = qrels.get(qid, {}).get(doc_id)
        if previous is None:
            qrels.setdefault(qid, {})[doc_id] = score
            first_line[qid, doc_id] = line_no
        elif previous == score:
            repeated.append(line_no)
        else:
            issues.error(_error(path, line_no, f"conflicting scores for ({qid!r}, {doc_id!r})",
                                "one score per (query-id, corpus-id)",
                                f"{previous} on line {first_line[qid, doc_id]} and {score}",
                                "keep only the correct line"))
    if repeated:
        issues.warnings.append(f"{path}: {len(repeated)} repeated judgment(s) ignored "
                               f"(first on line {repeated[0]})")
    return qrels


def _warn_about_splits(qrels: Mapping[str, Qrels], issues: _Issues) -> None:
    """Empty splits, queries without a positive, and train/eval query overlap (leakage)."""
    for name, split in qrels.items():
        missing = sum(1 for docs in split.values() if max(docs.values()) < 1)
        shared = sorted(set(qrels.get("train", {})) & set(split)) if name != "train" else []
        if not split:
            issues.warnings.append(f"{name}: no judgments in qrels/{name}.tsv")
        if missing:
            verb = "query has" if missing == 1 else "queries have"
            issues.warnings.append(f"{name}: {missing} {verb} no positive judgment; "
                                   "they are excluded from metrics")
        if shared:
            issues.warnings.append(f"train/{name}: {len(shared)} query id(s) appear in both "
                                   f"splits (leakage), e.g. {', '.join(map(repr, shared[:3]))}")


def _warn_about_title_only(path: Path, corpus: Mapping[str, Document], issues: _Issues) -> None:
    """One warning per corpus file for the documents that have a title but no text."""
    n = sum(1 for doc in corpus.values() if not doc.text.strip())
    if n:
        counted = "1 document has" if n == 1 else f"{n} documents have"
        pronoun = "it is" if n == 1 else "they are"
        issues.warnings.append(f"{path}: {counted} a title but no text; {pronoun} indexed by "
                               "title alone")


def _locate(root: Path) -> tuple[Path, Path, list[Path]]:
    """The corpus, queries and qrels files of a BEIR folder, or FileNotFoundError."""
    expected = "expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv"
    if not root.is_dir():
        state = "is a file" if root.exists() else "does not exist"
        raise FileNotFoundError(f"{root}: dataset folder {state} ({expected}); "
                                "fix: pass the folder of a BEIR dataset")
    qrels = sorted((root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
    missing = [name for name in ("corpus.jsonl", "queries.jsonl") if not (root / name).is_file()]
    if not qrels:
        missing.append("qrels/*.tsv")
    if missing:
        nested = sorted(p.parent for p in root.glob("*/corpus.jsonl"))  # e.g. an unzipped archive
        fix = f"pass {nested[0]} instead" if nested else "add the missing files"
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)} ({expected}); fix: {fix}")
    return root / "corpus.jsonl", root / "queries.jsonl", qrels


def _load(root: Path, issues: _Issues) -> BeirData:
    """Load with ``issues`` deciding whether bad lines raise or are collected."""
    corpus_path, queries_path, qrels_paths = _locate(root)
    entries = _read_entries(corpus_path, issues, ("text", "title"), "documents")
    corpus = {i: Document(i, title, text) for i, (text, title) in entries.items()}
    _warn_about_title_only(corpus_path, corpus, issues)
    if len(corpus) == 1:
        issues.warnings.append(f"{corpus_path}: only one document, so retrieval is trivial")
    entries = _read_entries(queries_path, issues, ("text",), "queries")
    queries = {i: text for i, (text,) in entries.items()}
    qrels = {p.stem: _read_qrels(p, (queries, corpus), issues) for p in qrels_paths}
    _warn_about_splits(qrels, issues)
    return BeirData(root, MappingProxyType(corpus), MappingProxyType(queries),
                    MappingProxyType(qrels), tuple(issues.warnings))


def load_beir(path: str | Path) -> BeirData:
    """Load and validate a BEIR dataset folder.

    Args:
        path: folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Returns:
        A frozen :class:`BeirData`; legal but odd findings are in ``.warnings``.

    Raises:
        FileNotFoundError: the folder or a required file is missing.
        DataError: the first bad line (file, line, expected/got and fix in the message).

    Example:
        >>> data = load_beir("data/scifact")  # doctest: +SKIP
        >>> len(data.corpus), data.splits  # doctest: +SKIP
        (5183, ('test', 'train'))
    """
    return _load(Path(path), _Issues(strict=True))
