"""Searching an index: the two-stage search, the exact reference, and the hybrid with BM25.

:class:`IndexSearch` is the search half of :class:`honed.index.index.Index` (which builds and
loads the arrays it searches), as sentence-transformers keeps ``fit`` in a mixin:

1. **shortlist**: score every document on its first ``shortlist_dim`` dims (the fast tier: a
   flat scan of ``short.npy``, or the HNSW graph of :mod:`honed.index.ann`) and keep the best
   ``shortlist``;
2. **re-rank**: score only those with the full vectors (an exact dot product) and return the
   best ``k``.

Memory stays bounded whatever the number of queries: queries are taken in chunks so that
neither the shortlist scores nor the gathered full vectors exceed ``MAX_SCORE_ELEMENTS`` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from honed.encoding.dims import truncate
from honed.index.ann import EF_SEARCH_FACTOR, hnsw_shortlist
from honed.index.checks import check_queries, check_shortlist, positive
from honed.index.hybrid import fused_hits, load_bm25, recorded_fusion
from honed.index.quantize import fast_scores, shortlist_rows, top_rows
from honed.index.store import IndexInfo, read_texts
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.dense import MAX_SCORE_ELEMENTS
from honed.retrieval.fusion import FusionConfig

__all__ = ["DEFAULT_SHORTLIST", "Hits", "IndexSearch"]

Hits = list[list[tuple[str, float]]]

# Candidates re-ranked at full dim per query. The re-rank costs shortlist x dim multiply-adds
# (500 x 384 = 0.2M) plus gathering 500 full rows (0.75 MB), nothing next to the shortlist scan
# (n x shortlist_dim: 128M at 1M documents and 128 dims). On SciFact a 128-dim shortlist of 100
# keeps 95.3% of the exact top-10, 200 keeps 98.2%, 500 keeps 99.7% (docs/benchmarks.md).
DEFAULT_SHORTLIST = 500


class IndexSearch:
    """Search methods over an index's arrays (see :class:`honed.index.index.Index`)."""

    info: IndexInfo
    ids: list[str]
    full: np.ndarray  # (count, dim) float32
    short: np.ndarray  # (count, shortlist_dim), or (count, ceil(shortlist_dim / 8)) for binary
    scales: np.ndarray | None  # (shortlist_dim,) for int8
    path: Path | None
    ann: Any  # faiss.IndexHNSWFlat over the float32 shortlist prefix, or None
    _bm25: BM25Retriever | None  # for a folder: loaded from path/bm25 on first hybrid search

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
        k, shortlist = check_shortlist(k, shortlist)
        ef = EF_SEARCH_FACTOR * shortlist if ef_search is None else positive("ef_search", ef_search)
        graph = self.ann is not None and not exact_shortlist
        queries = check_queries(query_emb, self.info.dim)
        n, dim = self.info.count, self.info.dim
        shortlist, k = min(shortlist, n), min(k, n)
        # Bound both the stage-1 score matrix (chunk x n, flat scan only) and the gathered full
        # vectors (chunk x shortlist x dim) to MAX_SCORE_ELEMENTS values each.
        chunk = max(1, MAX_SCORE_ELEMENTS // (shortlist * dim))
        chunk = chunk if graph else max(1, min(chunk, MAX_SCORE_ELEMENTS // n))
        hits: Hits = []
        for start in range(0, len(queries), chunk):
            q = queries[start : start + chunk]  # (c, dim)
            hits += self._rerank(q, self._shortlist(q, shortlist, ef if graph else None), k)
        return hits

    def _shortlist(self, q: np.ndarray, shortlist: int, ef_search: int | None) -> np.ndarray:
        """Rows of each query's ``shortlist`` best documents at the shortlist dim: ``(c, s)``.

        From the HNSW graph when ``ef_search`` is given (-1 where it found fewer), else from a
        flat scan of the fast tier.
        """
        q_short = truncate(q, self.info.shortlist_dim)  # (c, shortlist_dim)
        if ef_search is not None:
            return hnsw_shortlist(self.ann, q_short, shortlist, ef_search)  # (c, s), -1: none
        short_scores = fast_scores(q_short, self.short, self.info.precision, self.scales)
        return shortlist_rows(short_scores, shortlist)  # (c, shortlist), by row

    def _rerank(self, q: np.ndarray, candidates: np.ndarray, k: int) -> Hits:
        """The best ``k`` of each query's ``candidates`` ``(c, s)`` by exact full-dim cosine."""
        c, s = candidates.shape
        rows = np.maximum(candidates, 0).ravel()
        vectors = self.full[rows].reshape(c, s, self.info.dim)  # (c, s, dim)
        # One matrix-vector product per query: BLAS gemv, (s, dim) @ (dim,) -> (s,)
        exact = np.stack([vectors[i] @ q[i] for i in range(c)])  # (c, s)
        exact[candidates < 0] = -np.inf
        best = top_rows(exact, k)  # (c, k) positions within the shortlist
        return self._hits(
            np.take_along_axis(candidates, best, 1), np.take_along_axis(exact, best, 1)
        )

    def search_exact(self, query_emb: np.ndarray, k: int = 10) -> Hits:
        """Single-stage exact search over the full vectors: the reference for :meth:`search`."""
        k = positive("k", k)
        queries = check_queries(query_emb, self.info.dim)
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
        if self._bm25 is None:
            self._bm25 = load_bm25(self.path, self.ids, self.info)
        return self._bm25, recorded_fusion(self.path, self.info)

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
        k, depth = positive("k", k), fusion.depth
        if len(query_texts) != len(query_emb):
            raise ValueError(
                f"query_texts has {len(query_texts)} texts but query_emb has {len(query_emb)} rows"
            )
        dense = self.search(
            query_emb, k=depth, shortlist=max(positive("shortlist", shortlist), depth)
        )
        qids = [str(i) for i in range(len(dense))]
        lexical = retriever.search(qids, list(query_texts), k=depth)
        return fused_hits(fusion, dict(zip(qids, map(dict, dense))), lexical, k)

    def texts(self, ids: Iterable[str]) -> dict[str, str]:
        """The texts of ``ids`` from the folder's texts.jsonl (read up to the last row needed)."""
        if self.path is None:
            raise FileNotFoundError(
                "this index is held in memory and has no texts.jsonl; fix: build it with "
                "Index.build or Index.from_embeddings(..., out=FOLDER, texts=...)"
            )
        row_of = {id_: row for row, id_ in enumerate(self.ids)}
        return read_texts(self.path, self.info, {row_of[i]: i for i in ids})
