"""An index folder on disk: written atomically, read back memory-mapped, errors naming the file.

:mod:`honed.index.search` searches; this module owns the files. A folder holds::

    index.json        IndexInfo: model fingerprint, dims, precision, count, version
    ids.json          document ids, row order
    texts.jsonl       one JSON string per line, row order (written by Index.build)
    full.npy          (count, dim) float32, L2-normalised
    short.npy         (count, shortlist_dim) float32 | int8, or (count, ceil(shortlist_dim/8)) uint8
    short_scale.npy   (shortlist_dim,) float32, int8 only
    short.hnsw        faiss HNSW graph of the float32 shortlist prefix (built with ann="hnsw")
    bm25/             a bm25s index of the same texts + honed_bm25.json (built with bm25=True)

Every file is written into a temporary folder beside the destination, which is renamed into
place only when complete: a failed or interrupted build never leaves a half index behind and
never replaces a good one. :meth:`honed.index.index.Index.build` keeps that folder at
``OUT.partial`` so that an interrupted build can be resumed (:mod:`honed.index.partial`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from honed import __version__
from honed.encoding.dims import truncate
from honed.files import refuse_existing
from honed.index.ann import ANN_FILE, AnnKind, build_hnsw, write_hnsw
from honed.index.integrity import record_checksums
from honed.index.options import BuildOptions
from honed.index.partial import build_lock
from honed.index.quantize import Quantization, as_quantization, int8_scales, quantize
from honed.retrieval.fusion import FusionConfig

__all__ = [
    "IndexInfo",
    "check_out",
    "finish_index",
    "info_for",
    "new_info",
    "open_arrays",
    "read_info",
    "read_texts",
    "rebuild_hint",
    "write_index",
]


@dataclass(frozen=True)
class IndexInfo:
    """What ``index.json`` records about an index."""

    model_fingerprint: str
    model_name: str
    dim: int
    shortlist_dim: int
    precision: Quantization
    normalized: bool
    count: int
    honed_version: str
    created: str
    fusion: FusionConfig | None = None  # how search_hybrid fuses; absent from older index.json
    ann: AnnKind | None = None  # "hnsw": short.hnsw holds a graph; absent from older index.json

    def __post_init__(self) -> None:
        if self.ann is not None and not isinstance(self.ann, AnnKind):
            object.__setattr__(self, "ann", AnnKind(self.ann))  # "hnsw" read from a JSON record

    def to_dict(self) -> dict[str, Any]:
        fusion = self.fusion.to_dict() if self.fusion else None
        ann = self.ann.value if self.ann else None
        return {**asdict(self), "precision": self.precision.value, "fusion": fusion, "ann": ann}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> IndexInfo:
        """The inverse of :meth:`to_dict`; KeyError, TypeError or ValueError when incomplete."""
        # Fields with a default were added later: an older index.json may lack them.
        picked = {
            f.name: values[f.name] for f in fields(cls) if f.default is MISSING or f.name in values
        }
        fusion = FusionConfig.from_dict(picked["fusion"]) if picked.get("fusion") else None
        return cls(**{**picked, "precision": Quantization(picked["precision"]), "fusion": fusion})


def rebuild_hint(folder: Path, info: IndexInfo | None = None) -> str:
    model = (info.model_name if info else "") or "MODEL"
    extra = (
        f" --shortlist-dim {info.shortlist_dim} --precision {info.precision.value}" if info else ""
    )
    extra += f" --ann {info.ann.value}" if info and info.ann else ""
    return f"fix: rebuild with honed index {model} DATA --out {folder}{extra} --overwrite"


def read_info(path: str | Path) -> IndexInfo:
    """Read and validate ``index.json`` of the index folder ``path``.

    Raises:
        FileNotFoundError: no such folder or no index.json in it.
        ValueError: index.json is not valid JSON or lacks a field (names the file and the fix).
    """
    folder = Path(path)
    file = folder / "index.json"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: index folder does not exist; fix: build it with honed index MODEL DATA --out {folder}"
        )
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: missing, so {folder} is not a honed index; {rebuild_hint(folder)}"
        )
    try:
        info = IndexInfo.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{file}: unreadable or incomplete ({err!s:.80}); {rebuild_hint(folder)}"
        ) from None
    for name in ("dim", "shortlist_dim", "count"):
        value = getattr(info, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{file}: {name} must be a positive integer, got {value!r}; {rebuild_hint(folder)}"
            )
    return info


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite``; only ever replace a honed index folder."""
    refuse_existing(
        out,
        overwrite,
        ours=lambda p: (p / "index.json").is_file(),
        what="a honed index folder (no index.json)",
    )


def _open_npy(file: Path, shape: tuple[int, ...], dtype: Any, hint: str) -> np.ndarray:
    """Memory-map ``file``, checking it is a whole .npy of the recorded shape and dtype."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing from the index; {hint}")
    try:
        array = np.load(file, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"{file}: unreadable .npy, truncated or corrupted ({reason}); {hint}"
        ) from None
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise ValueError(
            f"{file}: holds {array.shape} {array.dtype}, but index.json expects {shape} "
            f"{np.dtype(dtype)}; the file is truncated or from another index; {hint}"
        )
    return array


def _write_short(folder: Path, full: np.ndarray, info: IndexInfo, chunk: int) -> None:
    """Derive the fast tier from ``full`` in chunks: ``short.npy`` (and ``short_scale.npy``)."""
    sd, precision, n = info.shortlist_dim, info.precision, full.shape[0]
    scales = None
    if precision is Quantization.INT8:
        scales = np.zeros(sd, dtype=np.float32)
        for start in range(0, n, chunk):
            scales = np.maximum(scales, int8_scales(truncate(full[start : start + chunk], sd)))
        np.save(folder / "short_scale.npy", scales)
    width = -(-sd // 8) if precision is Quantization.BINARY else sd
    dtype = {Quantization.FLOAT32: np.float32, Quantization.INT8: np.int8}.get(precision, np.uint8)
    short = np.lib.format.open_memmap(folder / "short.npy", "w+", dtype, (n, width))
    for start in range(0, n, chunk):
        short[start : start + chunk] = quantize(
            truncate(full[start : start + chunk], sd), precision, scales
        )
    short.flush()
    del short


def write_index(
    out: Path,
    batches: Iterable[np.ndarray],
    info: IndexInfo,
    ids: Sequence[str],
    texts: Sequence[str] | None,
    options: BuildOptions,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Write an index into a temporary folder beside ``out``, then move it into place.

    A build that fails (or is interrupted) removes its temporary folder and leaves ``out`` as it
    was, so a half-written index never looks finished and never replaces a good one.
    ``write_extra(tmp)`` writes more files (the BM25 index) into the temporary folder first;
    see :func:`finish_index` for ``options``.
    """
    check_out(out, options.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    with build_lock(out):  # the same lock as a streaming build of ``out``
        tmp.mkdir()
        try:
            full = np.lib.format.open_memmap(
                tmp / "full.npy", "w+", np.float32, (info.count, info.dim)
            )
            written = 0
            for batch in batches:  # (b, dim) each, streamed so memory stays one batch
                full[written : written + len(batch)] = truncate(batch, info.dim)  # renormalised
                written += len(batch)
            if written != info.count:
                raise ValueError(f"the embeddings have {written} rows but ids has {info.count}")
            full.flush()
            del full
            (tmp / "ids.json").write_text(json.dumps(list(ids)), encoding="utf-8")
            if texts is not None:
                with (tmp / "texts.jsonl").open("w", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
            finish_index(tmp, out, info, options, write_extra)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def finish_index(
    folder: Path,
    out: Path,
    info: IndexInfo,
    options: BuildOptions,
    write_extra: Callable[[Path], None] | None = None,
) -> None:
    """Complete ``folder`` (full.npy, ids.json and texts written) and move it to ``out``.

    Derives the fast tier (short.npy, short_scale.npy) and, when ``info.ann`` is set, the HNSW
    graph (short.hnsw, settings ``options.hnsw``) from full.npy ``options.batch_size`` rows at a
    time; runs ``write_extra(folder)``; writes index.json last; then renames ``folder`` to
    ``out`` (replacing an index there only with ``options.overwrite``), so an index at ``out``
    is replaced only by a complete one.
    """
    full = np.load(folder / "full.npy", mmap_mode="r")  # (count, dim)
    chunk, sd = options.batch_size, info.shortlist_dim
    _write_short(folder, full, info, chunk)
    if info.ann is not None:
        chunks = (truncate(full[s : s + chunk], sd) for s in range(0, info.count, chunk))
        graph = build_hnsw(chunks, sd, info.count, options.hnsw, options.show_progress_bar)
        write_hnsw(graph, folder / ANN_FILE)
    del full
    if write_extra is not None:
        write_extra(folder)
    record = {**info.to_dict(), "sha256": record_checksums(folder)}  # verified at every load
    (folder / "index.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    check_out(out, options.overwrite)  # again: the folder may have appeared during a long build
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        out.rename(old)
    folder.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def new_info(
    fingerprint: str,
    model_name: str,
    dim: int,
    shortlist_dim: int,
    precision: Quantization | str,
    count: int,
) -> IndexInfo:
    """A fresh :class:`IndexInfo` of this honed version, created now (UTC)."""
    return IndexInfo(
        model_fingerprint=fingerprint,
        model_name=model_name,
        dim=dim,
        shortlist_dim=int(shortlist_dim),
        precision=as_quantization(precision),
        normalized=True,
        count=count,
        honed_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def info_for(fingerprint: str, dim: int, count: int, options: BuildOptions) -> IndexInfo:
    """The :class:`IndexInfo` a build with ``options`` records for ``count`` vectors of ``dim``."""
    name = options.model_name or ""
    info = new_info(fingerprint, name, dim, options.shortlist_dim, options.precision, count)
    return replace(info, fusion=options.fusion, ann=AnnKind.HNSW if options.hnsw else None)


def _read_ids(folder: Path, info: IndexInfo, hint: str) -> list[str]:
    file = folder / "ids.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing from the index; {hint}")
    try:
        ids = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: unreadable JSON ({err!s:.60}); {hint}") from None
    if not isinstance(ids, list) or len(ids) != info.count:
        got = f"{len(ids)} ids" if isinstance(ids, list) else type(ids).__name__
        raise ValueError(f"{file}: expected a list of {info.count} ids, got {got}; {hint}")
    return ids


def open_arrays(
    folder: Path, info: IndexInfo
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """``(ids, full, short, scales)`` of an index folder, arrays memory-mapped read-only.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is unreadable, truncated, or of another shape or dtype than
            ``info`` records (names the file and the rebuild command).
    """
    hint = rebuild_hint(folder, info)
    ids = _read_ids(folder, info, hint)
    n, sd = info.count, info.shortlist_dim
    full = _open_npy(folder / "full.npy", (n, info.dim), np.float32, hint)
    shape, dtype = {
        Quantization.FLOAT32: ((n, sd), np.float32),
        Quantization.INT8: ((n, sd), np.int8),
        Quantization.BINARY: ((n, -(-sd // 8)), np.uint8),
    }[info.precision]
    short = _open_npy(folder / "short.npy", shape, dtype, hint)
    scales = None
    if info.precision is Quantization.INT8:
        scales = _open_npy(folder / "short_scale.npy", (sd,), np.float32, hint)
    return ids, full, short, scales


def read_texts(folder: Path, info: IndexInfo, wanted: dict[int, str]) -> dict[str, str]:
    """``id -> text`` for the rows in ``wanted`` (``row -> id``), read from texts.jsonl."""
    file = folder / "texts.jsonl"
    hint = rebuild_hint(folder, info)
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: missing (an index built from embeddings has no texts); {hint}"
        )
    found: dict[str, str] = {}
    with file.open(encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            if len(found) == len(wanted):
                break
            if row in wanted:
                try:
                    found[wanted[row]] = str(json.loads(line))
                except ValueError:
                    raise ValueError(f"{file}:{row + 1}: not a JSON string; {hint}") from None
    if len(found) < len(wanted):
        raise ValueError(f"{file}: fewer lines than the index's {info.count} documents; {hint}")
    return found
