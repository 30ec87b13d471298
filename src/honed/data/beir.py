"""Loading and validating BEIR datasets.

A BEIR folder holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line), ``queries.jsonl``
(``{"_id", "text"}``, all splits in one file) and ``qrels/<split>.tsv`` with the header
``query-id<TAB>corpus-id<TAB>score``. A bad line raises a :class:`DataError` naming the file,
the 1-based line, what was expected and how to fix it. A document may have an empty text when
it has a title (TREC-COVID has such documents); it is then indexed by its title alone.

Training-pair files are read by :mod:`honed.data.pairs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from honed.data.errors import DataError, Issues, data_error, show_value
from honed.data.ids import LookAlikes
from honed.data.jsonl import read_entries, read_lines
from honed.types import Qrels

QRELS_HEADER = ("query-id", "corpus-id", "score")
# trec_eval (and pytrec_eval) read a relevance grade as a C int; a larger one cannot be scored.
MAX_SCORE = 2**31 - 1
ID_SOURCES = ("queries.jsonl", "corpus.jsonl")


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

    def documents(self) -> tuple[list[str], list[str]]:
        """``(doc_ids, texts)`` in corpus order, each text ``title + " " + text`` (the encoded form)."""
        ids = list(self.corpus)
        return ids, [self.corpus[d].full_text for d in ids]

    def positives(self, split: str, min_score: int = 1) -> Qrels:
        """Judgments with ``score >= min_score``; queries left with none are dropped."""
        kept = {qid: {d: s for d, s in docs.items() if s >= min_score}
                for qid, docs in self.split(split).items()}
        return {qid: docs for qid, docs in kept.items() if docs}


# --------------------------------------------------------------------------- BEIR files


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
    # TREC qrels: query-id, iteration (0, or Q0 as in run files), doc-id, relevance
    if len(columns) == 4 and (columns[1].isdigit() or columns[1].upper() == "Q0"):
        return f"drop the second column of these TREC-style qrels{tabs}"
    if spaced and len(columns) == 3:
        return "separate the columns with tabs, not spaces"
    return "use 3 columns"


def _tab_in_id(path: Path, line: int, fields: list[str],
               ids: tuple[Mapping[str, Any], ...]) -> DataError | None:
    """The error for a line with one column too many because a known id contains a tab."""
    if len(fields) != 4:
        return None
    for at, known, name, source in zip((0, 1), ids, QRELS_HEADER, ID_SOURCES, strict=False):
        joined = "\t".join(fields[at : at + 2])
        if joined in known:
            return data_error(path, line, f"{name} {show_value(joined)} contains a tab",
                              "3 tab-separated columns query-id, corpus-id, score",
                              "4: the tab inside the id splits it",
                              f"remove the tab from the id in {source} and in this file")
    return None


def _qrels_row(path: Path, line: int, fields: list[str], ids: tuple[Mapping[str, Any], ...],
               issues: Issues, look_alikes: tuple[LookAlikes, ...]) -> tuple[str, str, int] | None:
    """One validated judgment (qid, docid, score); None after reporting an error."""
    if len(fields) != 3:
        issues.error(_tab_in_id(path, line, fields, ids) or data_error(
            path, line, "wrong number of columns", "3 tab-separated columns query-id, corpus-id, "
            "score", f"{len(fields)} in {show_value(chr(9).join(fields))}", _columns_fix(fields)))
        return None
    score = _parse_score(fields[2])
    if score is None or score < 0:
        issues.error(data_error(path, line, "bad score", "a non-negative integer such as 0, 1 or 2",
                            show_value(fields[2]), "write the relevance grade as a whole number"))
        return None
    if score > MAX_SCORE:
        issues.error(data_error(path, line, "score too large",
                                f"a relevance grade of at most {MAX_SCORE}", show_value(fields[2]),
                                "write the relevance grade as a small whole number such as 0, 1 "
                                "or 2"))
        return None
    for value, known, name, source, alike in zip(fields[:2], ids, QRELS_HEADER[:2], ID_SOURCES,
                                                 look_alikes, strict=True):
        if value not in known:
            explained = alike.explain(value)
            fix = "make the two ids identical" if explained else f"add it to {source} or remove this line"
            issues.error(data_error(path, line, f"unknown {name}", f"an _id from {source}",
                                    explained or show_value(value), fix))
            return None
    return fields[0], fields[1], score


def _is_header(path: Path, line: int, fields: list[str], issues: Issues) -> bool | None:
    """Whether the first line is the header; None (after an error) when it is neither."""
    if len(fields) == 3 and _parse_score(fields[2]) is not None:
        issues.warnings.append(f"{path}: no header line; line {line} was read as data")
        return False
    if tuple(f.lower().replace("_", "-") for f in fields) == QRELS_HEADER:
        return True
    fix = "make that header the first line" if len(fields) == 3 else _columns_fix(fields)
    issues.error(data_error(path, line, "first line is neither the header nor a judgment",
                        "the header 'query-id<TAB>corpus-id<TAB>score'",
                        show_value("\t".join(fields)), fix))
    return None


def _read_qrels(path: Path, ids: tuple[Mapping[str, Any], ...], issues: Issues) -> Qrels:
    """Read one qrels/<split>.tsv; ``ids`` are (queries, corpus) to check the ids against."""
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    repeated: list[int] = []
    look_alikes = tuple(LookAlikes(known, source) for known, source in zip(ids, ID_SOURCES,
                                                                          strict=True))
    lines = ((n, [f.strip() for f in t.split("\t")]) for n, t in read_lines(path, issues)
             if t.strip())
    for index, (line_no, fields) in enumerate(lines):
        if index == 0 and _is_header(path, line_no, fields, issues) is not False:
            continue
        row = _qrels_row(path, line_no, fields, ids, issues, look_alikes)
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
            issues.error(data_error(path, line_no, f"conflicting scores for ({qid!r}, {doc_id!r})",
                                "one score per (query-id, corpus-id)",
                                f"{previous} on line {first_line[qid, doc_id]} and {score}",
                                "keep only the correct line"))
    if repeated:
        issues.warnings.append(f"{path}: {len(repeated)} repeated judgment(s) ignored "
                               f"(first on line {repeated[0]})")
    return qrels


def _warn_about_splits(qrels: Mapping[str, Qrels], issues: Issues) -> None:
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


def _warn_about_title_only(path: Path, corpus: Mapping[str, Document], issues: Issues) -> None:
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
        packed = [f"{name}.gz" for name in missing if (root / f"{name}.gz").is_file()]
        if packed and not nested:  # honed reads plain text only: say so, not "missing"
            expected += f"; found {', '.join(packed)}, which is compressed"
            fix = f"gunzip it (`gunzip -k {' '.join(str(root / name) for name in packed)}`)"
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)} ({expected}); fix: {fix}")
    return root / "corpus.jsonl", root / "queries.jsonl", qrels


def read_beir(root: Path, issues: Issues) -> BeirData:
    """Load with ``issues`` deciding whether bad lines raise or are collected."""
    corpus_path, queries_path, qrels_paths = _locate(root)
    entries = read_entries(corpus_path, issues, ("text", "title"), "documents")
    corpus = {i: Document(i, title, text) for i, (text, title) in entries.items()}
    _warn_about_title_only(corpus_path, corpus, issues)
    if len(corpus) == 1:
        issues.warnings.append(f"{corpus_path}: only one document, so retrieval is trivial")
    entries = read_entries(queries_path, issues, ("text",), "queries")
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
    return read_beir(Path(path), Issues(strict=True))
