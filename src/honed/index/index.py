"""A two-stage Matryoshka index: shortlist on a few leading dims, re-rank with the full vectors.

A corpus of ``n`` documents embedded at ``dim`` dims costs ``4 * dim`` bytes per document in
float32 (1,536 B at 384 dims: 1.5 GB per million documents), and exact search reads all of it
for every query. A model trained with MatryoshkaLoss ranks well on its first dims alone, so:

1. **shortlist**: score every document on its first ``shortlist_dim`` dims (the *fast tier*,
   ``short.npy``: float32, int8 or binary, see :mod:`honed.index.quantize`) and keep the best
   ``shortlist``;
2. **re-rank**: score only those with the full vectors (``full.npy``, an exact dot product)
   and return the best ``k``.

At 128 dims the fast tier is 1/3 of the float32 bytes (1/12 in int8, 1/96 in binary), and the
full vectors are read for ``shortlist`` rows per query only, so they can stay on disk
(memory-mapped). An index is a folder of ``.npy`` and JSON files (layout in
:mod:`honed.index.store`), loaded with ``mmap``.

Built with ``bm25=True`` it also holds a BM25 index of the same texts (``bm25/``) and, with a
:class:`~honed.retrieval.fusion.FusionConfig`, the fusion chosen on dev: :meth:`Index.search_hybrid`
then serves the hybrid that ``honed run`` evaluated.

Example:
    >>> index = Index.build(model, ids, texts, "index", shortlist_dim=128)  # doctest: +SKIP
    >>> index = Index.load("index", model)  # doctest: +SKIP
    >>> index.search(model.encode(["query"], normalize_embeddings=True), k=10)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.dims import truncate
from honed.encoding.encoder import (
    EmbeddingCache,
    Precision,
    embedding_dim,
    encode_texts,
    model_fingerprint,
    resolve_precision,
)
from honed.index.ann import (
    ANN_FILE,
    EF_SEARCH_FACTOR,
    AnnKind,
    HnswConfig,
    as_hnsw,
    build_hnsw,
    hnsw_shortlist,
    import_faiss,
    read_hnsw,
)
from honed.index.build import (
    BuildOptions,
    Corpus,
    build_folder,
    corpus_file,
    iter_corpus,
    scan_corpus,
)
from honed.index.quantize import (
    Quantization,
    as_quantization,
    fast_scores,
    int8_scales,
    quantize,
    shortlist_rows,
    top_rows,
)
from honed.index.store import (
    IndexInfo,
    check_ids,
    check_out,
    new_info,
    open_arrays,
    read_corpus,
    read_info,
    read_texts,
    rebuild_hint,
    write_index,
)
from honed.retrieval.dense import MAX_SCORE_ELEMENTS, BM25Retriever
from honed.retrieval.fusion import FusionConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["DEFAULT_SHORTLIST", "Index", "IndexInfo", "Quantization", "read_corpus", "read_info"]

Hits = list[list[tuple[str, float]]]

# Candidates re-ranked at full dim per query. The re-rank costs shortlist x dim multiply-adds
# (500 x 384 = 0.2M) plus gathering 500 full rows (0.75 MB), nothing next to the shortlist scan
# (n x shortlist_dim: 128M at 1M documents and 128 dims). On SciFact a 128-dim shortlist of 100
# keeps 95.3% of the exact top-10, 200 keeps 98.2%, 500 keeps 99.7% (docs/benchmarks.md).
DEFAULT_SHORTLIST = 500

BM25_DIR = "bm25"
"""Sub-folder of an index holding its BM25 index (:meth:`BM25Retriever.save`)."""


def check_queries(query_emb: np.ndarray, dim: int) -> np.ndarray:
    """``query_emb`` as ``(n_q, dim)`` float32, renormalised; ValueError naming the fix if not."""
    query_emb = np.asarray(query_emb)
    if query_emb.ndim != 2 or query_emb.shape[1] != dim:
        raise ValueError(
            f"query_emb must be (n_queries, {dim}), got shape {query_emb.shape}; "
            "fix: encode queries with the index's model (one row per query: reshape(1, -1))"
        )
    if not np.isfinite(query_emb).all():
        raise ValueError("query_emb contains NaN or infinite values: check the encoder output")
    return truncate(query_emb, dim)  # (n_q, dim) float32, normalised


def _check_shortlist_dim(shortlist_dim: int, dim: int) -> None:
    if (
        isinstance(shortlist_dim, bool)
        or not isinstance(shortlist_dim, int | np.integer)
        or shortlist_dim < 1
    ):
        raise ValueError(f"shortlist_dim must be a positive integer, got {shortlist_dim!r}")
    if shortlist_dim > dim:
        raise ValueError(
            f"shortlist_dim {shortlist_dim} is larger than the model's embedding dim {dim}; "
            f"fix: pick --shortlist-dim <= {dim}, e.g. one of the Matryoshka dims it was trained at"
        )


def _bm25_for(
    ids: Sequence[str], texts: Sequence[str] | None, bm25: bool, fusion: FusionConfig | None
) -> BM25Retriever | None:
    """The BM25 index to store beside the vectors, or None; checks the hybrid arguments."""
    if fusion is not None and not isinstance(fusion, FusionConfig):
        raise ValueError(f"fusion: expected a honed.retrieval.fusion.FusionConfig, got {type(fusion).__name__}")
    if fusion is not None and not bm25:
        raise ValueError("fusion needs a BM25 index to fuse with; fix: pass bm25=True (--bm25)")
    if not bm25:
        return None
    if texts is None:
        raise ValueError("bm25=True needs the document texts; fix: pass texts=[...]")
    return BM25Retriever(ids, texts)


def _bm25_writer(retriever: BM25Retriever | None) -> Callable[[Path], None] | None:
    return None if retriever is None else (lambda folder: retriever.save(folder / BM25_DIR))


def _hybrid_fix(folder: Path | None, info: IndexInfo) -> str:
    return (
        f"fix: rebuild with honed index {info.model_name or 'MODEL'} DATA --out {folder or 'DIR'} "
        "--bm25 --fusion-from RUN_DIR (or --fusion zscore --dense-weight 0.7) --overwrite"
    )


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _resolve_model(
    model: SentenceTransformer | str, model_name: str | None
) -> tuple[SentenceTransformer, str]:
    """``model`` loaded, and the name index.json records (a model folder's absolute path)."""
    from honed.encoding.encoder import load_model, resolve_model_name

    if not isinstance(model, str):
        return model, model_name or ""
    resolved = resolve_model_name(model)
    name = model_name or (str(Path(resolved).resolve()) if Path(resolved).exists() else resolved)
    return load_model(resolved), name


def _build_options(
    batch_size: int,
    encode_precision: Precision | str,
    ann: HnswConfig | str | None,
    overwrite: bool,
    resume: bool,
    show_progress_bar: bool,
) -> BuildOptions:
    precision = Precision(encode_precision).value
    return BuildOptions(batch_size, precision, as_hnsw(ann), overwrite, resume, show_progress_bar)


def _check_build(
    model: SentenceTransformer,
    out: Path,
    shortlist_dim: int,
    precision: Quantization | str,
    options: BuildOptions,
) -> None:
    """Refuse bad build arguments now, not after hours of encoding."""
    as_quantization(precision)
    if options.hnsw is not None:
        import_faiss()
    check_out(out, options.overwrite)
    _check_shortlist_dim(shortlist_dim, embedding_dim(model))


def _write(
    model: SentenceTransformer,
    name: str,
    corpus: Corpus,
    out: Path,
    shortlist_dim: int,
    precision: Quantization | str,
    options: BuildOptions,
    cache: EmbeddingCache | None = None,
    write_extra: Callable[[Path], None] | None = None,
    fusion: FusionConfig | None = None,
) -> None:
    """Scan ``corpus`` (count, hash), then encode it into ``out`` (:func:`build_folder`)."""
    # "auto" recorded as what it means here (bf16 or fp32), so a resume on hardware where it
    # means the other is refused rather than mixing the two in one index.
    wanted = cache.precision if cache is not None else options.encode_precision
    resolved = resolve_precision(wanted, str(model.device)).value
    options = replace(options, encode_precision=resolved)
    scan = scan_corpus(corpus)
    fingerprint = cache.fingerprint(model) if cache else model_fingerprint(model)
    info = new_info(fingerprint, name, embedding_dim(model), shortlist_dim, precision, scan.count)
    info = replace(info, fusion=fusion, ann=AnnKind.HNSW if options.hnsw else None)

    def encode(texts: list[str]) -> np.ndarray:
        if cache is not None:
            return cache.encode(model, texts, fingerprint=fingerprint)
        return encode_texts(model, texts, precision=options.encode_precision)

    build_folder(out, corpus, scan, encode, info, options, write_extra)


class Index:
    """A two-stage index; make one with :meth:`build`, :meth:`load` or :meth:`from_embeddings`.

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
    ) -> None:
        self.info = info
        self.ids = list(ids)
        self.full = full  # (count, dim) float32
        self.short = short  # (count, shortlist_dim) or (count, ceil(shortlist_dim / 8)) for binary
        self.scales = scales  # (shortlist_dim,) for int8
        self.path = path
        self.ann = ann  # faiss.IndexHNSWFlat over the float32 shortlist prefix, or None
        self._bm25: BM25Retriever | None = None  # loaded from path/bm25 on first hybrid search

    def __len__(self) -> int:
        return self.info.count

    @property
    def fast_tier_bytes(self) -> int:
        """Bytes of the shortlist codes (and int8 scales): what must stay in memory."""
        return int(self.short.nbytes + (self.scales.nbytes if self.scales is not None else 0))

    @classmethod
    def build(
        cls,
        model: SentenceTransformer | str,
        ids: Sequence[str],
        texts: Sequence[str],
        out: str | Path,
        shortlist_dim: int = 128,
        precision: Quantization | str = Quantization.FLOAT32,
        batch_size: int = 10_000,
        overwrite: bool = False,
        cache: EmbeddingCache | None = None,
        model_name: str | None = None,
        encode_precision: Precision | str = Precision.AUTO,
        show_progress_bar: bool = False,
        bm25: bool = False,
        fusion: FusionConfig | None = None,
        ann: HnswConfig | str | None = None,
        resume: bool = False,
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
            batch_size: texts encoded and written per step.
            overwrite: replace an existing index folder at ``out``.
            cache: reuse embeddings of an :class:`EmbeddingCache` (it keeps every embedding).
            model_name: recorded in index.json, for ``honed search`` to find the model (default:
                ``model``'s absolute folder when it is a string, else "").
            encode_precision: the encoder's matmul precision.
            show_progress_bar: show a progress bar over the documents.
            bm25: also store a BM25 index of ``texts`` in ``out/bm25`` (for :meth:`search_hybrid`).
            fusion: how :meth:`search_hybrid` fuses, recorded in index.json (needs ``bm25``).
            ann: ``"hnsw"`` (or an :class:`~honed.index.ann.HnswConfig`) to also build an HNSW graph
                of the shortlist (``short.hnsw``, needs ``honed[faiss]``); None: flat only.
            resume: continue an interrupted build of ``out`` (same model, texts, batch size and
                encode precision) from its last completed batch; without it, an ``OUT.partial``
                folder left by one is refused.

        Returns:
            The written index, loaded from ``out`` (memory-mapped).

        Raises:
            ValueError: mismatched or duplicate ids, an empty corpus, a bad shortlist_dim,
                precision or ann, a ``fusion`` without ``bm25``, or an ``OUT.partial`` of
                another model, corpus or batch settings.
            FileExistsError: ``out`` exists and ``overwrite`` is False, or is not an index
                folder; ``OUT.partial`` exists and ``resume`` is False.
            ImportError: ``ann`` is set and faiss is not installed.
        """
        model, name = _resolve_model(model, model_name)
        check_ids(ids, len(texts), "texts")
        options = _build_options(
            batch_size, encode_precision, ann, overwrite, resume, show_progress_bar
        )
        _check_build(model, Path(out), shortlist_dim, precision, options)
        retriever = _bm25_for(ids, texts, bm25, fusion)  # seconds, before the long encoding
        _write(
            model,
            name,
            lambda: zip(ids, texts),
            Path(out),
            shortlist_dim,
            precision,
            options,
            cache,
            _bm25_writer(retriever),
            fusion,
        )
        return cls.load(out)

    @classmethod
    def build_from_corpus(
        cls,
        model: SentenceTransformer | str,
        corpus: str | Path,
        out: str | Path,
        shortlist_dim: int = 128,
        precision: Quantization | str = Quantization.FLOAT32,
        batch_size: int = 10_000,
        overwrite: bool = False,
        model_name: str | None = None,
        encode_precision: Precision | str = Precision.AUTO,
        show_progress_bar: bool = False,
        ann: HnswConfig | str | None = None,
        resume: bool = False,
    ) -> Index:
        """:meth:`build` from a BEIR folder or ``corpus.jsonl``, read one line at a time.

        For a corpus larger than memory: the file is read twice (a validating pass that counts
        and hashes the documents, then the encoding pass), and only the set of ids stays in
        memory (~100 B per id). The other arguments are as in :meth:`build`.

        Raises:
            FileNotFoundError: no such corpus.
            DataError: a bad corpus line (file, line and fix), a duplicate id, no documents.
            ValueError, FileExistsError, ImportError: as in :meth:`build`.
        """
        file = corpus_file(corpus)  # a missing corpus fails before the model loads
        model, name = _resolve_model(model, model_name)
        options = _build_options(
            batch_size, encode_precision, ann, overwrite, resume, show_progress_bar
        )
        _check_build(model, Path(out), shortlist_dim, precision, options)
        _write(
            model,
            name,
            lambda: iter_corpus(file),
            Path(out),
            shortlist_dim,
            precision,
            options,
        )
        return cls.load(out)

    @classmethod
    def from_embeddings(
        cls,
        embeddings: np.ndarray,
        ids: Sequence[str],
        shortlist_dim: int = 128,
        precision: Quantization | str = Quantization.FLOAT32,
        out: str | Path | None = None,
        overwrite: bool = False,
        texts: Sequence[str] | None = None,
        model_fingerprint: str = "",
        model_name: str = "",
        chunk_size: int = 100_000,
        bm25: bool = False,
        fusion: FusionConfig | None = None,
        ann: HnswConfig | str | None = None,
    ) -> Index:
        """An index of already computed ``(n, dim)`` embeddings, in memory or written to ``out``.

        Rows are L2-renormalised. In memory (``out=None``) the arrays are copies; written, they
        are processed ``chunk_size`` rows at a time and the index is loaded back memory-mapped.
        ``bm25``, ``fusion`` and ``ann`` are as in :meth:`build` (``bm25`` needs ``texts``).

        Raises:
            ValueError: bad shapes, ids, shortlist_dim or precision; a zero or non-finite row;
                ``bm25`` without ``texts``, or ``fusion`` without ``bm25``.
            FileExistsError: see :meth:`build`.
        """
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
            raise ValueError(
                f"embeddings must be a finite 2-D (n, dim) array, got shape {embeddings.shape}"
            )
        check_ids(ids, embeddings.shape[0], "embedding rows")
        _check_shortlist_dim(shortlist_dim, embeddings.shape[1])
        chunk = _positive("chunk_size", chunk_size)
        if texts is not None and len(texts) != len(ids):
            raise ValueError(f"texts has {len(texts)} entries but ids has {len(ids)}")
        hnsw = as_hnsw(ann)
        if hnsw is not None:
            import_faiss()
        retriever = _bm25_for(ids, texts, bm25, fusion)
        info = new_info(
            model_fingerprint, model_name, embeddings.shape[1], shortlist_dim, precision, len(ids)
        )
        info = replace(info, fusion=fusion, ann=AnnKind.HNSW if hnsw else None)
        if out is not None:
            batches = (embeddings[s : s + chunk] for s in range(0, len(ids), chunk))
            write_index(
                Path(out), batches, info, ids, texts, overwrite, chunk, _bm25_writer(retriever),
                hnsw,
            )  # fmt: skip
            return cls.load(out)
        full = truncate(embeddings, info.dim)  # (n, dim), a normalised copy
        short = truncate(full, info.shortlist_dim)  # (n, shortlist_dim)
        scales = int8_scales(short) if info.precision is Quantization.INT8 else None
        graph = build_hnsw([short], info.shortlist_dim, len(ids), hnsw) if hnsw else None
        index = cls(info, ids, full, quantize(short, info.precision, scales), scales, ann=graph)
        index._bm25 = retriever
        return index

    @classmethod
    def load(cls, path: str | Path, model: SentenceTransformer | None = None) -> Index:
        """Open the index folder ``path``, memory-mapping its arrays.

        Args:
            path: a folder written by :meth:`build` or :meth:`from_embeddings`.
            model: when given, refuse the index unless this model built it (same fingerprint):
                queries embedded by another model are not comparable with its vectors.

        Raises:
            FileNotFoundError: no folder, or a file of the index is missing.
            ValueError: a file is unreadable, truncated or of the wrong shape, or ``model`` is
                not the model that built the index; each message names the file and the fix.
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
        graph = None
        if info.ann is AnnKind.HNSW:
            hint = rebuild_hint(folder, info)
            graph = read_hnsw(folder / ANN_FILE, info.count, info.shortlist_dim, hint)
        return cls(info, ids, full, short, scales, folder, graph)

    def _queries(self, query_emb: np.ndarray) -> np.ndarray:
        return check_queries(query_emb, self.info.dim)

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> Hits:
        return [
            [(self.ids[r], float(s)) for r, s in zip(row_r, row_s) if r >= 0]  # -1: no document
            for row_r, row_s in zip(rows.tolist(), scores.tolist())
        ]

    def search(
        self,
        query_emb: np.ndarray,
        k: int = 10,
        shortlist: int = DEFAULT_SHORTLIST,
        exact_shortlist: bool = False,
        ef_search: int | None = None,
    ) -> Hits:
        """Two-stage search: shortlist on the fast tier, re-rank those by the full vectors.

        The shortlist comes from the HNSW graph when the index has one (approximate), else from
        a flat scan of ``short.npy`` (exact at the shortlist dim).

        Args:
            query_emb: ``(n_queries, dim)`` full-dim query embeddings (renormalised here).
            k: results per query (capped at the corpus size).
            shortlist: candidates per query re-ranked at full dim, ``>= k``.
            exact_shortlist: scan ``short.npy`` even when the index has an HNSW graph.
            ef_search: candidates the graph search keeps (default ``2 * shortlist``; never
                below ``shortlist``); more is slower and misses fewer.

        Returns:
            For each query, ``(id, score)`` pairs best first; scores are exact full-dim cosines.

        Raises:
            ValueError: bad query shape or values, ``k``/``shortlist``/``ef_search`` not
                positive, ``shortlist < k``.
        """
        k, shortlist = _positive("k", k), _positive("shortlist", shortlist)
        graph = self.ann is not None and not exact_shortlist
        ef = EF_SEARCH_FACTOR * shortlist
        ef = ef if ef_search is None else _positive("ef_search", ef_search)
        if shortlist < k:
            raise ValueError(
                f"shortlist ({shortlist}) must be >= k ({k}): the re-rank returns only shortlisted documents; fix: raise --shortlist"
            )
        queries = self._queries(query_emb)
        n, dim = self.info.count, self.info.dim
        shortlist, k = min(shortlist, n), min(k, n)
        # Bound both the stage-1 score matrix (chunk x n, flat scan only) and the gathered full
        # vectors (chunk x shortlist x dim) to MAX_SCORE_ELEMENTS values each.
        chunk = max(1, MAX_SCORE_ELEMENTS // (shortlist * dim))
        chunk = chunk if graph else max(1, min(chunk, MAX_SCORE_ELEMENTS // n))
        hits: Hits = []
        for start in range(0, len(queries), chunk):
            q = queries[start : start + chunk]  # (c, dim)
            q_short = truncate(q, self.info.shortlist_dim)  # (c, shortlist_dim)
            if graph:
                candidates = hnsw_shortlist(self.ann, q_short, shortlist, ef)  # (c, s), -1: none
            else:
                short_scores = fast_scores(q_short, self.short, self.info.precision, self.scales)
                candidates = shortlist_rows(short_scores, shortlist)  # (c, shortlist), by row
            rows = np.maximum(candidates, 0).ravel()
            vectors = self.full[rows].reshape(len(q), shortlist, dim)  # (c, s, dim)
            # One matrix-vector product per query: BLAS gemv, (s, dim) @ (dim,) -> (s,)
            exact = np.stack([vectors[i] @ q[i] for i in range(len(q))])  # (c, s)
            exact[candidates < 0] = -np.inf
            best = top_rows(exact, k)  # (c, k) positions within the shortlist
            hits += self._hits(
                np.take_along_axis(candidates, best, 1), np.take_along_axis(exact, best, 1)
            )
        return hits

    def search_exact(self, query_emb: np.ndarray, k: int = 10) -> Hits:
        """Single-stage exact search over the full vectors: the reference for :meth:`search`."""
        k = _positive("k", k)
        queries = self._queries(query_emb)
        chunk = max(1, MAX_SCORE_ELEMENTS // self.info.count)
        hits: Hits = []
        for start in range(0, len(queries), chunk):
            scores = queries[start : start + chunk] @ self.full.T  # (c, n)
            rows = top_rows(scores, k)  # (c, k)
            hits += self._hits(rows, np.take_along_axis(scores, rows, 1))
        return hits

    def hybrid_parts(self) -> tuple[BM25Retriever, FusionConfig]:
        """The BM25 index (``bm25/``, memory-mapped on first use) and the recorded fusion.

        Raises:
            FileNotFoundError: the index has no BM25 index (built without ``bm25``).
            ValueError: index.json records no fusion (built without ``fusion``).
        """
        where, fix = self.path or "in-memory index", _hybrid_fix(self.path, self.info)
        if self._bm25 is None:
            folder = self.path / BM25_DIR if self.path is not None else None
            if folder is None or not folder.is_dir():
                raise FileNotFoundError(
                    f"{where}: no BM25 index (bm25/), so hybrid search cannot run; {fix}"
                )
            self._bm25 = BM25Retriever.load(folder, self.ids, fix=fix)
        if self.info.fusion is None:
            raise ValueError(
                f"{where}: index.json records no fusion method and weight, so hybrid search has "
                f"no evaluated setting to reproduce; {fix}"
            )
        return self._bm25, self.info.fusion

    def search_hybrid(
        self,
        query_texts: Sequence[str],
        query_emb: np.ndarray,
        k: int = 10,
        shortlist: int = DEFAULT_SHORTLIST,
    ) -> Hits:
        """Dense two-stage search fused with BM25 as index.json's fusion record says.

        This is the hybrid ``honed run`` evaluates: the top ``fusion.depth`` documents of each
        system (dense: :meth:`search` re-ranking ``max(shortlist, depth)`` candidates; BM25:
        documents sharing a term with the query) fused by :meth:`FusionConfig.fuse`. With
        ``shortlist_dim == dim`` the dense part is exact, as in the run; a shorter fast tier
        may miss a few of the exact top ``depth`` (see ``honed plan``).

        Args:
            query_texts: the query texts, for BM25.
            query_emb: ``(n_queries, dim)`` embeddings of the same queries, for the dense part.
            k: results per query.
            shortlist: dense candidates re-ranked at full dim (at least ``fusion.depth``).

        Returns:
            For each query, ``(id, fused score)`` pairs best first (at most ``k``).

        Raises:
            FileNotFoundError: no BM25 index in the folder.
            ValueError: no fusion record, texts and embeddings of different lengths, or see
                :meth:`search`.
        """
        retriever, fusion = self.hybrid_parts()
        k, depth = _positive("k", k), fusion.depth
        if len(query_texts) != len(query_emb):
            raise ValueError(
                f"query_texts has {len(query_texts)} texts but query_emb has {len(query_emb)} rows"
            )
        dense = self.search(
            query_emb, k=depth, shortlist=max(_positive("shortlist", shortlist), depth)
        )
        qids = [str(i) for i in range(len(dense))]
        bm25_run = retriever.search(qids, list(query_texts), k=depth)
        fused = fusion.fuse(dict(zip(qids, map(dict, dense))), bm25_run, max(k, depth))
        return [list(fused.get(q, {}).items())[:k] for q in qids]

    def texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The texts of ``ids`` from the folder's texts.jsonl (read up to the last row needed)."""
        if self.path is None:
            raise FileNotFoundError(
                "this index is held in memory and has no texts.jsonl; fix: build it with "
                "Index.build or Index.from_embeddings(..., out=FOLDER, texts=...)"
            )
        row_of = {id_: row for row, id_ in enumerate(self.ids)}
        return read_texts(self.path, self.info, {row_of[i]: i for i in ids})
