"""Streaming, resumable index builds: a corpus larger than memory, encoded batch by batch.

A build reads its corpus twice, one document at a time. A first pass (no model) counts the
documents, checks that ids are unique and hashes ids and texts; the second encodes
``batch_size`` documents at a time into a partial folder beside the destination ``OUT``::

    OUT.partial/
      progress.json    settings (model, corpus hash, count, batch size...) + rows done + file sizes
      ids.jsonl        one JSON id per encoded row
      index/           becomes OUT when finished
        full.npy       (count, dim) float32, preallocated, filled batch by batch (memory-mapped)
        texts.jsonl    one JSON string per encoded row

Each batch lands in ``full.npy``, ``texts.jsonl`` and ``ids.jsonl`` first; only then is
``progress.json`` replaced (atomically) by one naming the new row count and file sizes. A kill at
any moment therefore leaves a ``progress.json`` whose rows all three files hold, and
``resume=True`` (``honed index ... --resume``) truncates the two jsonl files to the recorded
sizes and continues with the next batch. Batches start at multiples of ``batch_size`` whether
resumed or not, so a resumed build writes the same bytes as an uninterrupted one. A resume is
refused when anything that shaped the rows already written differs (model, corpus, batch size,
encode precision); the fast-tier settings (shortlist dim, precision, ANN) are applied only when
the index is finished, so the resuming call's values are the ones used.

When every row is encoded, the fast tier, the optional HNSW graph, ``ids.json`` and
``index.json`` are derived inside ``index/`` (:func:`honed.index.store.finish_index`), which is then
renamed to ``OUT``: a good index at ``OUT`` is replaced only by a complete one. A kill during
that step resumes at that step.

Memory: one batch of texts and vectors (10,000 x 384 float32 = 15 MB), plus the set of ids that
checks uniqueness while streaming (~100 B per short id in CPython: 100 MB per million documents).
That is the same order as the id list :meth:`honed.index.index.Index.load` holds to search the index,
so a corpus whose ids do not fit in memory could not be searched either.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.dims import truncate
from honed.index.store import IndexInfo, check_out, finish_index

if TYPE_CHECKING:
    from honed.index.ann import HnswConfig

__all__ = [
    "BuildOptions",
    "Corpus",
    "CorpusScan",
    "build_folder",
    "corpus_file",
    "iter_corpus",
    "partial_path",
    "partial_rows",
    "scan_corpus",
]

# A re-iterable source of (id, text): called once per pass, it returns a fresh iterator.
Corpus = Callable[[], Iterable[tuple[str, str]]]
PROGRESS = "progress.json"


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`build_folder` writes, beyond what index.json records.

    Attributes:
        batch_size: documents encoded and committed per step (the resume granularity).
        encode_precision: the encoder's matmul precision, recorded so a resume uses the same.
        hnsw: graph settings, used when the IndexInfo asks for an HNSW graph.
        overwrite: replace an existing index at the destination.
        resume: continue the interrupted build in ``OUT.partial``, if there is one.
        show_progress_bar: progress bars over the documents (and the graph).
    """

    batch_size: int = 10_000
    encode_precision: str = "auto"
    hnsw: HnswConfig | None = None
    overwrite: bool = False
    resume: bool = False
    show_progress_bar: bool = False

    def __post_init__(self) -> None:
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {size!r}")


@dataclass(frozen=True)
class CorpusScan:
    """What the first pass learns: the document count and a hash of the ``(id, text)`` rows."""

    count: int
    digest: str


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


def iter_corpus(path: str | Path) -> Iterator[tuple[str, str]]:
    """Stream ``(id, title + text)`` of a BEIR folder or ``corpus.jsonl``, one line at a time.

    The streaming twin of :func:`honed.index.store.read_corpus`: the same validation and messages
    (file, line, fix), but only the set of ids seen so far stays in memory.

    Example:
        >>> next(iter_corpus("data/scifact"))  # doctest: +SKIP
        ('4983', 'Microstructural development of human newborn cerebral white matter ...')

    Raises:
        FileNotFoundError: no such file, or a folder without corpus.jsonl.
        DataError: a bad line, a duplicate id, or no documents at all.
    """
    from honed.data.beir import (
        Document,
        _all_blank,
        _error,
        _get_id,
        _get_text,
        _Issues,
        _read_jsonl,
    )

    file, issues = corpus_file(path), _Issues(strict=True)  # strict: each problem raises
    seen: set[str] = set()
    for line_no, obj in _read_jsonl(file, issues):
        doc_id = _get_id(file, line_no, obj, issues)
        text = _get_text(file, line_no, obj, "text", issues, True)
        title = _get_text(file, line_no, obj, "title", issues, False)
        if doc_id is None or text is None or title is None:
            continue  # unreachable: strict issues raise first
        _all_blank(file, line_no, ("text", "title"), [text, title], issues)
        if doc_id in seen:
            first = next(n for n, o in _read_jsonl(file, issues) if str(o.get("_id")) == doc_id)
            raise _error(file, line_no, f"duplicate _id {doc_id!r}", "unique ids",
                         f"the same id on lines {first} and {line_no}",
                         "remove one of the two lines or give it another id")  # fmt: skip
        seen.add(doc_id)
        yield doc_id, Document(doc_id, title, text).full_text
    if not seen:
        raise _error(file, None, "no documents", 'at least one valid line {"_id", "text"}', "none",
                     "point to the folder of a complete BEIR dataset")  # fmt: skip


def _row_bytes(doc_id: str, text: str) -> bytes:
    return json.dumps([doc_id, text], ensure_ascii=False).encode() + b"\n"


def scan_corpus(corpus: Corpus) -> CorpusScan:
    """First pass: count the documents and hash them (ids must already be known unique).

    Raises:
        ValueError: the corpus is empty.
    """
    digest, count = hashlib.sha256(), 0
    for doc_id, text in corpus():
        digest.update(_row_bytes(doc_id, text))
        count += 1
    if count == 0:
        raise ValueError("the corpus is empty: an index needs at least one document")
    return CorpusScan(count, digest.hexdigest()[:16])


def partial_path(out: str | Path) -> Path:
    """Where a build of ``out`` keeps its work until it is finished: ``OUT.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


@dataclass(frozen=True)
class _Progress:
    settings: dict[str, Any]
    rows: int
    texts_bytes: int
    ids_bytes: int


def _read_progress(partial: Path) -> _Progress | None:
    try:
        values = json.loads((partial / PROGRESS).read_text(encoding="utf-8"))
        return _Progress(
            dict(values["settings"]),
            int(values["rows"]),
            int(values["texts_bytes"]),
            int(values["ids_bytes"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def partial_rows(out: str | Path) -> tuple[int, int] | None:
    """``(rows encoded, documents)`` of an interrupted build of ``out``, or None when none is there."""
    progress = _read_progress(partial_path(out))
    if progress is None or not (partial_path(out) / "index").is_dir():
        return None
    return progress.rows, int(progress.settings.get("count", 0))


def _write_progress(partial: Path, progress: _Progress) -> None:
    """Replace progress.json atomically (write, fsync, rename): a kill leaves the old or the new."""
    tmp = partial / (PROGRESS + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(
            {
                "settings": progress.settings,
                "rows": progress.rows,
                "texts_bytes": progress.texts_bytes,
                "ids_bytes": progress.ids_bytes,
            },
            handle,
            indent=2,
        )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, partial / PROGRESS)


_SETTING_NAMES = {
    "model_fingerprint": "model (fingerprint)",
    "dim": "embedding dim",
    "corpus": "corpus (hash of ids and texts)",
    "count": "document count",
    "batch_size": "--batch-size",
    "encode_precision": "--encode-precision",
}


def _start(partial: Path, settings: dict[str, Any], resume: bool) -> _Progress:
    """Open the partial folder to continue, or create it; refuse one that cannot be continued."""
    progress = _read_progress(partial) if partial.exists() else None
    if partial.exists() and progress is None:
        raise FileExistsError(
            f"{partial}: exists but has no readable {PROGRESS}, so it is not an interrupted honed "
            f"build; fix: delete or move {partial}"
        )
    if progress is not None and not (partial / "index").is_dir():
        shutil.rmtree(partial)  # a build killed after its rename into place: bookkeeping only
        progress = None
    if progress is None:
        (partial / "index").mkdir(parents=True)
        shape = (settings["count"], settings["dim"])
        np.lib.format.open_memmap(partial / "index" / "full.npy", "w+", np.float32, shape).flush()
        (partial / "index" / "texts.jsonl").touch()
        (partial / "ids.jsonl").touch()
        progress = _Progress(settings, 0, 0, 0)
        _write_progress(partial, progress)
        return progress
    done = f"{progress.rows:,} of {progress.settings.get('count', 0):,} documents encoded"
    if not resume:
        raise FileExistsError(
            f"{partial}: left by an interrupted build ({done}); fix: pass --resume to continue "
            f"it, or delete {partial} to start over"
        )
    changed = [k for k in settings if progress.settings.get(k) != settings[k]]
    if changed:
        key = changed[0]
        raise ValueError(
            f"{partial}: cannot resume, it was started with another {_SETTING_NAMES.get(key, key)} "
            f"({progress.settings.get(key)!r} then, {settings[key]!r} now); fix: resume with the "
            f"same model, corpus, --batch-size and --encode-precision, or delete {partial} to start over"
        )
    _truncate(partial / "index" / "texts.jsonl", progress.texts_bytes, partial)
    _truncate(partial / "ids.jsonl", progress.ids_bytes, partial)
    return progress


def _truncate(file: Path, size: int, partial: Path) -> None:
    """Cut ``file`` back to ``size`` bytes: lines written after the last recorded batch go."""
    if not file.is_file() or file.stat().st_size < size:
        raise ValueError(
            f"{file}: shorter than {PROGRESS} records ({size} bytes), the interrupted build is "
            f"damaged; fix: delete {partial} to start over"
        )
    os.truncate(file, size)


def _batches(rows: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _append(handle: Any, lines: Iterable[str]) -> int:
    """Append ``lines`` (one JSON value each), make them durable, return the file size."""
    handle.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
    handle.flush()
    os.fsync(handle.fileno())
    return int(handle.tell())


def _open_full(partial: Path, count: int, dim: int) -> np.memmap:
    file = partial / "index" / "full.npy"
    try:
        full = np.lib.format.open_memmap(file, "r+")
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{file}: unreadable ({err!s:.60}); fix: delete {partial} to start over"
        ) from None
    if full.shape != (count, dim) or full.dtype != np.float32:
        raise ValueError(
            f"{file}: holds {full.shape} {full.dtype}, expected ({count}, {dim}) float32; "
            f"fix: delete {partial} to start over"
        )
    return full


def _encode_rest(
    partial: Path,
    corpus: Corpus,
    encode: Callable[[list[str]], np.ndarray],
    progress: _Progress,
    show_progress_bar: bool,
) -> CorpusScan:
    """Encode the rows after ``progress.rows``; return the count and hash of every row read."""
    from tqdm.auto import tqdm

    count, dim = progress.settings["count"], progress.settings["dim"]
    full = _open_full(partial, count, dim)  # (count, dim) float32, memory-mapped
    digest, rows = hashlib.sha256(), iter(corpus())
    for doc_id, text in itertools.islice(rows, progress.rows):  # done before: hash, skip
        digest.update(_row_bytes(doc_id, text))
    read = progress.rows
    with (
        (partial / "index" / "texts.jsonl").open("ab") as texts,
        (partial / "ids.jsonl").open("ab") as ids,
        tqdm(
            total=count, initial=read, unit="doc", disable=not show_progress_bar, desc="index"
        ) as bar,
    ):
        for batch in _batches(rows, progress.settings["batch_size"]):
            for doc_id, text in batch:
                digest.update(_row_bytes(doc_id, text))
            if read + len(batch) > count:
                return CorpusScan(read + len(batch), "")  # the corpus grew: refused by the caller
            vectors = np.asarray(encode([text for _, text in batch]))  # (b, dim)
            if vectors.shape != (len(batch), dim):
                raise ValueError(
                    f"the encoder returned shape {vectors.shape} for {len(batch)} texts, expected "
                    f"({len(batch)}, {dim})"
                )
            full[read : read + len(batch)] = truncate(vectors, dim)  # renormalised
            full.flush()  # vectors first, then texts and ids, then the progress that names them
            texts_bytes = _append(texts, (text for _, text in batch))
            ids_bytes = _append(ids, (doc_id for doc_id, _ in batch))
            read += len(batch)
            progress = _Progress(progress.settings, read, texts_bytes, ids_bytes)
            _write_progress(partial, progress)
            bar.update(len(batch))
    del full
    return CorpusScan(read, digest.hexdigest()[:16])


def _write_ids(lines: Path, out: Path) -> None:
    """``ids.json`` from ``ids.jsonl``, streamed; the same bytes as ``json.dumps(ids)``."""
    with lines.open(encoding="utf-8") as source, out.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for row, line in enumerate(source):
            handle.write((", " if row else "") + json.dumps(json.loads(line)))
        handle.write("]")


def build_folder(
    out: Path,
    corpus: Corpus,
    scan: CorpusScan,
    encode: Callable[[list[str]], np.ndarray],
    info: IndexInfo,
    options: BuildOptions,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Encode ``corpus`` into ``OUT.partial``, resumably, and move the finished index to ``out``.

    Args:
        out: the index folder to write.
        corpus: the documents, re-iterable; ``scan`` is its first pass (:func:`scan_corpus`).
        scan: document count and hash; ``info.count`` must be ``scan.count``.
        encode: texts -> ``(len(texts), info.dim)`` embeddings.
        info: what index.json will record.
        options: batch size, resume, overwrite, graph settings, progress bars.
        write_extra: writes more files into the finished folder (see
            :func:`honed.index.store.finish_index`).

    Raises:
        FileExistsError: ``out`` exists (without ``overwrite``), or ``OUT.partial`` does
            (without ``resume``), or ``OUT.partial`` is not a honed build.
        ValueError: ``OUT.partial`` was started with another model, corpus or batch settings,
            or is damaged; the corpus changed during the build.
    """
    check_out(out, options.overwrite)  # before the long encoding, and again before the rename
    partial = partial_path(out)
    settings = {
        "model_fingerprint": info.model_fingerprint,
        "dim": info.dim,
        "corpus": scan.digest,
        "count": scan.count,
        "batch_size": int(options.batch_size),
        "encode_precision": str(options.encode_precision),
    }
    progress = _start(partial, settings, options.resume)
    read = _encode_rest(partial, corpus, encode, progress, options.show_progress_bar)
    if read != scan:
        shutil.rmtree(partial, ignore_errors=True)  # rows of two different corpora: useless
        raise ValueError(
            f"the corpus changed while it was indexed ({scan.count:,} documents when scanned, "
            f"{read.count:,} or more when encoded, or other texts); fix: index a corpus that no "
            "other process writes to"
        )
    _write_ids(partial / "ids.jsonl", partial / "index" / "ids.json")
    finish_index(
        partial / "index",
        out,
        info,
        options.overwrite,
        options.batch_size,
        options.hnsw,
        options.show_progress_bar,
        write_extra,
    )
    shutil.rmtree(partial, ignore_errors=True)
