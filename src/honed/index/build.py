"""Streaming, resumable index builds: a corpus larger than memory, encoded batch by batch.

A build reads its corpus twice, one document at a time. A first pass (no model) counts the
documents and hashes ids and texts; the second encodes ``batch_size`` documents at a time into
``OUT.partial`` beside the destination ``OUT`` (layout and resume rules in
:mod:`honed.index.partial`).

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.batches import Progress, encode_in_batches
from honed.encoding.dims import truncate
from honed.encoding.encoder import (
    EmbeddingCache,
    embedding_dim,
    encode_texts,
    load_model,
    model_fingerprint,
    resolve_model_name,
    resolve_precision,
    token_lengths,
)
from honed.files import clear_folder
from honed.index.ann import import_faiss
from honed.index.checks import check_shortlist_dim
from honed.index.options import BuildOptions
from honed.index.partial import (
    Progress as BuildProgress,
)
from honed.index.partial import (
    build_lock,
    check_idle,
    partial_path,
    start,
    write_progress,
)
from honed.index.store import IndexInfo, check_out, finish_index, info_for

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "Corpus",
    "CorpusScan",
    "build_folder",
    "check_build",
    "encode_into",
    "resolve_model",
    "scan_corpus",
]

# A re-iterable source of (id, text): called once per pass, it returns a fresh iterator.
Corpus = Callable[[], Iterable[tuple[str, str]]]
# Texts -> their vectors (n, dim), calling the progress callback as batches of them are done.
Encode = Callable[[list[str], Progress], np.ndarray]
ENCODE_BATCH = 64  # texts per forward pass (sentence-transformers' default)


@dataclass(frozen=True)
class CorpusScan:
    """What the first pass learns: the document count and a hash of the ``(id, text)`` rows."""

    count: int
    digest: str


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


def _check_vectors(vectors: np.ndarray, batch: list[tuple[str, str]], dim: int) -> None:
    """Refuse a batch of the wrong shape, or with a NaN/inf value: it would vanish from results."""
    if vectors.shape != (len(batch), dim):
        raise ValueError(
            f"the encoder returned shape {vectors.shape} for {len(batch)} texts, expected "
            f"({len(batch)}, {dim})"
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise ValueError(
            f"the encoder returned a NaN or infinite vector for document {batch[bad[0]][0]!r} "
            f"({bad.size} in this batch); fix: check the model (fp16 overflow? try "
            "--encode-precision fp32)"
        )


def _encode_rest(
    partial: Path,
    corpus: Corpus,
    encode: Encode,
    progress: BuildProgress,
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
            # The bar moves with every forward pass, not once per committed batch of 10,000.
            vectors = np.asarray(encode([text for _, text in batch], bar.update))  # (b, dim)
            _check_vectors(vectors, batch, dim)
            full[read : read + len(batch)] = truncate(vectors, dim)  # renormalised
            full.flush()  # vectors first, then texts and ids, then the progress that names them
            texts_bytes = _append(texts, (text for _, text in batch))
            ids_bytes = _append(ids, (doc_id for doc_id, _ in batch))
            read += len(batch)
            progress = BuildProgress(progress.settings, read, texts_bytes, ids_bytes)
            write_progress(partial, progress)
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
    encode: Encode,
    info: IndexInfo,
    options: BuildOptions,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Encode ``corpus`` into ``OUT.partial``, resumably, and move the finished index to ``out``.

    Args:
        out: the index folder to write.
        corpus: the documents, re-iterable; ``scan`` is its first pass (:func:`scan_corpus`).
        scan: document count and hash; ``info.count`` must be ``scan.count``.
        encode: texts and a progress callback -> ``(len(texts), info.dim)`` embeddings; it
            calls the callback with the number of texts done after each forward pass.
        info: what index.json will record.
        options: batch size, resume, overwrite, graph settings, progress bars.
        write_extra: writes more files into the finished folder (see
            :func:`honed.index.store.finish_index`).

    Raises:
        FileExistsError: ``out`` exists (without ``overwrite``), or ``OUT.partial`` does
            (without ``resume``), or ``OUT.partial`` is not a honed build.
        FolderLockedError: another process is building ``out`` (a FileExistsError too).
        ValueError: ``OUT.partial`` was started with another model, corpus or batch settings,
            or is damaged; the corpus changed during the build; the encoder returned a vector
            that is not finite.
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
    with build_lock(out):  # from before the folder is read: a second build is refused
        progress = start(partial, settings, options.resume)
        read = _encode_rest(partial, corpus, encode, progress, options.show_progress_bar)
        if read != scan:
            clear_folder(partial)  # rows of two different corpora: useless
            raise ValueError(
                f"the corpus changed while it was indexed ({scan.count:,} documents when scanned, "
                f"{read.count:,} or more when encoded, or other texts); fix: index a corpus that "
                "no other process writes to"
            )
        _write_ids(partial / "ids.jsonl", partial / "index" / "ids.json")
        finish_index(partial / "index", out, info, options, write_extra)
        clear_folder(partial)  # the lock goes last, with the folder


def resolve_model(
    model: SentenceTransformer | str, model_name: str | None
) -> tuple[SentenceTransformer, str]:
    """``model`` loaded, and the name index.json records (a model folder's absolute path)."""
    if not isinstance(model, str):
        return model, model_name or ""
    resolved = resolve_model_name(model)
    name = model_name or (str(Path(resolved).resolve()) if Path(resolved).exists() else resolved)
    return load_model(resolved), name


def check_build(model: SentenceTransformer, out: Path, options: BuildOptions) -> None:
    """Refuse what ``options`` cannot build with ``model`` now, not after hours of encoding."""
    if options.hnsw is not None:
        import_faiss()
    check_out(out, options.overwrite)
    check_idle(out)  # another process is building ``out``
    check_shortlist_dim(options.shortlist_dim, embedding_dim(model))


def encode_into(
    model: SentenceTransformer,
    corpus: Corpus,
    out: Path,
    options: BuildOptions,
    cache: EmbeddingCache | None = None,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Scan ``corpus`` (count, hash), then encode it with ``model`` into ``out``.

    Args:
        model: the encoder (checked against ``options`` by :func:`check_build` first).
        corpus: the documents, re-iterable.
        out: the index folder to write (resumably, see :func:`build_folder`).
        options: the build settings; ``options.model_name`` is recorded as given.
        cache: reuse the embeddings of an :class:`EmbeddingCache` (and its precision).
        write_extra: writes more files (the BM25 index) into the finished folder.
    """
    # "auto" recorded as what it means here (bf16 or fp32), so a resume on hardware where it
    # means the other is refused rather than mixing the two in one index.
    wanted = cache.precision if cache is not None else options.encode_precision
    resolved = resolve_precision(wanted, str(model.device)).value
    options = replace(options, encode_precision=resolved)
    scan = scan_corpus(corpus)
    fingerprint = cache.fingerprint(model) if cache else model_fingerprint(model)
    info = info_for(fingerprint, embedding_dim(model), scan.count, options)

    def encode(texts: list[str], progress: Progress) -> np.ndarray:
        if cache is not None:
            return cache.encode(model, texts, fingerprint=fingerprint, progress=progress)
        return encode_in_batches(
            lambda batch: encode_texts(
                model, batch, batch_size=ENCODE_BATCH, precision=options.encode_precision
            ),
            texts, ENCODE_BATCH, progress, lengths=token_lengths(model, texts),
        )

    build_folder(out, corpus, scan, encode, info, options, write_extra)
