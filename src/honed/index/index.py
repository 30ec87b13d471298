"""A two-stage Matryoshka index: shortlist on a few leading dims, re-rank with the full vectors.

A corpus of ``n`` documents embedded at ``dim`` dims costs ``4 * dim`` bytes per document in
float32 (1,536 B at 384 dims: 1.5 GB per million documents), and exact search reads all of it
for every query. A model trained with MatryoshkaLoss ranks well on its first dims alone, so an
:class:`Index` keeps a *fast tier* (``short.npy``: the first ``shortlist_dim`` dims in float32,
int8 or binary, see :mod:`honed.index.quantize`) to shortlist on, and re-ranks the shortlist
with the full vectors (``full.npy``); the search itself is in :mod:`honed.index.search`.

At 128 dims the fast tier is 1/3 of the float32 bytes (1/12 in int8, 1/96 in binary), and the
full vectors are read for ``shortlist`` rows per query only, so they can stay on disk
(memory-mapped). An index is a folder of ``.npy`` and JSON files (layout in
:mod:`honed.index.store`), loaded with ``mmap``; this module makes one (settings in
:class:`~honed.index.options.BuildOptions`) and opens one.

Built with ``bm25=True`` it also holds a BM25 index of the same texts (``bm25/``) and, with a
:class:`~honed.retrieval.fusion.FusionConfig`, the fusion chosen on dev: :meth:`Index.search_hybrid`
then serves the hybrid that ``honed run`` evaluated (:mod:`honed.index.hybrid`).

Example:
    >>> index = Index.build(model, ids, texts, "index", shortlist_dim=128)  # doctest: +SKIP
    >>> index = Index.load("index", model)  # doctest: +SKIP
    >>> index.search(model.encode(["query"], normalize_embeddings=True), k=10)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.data.corpus import corpus_file, iter_corpus
from honed.encoding.dims import truncate
from honed.encoding.encoder import EmbeddingCache, model_fingerprint
from honed.index.ann import ANN_FILE, AnnKind, build_hnsw, import_faiss, read_hnsw
from honed.index.build import check_build, encode_into, resolve_model
from honed.index.checks import check_ids, check_shortlist_dim, positive
from honed.index.hybrid import bm25_for, bm25_writer
from honed.index.integrity import verify_folder
from honed.index.options import DEFAULT_SHORTLIST_DIM, BuildOptions
from honed.index.quantize import Quantization, int8_scales, quantize
from honed.index.search import IndexSearch
from honed.index.store import IndexInfo, info_for, open_arrays, read_info, rebuild_hint, write_index
from honed.retrieval.bm25 import BM25Retriever

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Index"]

# Settings a build method has no use for: naming one is a TypeError, as an unknown keyword is.
_STREAMED_REFUSES = ("bm25", "fusion")  # BM25 indexes every text at once: use build
_EMBEDDED_REFUSES = ("batch_size", "encode_precision", "resume", "show_progress_bar")


class Index(IndexSearch):
    """A two-stage index; make one with :meth:`build`, :meth:`load` or :meth:`from_embeddings`.

    Search it with :meth:`search`, :meth:`search_exact` and :meth:`search_hybrid` (see
    :class:`~honed.index.search.IndexSearch`).

    Attributes:
        info: what index.json records.
        ids: document ids in row order.
        full: ``(count, dim)`` float32 L2-normalised vectors (memory-mapped when loaded).
        short: the fast-tier codes, see :mod:`honed.index.quantize`.
        scales: ``(shortlist_dim,)`` int8 scales, or None.
        path: the folder, or None for an index held in memory.
        ann: the faiss HNSW graph of the shortlist (``short.hnsw``), or None (flat shortlist).
    """

    def __init__(
        self,
        info: IndexInfo,
        ids: Sequence[str],
        full: np.ndarray,
        short: np.ndarray,
        scales: np.ndarray | None = None,
        path: Path | None = None,
        ann: Any = None,
        bm25: BM25Retriever | None = None,
    ) -> None:
        self.info = info
        self.ids = list(ids)
        self.full = full
        self.short = short
        self.scales = scales
        self.path = path
        self.ann = ann
        self._bm25 = bm25

    def __len__(self) -> int:
        return self.info.count

    @property
    def fast_tier_bytes(self) -> int:
        """Bytes of the shortlist codes (and int8 scales): what must stay in memory."""
        return int(self.short.nbytes + (self.scales.nbytes if self.scales is not None else 0))

    # ----------------------------------------------------------------------- make one

    @classmethod
    def build(
        cls,
        model: SentenceTransformer | str,
        ids: Sequence[str],
        texts: Sequence[str],
        out: str | Path,
        shortlist_dim: int = DEFAULT_SHORTLIST_DIM,
        precision: Quantization | str = Quantization.FLOAT32,
        *,
        cache: EmbeddingCache | None = None,
        **settings: Any,
    ) -> Index:
        """Encode ``texts`` once with ``model`` and write an index folder at ``out``.

        Texts are encoded ``batch_size`` at a time into ``OUT.partial`` (memory-mapped
        ``full.npy``, appended ``texts.jsonl``), so memory holds one batch whatever the corpus
        size (10,000 x 384 float32 = 15 MB); the finished folder is renamed to ``out``. An
        interrupted build continues with ``resume=True`` (see :mod:`honed.index.build`).

        Args:
            model: a loaded model, or a model folder / hub id to load.
            ids: unique document ids, aligned with ``texts``.
            texts: document texts.
            out: index folder to create.
            shortlist_dim: leading dims of the fast tier, ``1 <= shortlist_dim <= dim``.
            precision: fast-tier storage, float32, int8 or binary.
            cache: reuse embeddings of an :class:`EmbeddingCache` (it keeps every embedding).
            **settings: the other :class:`~honed.index.options.BuildOptions` fields, e.g.
                ``batch_size``, ``overwrite``, ``resume``, ``ann="hnsw"``, ``bm25=True`` (for
                :meth:`search_hybrid`) and ``fusion`` (how it fuses, recorded in index.json).

        Returns:
            The written index, loaded from ``out`` (memory-mapped).

        Raises:
            ValueError: mismatched or duplicate ids, an empty corpus, a bad setting (see
                :class:`~honed.index.options.BuildOptions`), or an ``OUT.partial`` of another
                model, corpus or batch settings.
            FileExistsError: ``out`` exists and ``overwrite`` is False, or is not an index
                folder; ``OUT.partial`` exists and ``resume`` is False.
            ImportError: ``ann`` is set and faiss is not installed.
            TypeError: a keyword that is not a BuildOptions field.
        """
        chosen = {"shortlist_dim": shortlist_dim, "precision": precision, **settings}
        options = BuildOptions.of("Index.build", chosen)
        model, name = resolve_model(model, options.model_name)
        options = replace(options, model_name=name)
        check_ids(ids, len(texts), "texts")
        check_build(model, Path(out), options)
        retriever = bm25_for(ids, texts, options)  # seconds, before the long encoding
        encode_into(
            model, lambda: zip(ids, texts), Path(out), options, cache, bm25_writer(retriever)
        )
        return cls.load(out)

    @classmethod
    def build_from_corpus(
        cls,
        model: SentenceTransformer | str,
        corpus: str | Path,
        out: str | Path,
        shortlist_dim: int = DEFAULT_SHORTLIST_DIM,
        precision: Quantization | str = Quantization.FLOAT32,
        *,
        cache: EmbeddingCache | None = None,
        **settings: Any,
    ) -> Index:
        """:meth:`build` from a BEIR folder or ``corpus.jsonl``, read one line at a time.

        For a corpus larger than memory: the file is read twice (a validating pass that counts
        and hashes the documents, then the encoding pass), and only the set of ids stays in
        memory (~100 B per id). The other arguments are as in :meth:`build`, without ``bm25``
        and ``fusion`` (a BM25 index needs every text at once: use :meth:`build`); a ``cache``
        made with ``memory=False`` and a ``directory`` keeps memory bounded and writes the
        vectors to disk as they are computed, so an interrupted build loses none of them.

        Raises:
            FileNotFoundError: no such corpus.
            DataError: a bad corpus line (file, line and fix), a duplicate id, no documents.
            ValueError, FileExistsError, ImportError, TypeError: as in :meth:`build`.
        """
        chosen = {"shortlist_dim": shortlist_dim, "precision": precision, **settings}
        options = BuildOptions.of("Index.build_from_corpus", chosen, _STREAMED_REFUSES)
        file = corpus_file(corpus)  # a missing corpus fails before the model loads
        model, name = resolve_model(model, options.model_name)
        options = replace(options, model_name=name)
        check_build(model, Path(out), options)
        encode_into(model, lambda: iter_corpus(file), Path(out), options, cache)
        return cls.load(out)

    @classmethod
    def from_embeddings(
        cls,
        embeddings: np.ndarray,
        ids: Sequence[str],
        shortlist_dim: int = DEFAULT_SHORTLIST_DIM,
        precision: Quantization | str = Quantization.FLOAT32,
        *,
        out: str | Path | None = None,
        texts: Sequence[str] | None = None,
        model_fingerprint: str = "",
        chunk_size: int = 100_000,
        **settings: Any,
    ) -> Index:
        """An index of already computed ``(n, dim)`` embeddings, in memory or written to ``out``.

        Rows are L2-renormalised. In memory (``out=None``) the arrays are copies; written, they
        are processed ``chunk_size`` rows at a time and the index is loaded back memory-mapped.
        ``model_fingerprint`` and the settings ``model_name``, ``overwrite``, ``bm25`` (needs
        ``texts``), ``fusion`` and ``ann`` are recorded or used as in :meth:`build`.

        Raises:
            ValueError: bad shapes, ids, shortlist_dim or precision; a zero or non-finite row;
                ``bm25`` without ``texts``, or ``fusion`` without ``bm25``.
            FileExistsError: see :meth:`build`.
            TypeError: a keyword that is not a BuildOptions field, or one used only by
                :meth:`build` (``batch_size``, ``encode_precision``, ``resume``,
                ``show_progress_bar``).
        """
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
            raise ValueError(
                f"embeddings must be a finite 2-D (n, dim) array, got shape {embeddings.shape}"
            )
        chosen = {"shortlist_dim": shortlist_dim, "precision": precision, **settings}
        options = BuildOptions.of("Index.from_embeddings", chosen, _EMBEDDED_REFUSES)
        check_ids(ids, embeddings.shape[0], "embedding rows")
        check_shortlist_dim(options.shortlist_dim, embeddings.shape[1])
        chunk = positive("chunk_size", chunk_size)
        if texts is not None and len(texts) != len(ids):
            raise ValueError(f"texts has {len(texts)} entries but ids has {len(ids)}")
        if options.hnsw is not None:
            import_faiss()
        retriever = bm25_for(ids, texts, options)
        info = info_for(model_fingerprint, embeddings.shape[1], len(ids), options)
        if out is None:
            return cls._in_memory(embeddings, ids, info, options, retriever)
        batches = (embeddings[s : s + chunk] for s in range(0, len(ids), chunk))
        options = replace(options, batch_size=chunk)
        write_index(Path(out), batches, info, ids, texts, options, bm25_writer(retriever))
        return cls.load(out)

    @classmethod
    def _in_memory(
        cls,
        embeddings: np.ndarray,
        ids: Sequence[str],
        info: IndexInfo,
        options: BuildOptions,
        retriever: BM25Retriever | None,
    ) -> Index:
        full = truncate(embeddings, info.dim)  # (n, dim), a normalised copy
        short = truncate(full, info.shortlist_dim)  # (n, shortlist_dim)
        scales = int8_scales(short) if info.precision is Quantization.INT8 else None
        hnsw = options.hnsw
        graph = build_hnsw([short], info.shortlist_dim, len(ids), hnsw) if hnsw else None
        codes = quantize(short, info.precision, scales)
        return cls(info, ids, full, codes, scales, ann=graph, bm25=retriever)

    @classmethod
    def load(
        cls, path: str | Path, model: SentenceTransformer | None = None, verify: bool = True
    ) -> Index:
        """Open the index folder ``path``, memory-mapping its arrays.

        Args:
            path: a folder written by :meth:`build` or :meth:`from_embeddings`.
            model: when given, refuse the index unless this model built it (same fingerprint):
                queries embedded by another model are not comparable with its vectors.
            verify: check every file against the sha256 recorded at build time, the vectors for
                NaN/inf and the ids for duplicates (one read of each file; see
                :mod:`honed.index.integrity`). An index built before checksums were recorded
                loads with a warning.

        Raises:
            FileNotFoundError: no folder, or a file of the index is missing.
            ValueError: a file is unreadable, truncated, of the wrong shape or changed since the
                build, a vector is NaN/inf, an id appears twice, or ``model`` is not the model
                that built the index; each message names the file and the fix.
            ImportError: the index has an HNSW graph and faiss is not installed.
        """
        folder = Path(path)
        info = read_info(folder)
        if model is not None:
            given = model_fingerprint(model)
            if given != info.model_fingerprint:
                raise ValueError(
                    f"{folder}: built by model {info.model_name or '?'} (fingerprint "
                    f"{info.model_fingerprint}), but the given model has fingerprint {given}: its "
                    f"query vectors would not match; fix: search with --model {info.model_name or 'MODEL'}"
                    f", or {rebuild_hint(folder, info).removeprefix('fix: ')} with the new model"
                )
        ids, full, short, scales = open_arrays(folder, info)
        graph, hint = None, rebuild_hint(folder, info)
        if info.ann is AnnKind.HNSW:
            graph = read_hnsw(folder / ANN_FILE, info.count, info.shortlist_dim, hint)
        if verify:
            arrays = {"full.npy": full, "short.npy": short, "short_scale.npy": scales}
            verify_folder(folder, ids, arrays, hint)
        return cls(info, ids, full, short, scales, folder, graph)
