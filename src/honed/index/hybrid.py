"""The BM25 side of an index folder: ``bm25/`` and the fusion record that hybrid search replays.

Built with ``bm25=True`` an index holds a BM25 index of the same texts (``bm25/``,
:meth:`~honed.retrieval.dense.BM25Retriever.save`) and, with a fusion, the
:class:`~honed.retrieval.fusion.FusionConfig` chosen on dev in index.json.
:meth:`honed.index.index.Index.search_hybrid` fuses the two runs as ``honed run`` evaluated them:
the top ``fusion.depth`` documents of each system, fused per query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from honed.index.options import BuildOptions
from honed.index.store import IndexInfo
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.fusion import FusionConfig
from honed.types import Run

__all__ = ["BM25_DIR", "bm25_for", "bm25_writer", "fused_hits", "load_bm25", "recorded_fusion"]

BM25_DIR = "bm25"
"""Sub-folder of an index holding its BM25 index (:meth:`BM25Retriever.save`)."""


def bm25_for(
    ids: Sequence[str], texts: Sequence[str] | None, options: BuildOptions
) -> BM25Retriever | None:
    """The BM25 index to store beside the vectors when ``options.bm25``, else None.

    Raises:
        ValueError: ``options.bm25`` without ``texts``.
    """
    if not options.bm25:
        return None
    if texts is None:
        raise ValueError("bm25=True needs the document texts; fix: pass texts=[...]")
    return BM25Retriever(ids, texts)


def bm25_writer(retriever: BM25Retriever | None) -> Callable[[Path], None] | None:
    """Writes ``retriever`` into a folder's ``bm25/`` (the ``write_extra`` of a build), or None."""
    return None if retriever is None else (lambda folder: retriever.save(folder / BM25_DIR))


def _hybrid_fix(folder: Path | None, info: IndexInfo) -> str:
    return (
        f"fix: rebuild with honed index {info.model_name or 'MODEL'} DATA --out {folder or 'DIR'} "
        "--bm25 --fusion-from RUN_DIR (or --fusion zscore --dense-weight 0.7) --overwrite"
    )


def load_bm25(folder: Path | None, ids: Sequence[str], info: IndexInfo) -> BM25Retriever:
    """The BM25 index in ``folder/bm25`` (memory-mapped), aligned with the index's ``ids``.

    Raises:
        FileNotFoundError: no folder (an in-memory index) or no ``bm25/`` in it.
    """
    bm25 = folder / BM25_DIR if folder is not None else None
    if bm25 is None or not bm25.is_dir():
        raise FileNotFoundError(
            f"{folder or 'in-memory index'}: no BM25 index (bm25/), so hybrid search cannot run; "
            f"{_hybrid_fix(folder, info)}"
        )
    return BM25Retriever.load(bm25, ids, fix=_hybrid_fix(folder, info))


def recorded_fusion(folder: Path | None, info: IndexInfo) -> FusionConfig:
    """The fusion index.json records; ValueError naming the rebuild when there is none."""
    if info.fusion is None:
        raise ValueError(
            f"{folder or 'in-memory index'}: index.json records no fusion method and weight, so "
            f"hybrid search has no evaluated setting to reproduce; {_hybrid_fix(folder, info)}"
        )
    return info.fusion


def fused_hits(
    fusion: FusionConfig, dense: Run, lexical: Run, k: int
) -> list[list[tuple[str, float]]]:
    """The best ``k`` of ``fusion.fuse(dense, lexical)`` per query of ``dense``, in its order."""
    fused = fusion.fuse(dense, lexical, max(k, fusion.depth))
    return [list(fused.get(q, {}).items())[:k] for q in dense]
