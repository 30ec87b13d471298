"""A two-stage Matryoshka index: shortlist on a few leading dims, re-rank with the full vectors.

A corpus of ``n`` documents embedded at ``dim`` dims costs ``4 * dim`` bytes per document in
float32 (1,536 B at 384 dims: 1.5 GB per million documents), and exact search reads all of it
for every query. A model trained with MatryoshkaLoss ranks well on its first dims alone, so:

1. **shortlist**: score every document on its first ``shortlist_dim`` dims (the *fast tier*,
   ``short.npy``: float32, int8 or binary, see :mod:`honed.quantize`) and keep the best
   ``shortlist``;
2. **re-rank**: score only those with the full vectors (``full.npy``, an exact dot product)
   and return the best ``k``.

At 128 dims the fast tier is 1/3 of the float32 bytes (1/12 in int8, 1/96 in binary), and the
full vectors are read for ``shortlist`` rows per query only, so they can stay on disk
(memory-mapped). An index is a folder of ``.npy`` and JSON files (layout in
:mod:`honed.store`), loaded with ``mmap``.

Example:
    >>> index = Index.build(model, ids, texts, "index", shortlist_dim=128)  # doctest: +SKIP
    >>> index = Index.load("index", model)  # doctest: +SKIP
    >>> index.search(model.encode(["query"], normalize_embeddings=True), k=10)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from honed.encode import EmbeddingCache, Precision, embedding_dim, encode_texts, model_fingerprint
from honed.quantize import (
    Quantization,
    as_quantization,
    fast_scores,
    int8_scales,
    quantize,
    top_rows,
)
from honed.retrieve import MAX_SCORE_ELEMENTS, truncate
from honed.store import (
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

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["Index", "IndexInfo", "Quantization", "read_corpus", "read_info"]

Hits = list[list[tuple[str, float]]]


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


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Index:
    """A two-stage index; make one with :meth:`build`, :meth:`load` or :meth:`from_embeddings`.

    Attributes:
        info: what index.json records.
        ids: document ids in row order.
        full: ``(count, dim)`` float32 L2-normalised vectors (memory-mapped when loaded).
        short: the fast-tier codes, see :mod:`honed.quantize`.
        scales: ``(shortlist_dim,)`` int8 scales, or None.
        path: the folder, or None for an index held in memory.
    """

    def __init__(
        self,
        info: IndexInfo,
        ids: Sequence[str],
        full: np.ndarray,
        short: np.ndarray,
        scales: np.ndarray | None = None,
        path: Path | None = None,
    ) -> None:
        self.info = info
        self.ids = list(ids)
        self.full = full  # (count, dim) float32
        self.short = short  # (count, shortlist_dim) or (count, ceil(shortlist_dim / 8)) for binary
        self.scales = scales  # (shortlist_dim,) for int8
        self.path = path

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
    ) -> Index:
        """Encode ``texts`` once with ``model`` and write an index folder at ``out``.

        Texts are encoded ``batch_size`` at a time and appended to ``full.npy`` on disk, so memory
        holds one batch whatever the corpus size (10,000 x 384 float32 = 15 MB).

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

        Returns:
            The written index, loaded from ``out`` (memory-mapped).

        Raises:
            ValueError: mismatched or duplicate ids, an empty corpus, a bad shortlist_dim or precision.
            FileExistsError: ``out`` exists and ``overwrite`` is False, or is not an index folder.
        """
        from honed.encode import load_model, resolve_model_name

        if isinstance(model, str):
            resolved = resolve_model_name(model)
            name = model_name or (
                str(Path(resolved).resolve()) if Path(resolved).exists() else resolved
            )
            model = load_model(resolved)
        else:
            name = model_name or ""
        precision, batch_size = as_quantization(precision), _positive("batch_size", batch_size)
        check_ids(ids, len(texts), "texts")
        check_out(Path(out), overwrite)  # before the long encoding, and again when writing
        dim = embedding_dim(model)
        _check_shortlist_dim(shortlist_dim, dim)
        fingerprint = cache.fingerprint(model) if cache else model_fingerprint(model)
        info = new_info(fingerprint, name, dim, shortlist_dim, precision, len(ids))

        def batches() -> Iterator[np.ndarray]:
            from tqdm.auto import tqdm

            with tqdm(
                total=len(texts), unit="doc", disable=not show_progress_bar, desc="index"
            ) as bar:
                for start in range(0, len(texts), batch_size):
                    part = list(texts[start : start + batch_size])
                    if cache is not None:
                        yield cache.encode(model, part, fingerprint=fingerprint)
                    else:
                        yield encode_texts(model, part, precision=encode_precision)
                    bar.update(len(part))

        write_index(Path(out), batches(), info, ids, texts, overwrite, batch_size)
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
    ) -> Index:
        """An index of already computed ``(n, dim)`` embeddings, in memory or written to ``out``.

        Rows are L2-renormalised. In memory (``out=None``) the arrays are copies; written, they
        are processed ``chunk_size`` rows at a time and the index is loaded back memory-mapped.

        Raises:
            ValueError: bad shapes, ids, shortlist_dim or precision; a zero or non-finite row.
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
        info = new_info(
            model_fingerprint, model_name, embeddings.shape[1], shortlist_dim, precision, len(ids)
        )
        if out is not None:
            batches = (embeddings[s : s + chunk] for s in range(0, len(ids), chunk))
            write_index(Path(out), batches, info, ids, texts, overwrite, chunk)
            return cls.load(out)
        full = truncate(embeddings, info.dim)  # (n, dim), a normalised copy
        short = truncate(full, info.shortlist_dim)  # (n, shortlist_dim)
        scales = int8_scales(short) if info.precision is Quantization.INT8 else None
        return cls(info, ids, full, quantize(short, info.precision, scales), scales)

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
        return cls(info, ids, full, short, scales, folder)

    def _queries(self, query_emb: np.ndarray) -> np.ndarray:
        query_emb = np.asarray(query_emb)
        if query_emb.ndim != 2 or query_emb.shape[1] != self.info.dim:
            raise ValueError(
                f"query_emb must be (n_queries, {self.info.dim}), got shape {query_emb.shape}; "
                "fix: encode queries with the index's model (one row per query: reshape(1, -1))"
            )
        if not np.isfinite(query_emb).all():
            raise ValueError("query_emb contains NaN or infinite values: check the encoder output")
        return truncate(query_emb, self.info.dim)  # (n_q, dim) float32, normalised

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> Hits:
        return [
            [(self.ids[r], float(s)) for r, s in zip(row_r, row_s)]
            for row_r, row_s in zip(rows.tolist(), scores.tolist())
        ]

    def search(self, query_emb: np.ndarray, k: int = 10, shortlist: int = 100) -> Hits:
        """Two-stage search: shortlist on the fast tier, re-rank those by the full vectors.

        Args:
            query_emb: ``(n_queries, dim)`` full-dim query embeddings (renormalised here).
            k: results per query (capped at the corpus size).
            shortlist: candidates per query re-ranked at full dim, ``>= k``.

        Returns:
            For each query, ``(id, score)`` pairs best first; scores are exact full-dim cosines.

        Raises:
            ValueError: bad query shape or values, ``k``/``shortlist`` not positive, ``shortlist < k``.
        """
        k, shortlist = _positive("k", k), _positive("shortlist", shortlist)
        if shortlist < k:
            raise ValueError(
                f"shortlist ({shortlist}) must be >= k ({k}): the re-rank returns only shortlisted documents; fix: raise --shortlist"
            )
        queries = self._queries(query_emb)
        n, dim = self.info.count, self.info.dim
        shortlist, k = min(shortlist, n), min(k, n)
        # Bound both the stage-1 score matrix (chunk x n) and the gathered full vectors
        # (chunk x shortlist x dim) to MAX_SCORE_ELEMENTS values each.
        chunk = max(1, min(MAX_SCORE_ELEMENTS // n, MAX_SCORE_ELEMENTS // (shortlist * dim)))
        hits: Hits = []
        for start in range(0, len(queries), chunk):
            q = queries[start : start + chunk]  # (c, dim)
            short_scores = fast_scores(
                truncate(q, self.info.shortlist_dim), self.short, self.info.precision, self.scales
            )
            candidates = top_rows(short_scores, shortlist)  # (c, shortlist)
            vectors = self.full[candidates.ravel()].reshape(len(q), shortlist, dim)  # (c, s, dim)
            exact = np.matmul(vectors, q[:, :, None])[:, :, 0]  # (c, s)
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

    def texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The texts of ``ids`` from the folder's texts.jsonl (read up to the last row needed)."""
        if self.path is None:
            raise FileNotFoundError(
                "this index is held in memory and has no texts.jsonl; fix: build it with "
                "Index.build or Index.from_embeddings(..., out=FOLDER, texts=...)"
            )
        row_of = {id_: row for row, id_ in enumerate(self.ids)}
        return read_texts(self.path, self.info, {row_of[i]: i for i in ids})
