"""The documents of a BEIR folder or a ``corpus.jsonl`` file, read whole or streamed.

:func:`read_corpus` reads every document at once (a BM25 index needs them all);
:func:`iter_corpus` streams them one line at a time, for an index build of a corpus larger than
memory. Both validate each line as :func:`honed.data.beir.load_beir` does, with its messages
(file, line, fix), and neither needs the folder's queries or qrels.

Example:
    >>> ids, texts = read_corpus("data/scifact")  # doctest: +SKIP
    >>> next(iter_corpus("data/scifact/corpus.jsonl"))  # doctest: +SKIP
    ('4983', 'Microstructural development of human newborn cerebral white matter ...')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from honed.data.beir import Document
from honed.data.errors import Issues, data_error
from honed.data.jsonl import all_blank, get_id, get_text, read_entries, read_jsonl

__all__ = ["corpus_file", "iter_corpus", "read_corpus"]


def corpus_file(path: str | Path) -> Path:
    """The ``corpus.jsonl`` of a BEIR folder, or the file ``path``; FileNotFoundError if missing."""
    file = Path(path)
    if file.is_dir():
        file = file / "corpus.jsonl"
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: does not exist (expected a BEIR folder with corpus.jsonl, or a corpus.jsonl "
            'file of {"_id", "title", "text"} lines); fix: pass an existing corpus'
        )
    return file


def read_corpus(path: str | Path) -> tuple[list[str], list[str]]:
    """Document ids and texts (title + text) of a BEIR folder or a ``corpus.jsonl`` file.

    Raises:
        FileNotFoundError: no such file, or a folder without corpus.jsonl.
        DataError: a bad line (file, line and fix in the message).
    """
    file = corpus_file(path)
    entries = read_entries(file, Issues(strict=True), ("text", "title"), "documents")
    ids = list(entries)
    return ids, [Document(i, title, text).full_text for i, (text, title) in entries.items()]


def iter_corpus(path: str | Path) -> Iterator[tuple[str, str]]:
    """Stream ``(id, title + text)`` of a BEIR folder or ``corpus.jsonl``, one line at a time.

    The streaming twin of :func:`read_corpus`: the same validation and messages, but only the set
    of ids seen so far stays in memory (~100 B per short id).

    Raises:
        FileNotFoundError: no such file, or a folder without corpus.jsonl.
        DataError: a bad line, a duplicate id, or no documents at all.
    """
    file, issues = corpus_file(path), Issues(strict=True)  # strict: each problem raises
    seen: set[str] = set()
    for line_no, obj in read_jsonl(file, issues):
        doc_id = get_id(file, line_no, obj, issues)
        text = get_text(file, line_no, obj, "text", issues, True)
        title = get_text(file, line_no, obj, "title", issues, False)
        if doc_id is None or text is None or title is None:
            continue  # unreachable: strict issues raise first
        all_blank(file, line_no, ("text", "title"), [text, title], issues)
        if doc_id in seen:
            first = next(n for n, o in read_jsonl(file, issues) if str(o.get("_id")) == doc_id)
            raise data_error(file, line_no, f"duplicate _id {doc_id!r}", "unique ids",
                         f"the same id on lines {first} and {line_no}",
                         "remove one of the two lines or give it another id")  # fmt: skip
        seen.add(doc_id)
        yield doc_id, Document(doc_id, title, text).full_text
    if not seen:
        raise data_error(file, None, "no documents", 'at least one valid line {"_id", "text"}', "none",
                     "point to the folder of a complete BEIR dataset")  # fmt: skip
