"""Searching an index in PostgreSQL: two-stage search in one SQL statement, BM25, hybrid.

Search is one parameterised statement per query: a CTE takes the ``shortlist`` nearest rows by
the short column (HNSW, ``hnsw.ef_search`` = 2 x shortlist by default), the outer query re-ranks them by
the full column and returns the best ``k`` with exact full-dim cosines. ``exact=True`` turns
the index scan off for that transaction, so the shortlist is exact and the results equal
:meth:`honed.index.index.Index.search` of a float32 index.

Hybrid search uses a stored BM25 side table (:mod:`honed.index.postgres.bm25`), not PostgreSQL full-text
search: ``ts_rank`` is not BM25, so it would not reproduce the fusion chosen on dev. The side
table holds bm25s's own per-term document scores, so one ``SUM(score) ... GROUP BY`` statement
returns bm25s's scores; the two runs are fused in Python by the index's
:class:`~honed.retrieval.fusion.FusionConfig` (index.json's ``fusion``, copied into the meta table), exactly
as :meth:`honed.index.index.Index.search_hybrid` fuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from honed.encoding.dims import truncate
from honed.index.checks import check_queries, check_shortlist, positive
from honed.index.postgres.bm25 import bm25_tokenize
from honed.index.postgres.connection import run_each
from honed.index.postgres.redact import redact
from honed.index.postgres.tables import TableNames, sql_text
from honed.index.search import DEFAULT_SHORTLIST, Hits
from honed.index.store import IndexInfo
from honed.retrieval.fusion import FusionConfig

__all__ = ["HNSW_MAX_EF_SEARCH", "PgSearch"]

HNSW_MAX_EF_SEARCH = 1000
"""pgvector's cap on ``hnsw.ef_search``: an HNSW scan returns at most that many rows, so a
larger shortlist needs ``exact=True``."""


def _ef_settings(shortlist: int, ef_search: int | None, exact: bool) -> list[tuple[str, str]]:
    """The transaction settings of a search: the index scan off, or ``hnsw.ef_search``."""
    # 2 x shortlist by default, as the folder's faiss graph: on SciFact-sized 384-dim data a
    # shortlist of 100 then keeps ~98% of the exact shortlist's top 10 (94% at 1 x)
    default = min(2 * shortlist, HNSW_MAX_EF_SEARCH)
    ef = max(shortlist, 40, positive("ef_search", ef_search) if ef_search else default)
    if exact:
        return [("enable_indexscan", "off")]
    if ef > HNSW_MAX_EF_SEARCH:
        raise ValueError(
            f"shortlist {shortlist} / ef_search {ef_search or shortlist}: pgvector's HNSW scan "
            f"returns at most {HNSW_MAX_EF_SEARCH} candidates (hnsw.ef_search); fix: use "
            f"--shortlist <= {HNSW_MAX_EF_SEARCH}, or an exact shortlist (exact=True)"
        )
    return [("hnsw.ef_search", str(ef))]  # an HNSW scan returns at most ef_search rows


class PgSearch:
    """Search methods over an uploaded index (see :class:`honed.index.postgres.store.PgIndex`)."""

    dsn: str
    table: str
    info: IndexInfo
    fusion: FusionConfig | None
    bm25: dict[str, Any] | None
    _conn: Any
    _names: TableNames
    _vector: Any  # wraps an array as a binary pgvector parameter (tables.vector_adapter)

    def _run(
        self, statement: Any, rows: Sequence[dict[str, Any]], settings: Sequence[tuple[str, str]]
    ) -> list[list[tuple[Any, ...]]]:
        """Execute ``statement`` once per parameter row in one transaction with local settings."""
        return run_each(self._conn, (self.dsn, self.table), statement, rows, settings)

    def search(
        self,
        query_emb: np.ndarray,
        k: int = 10,
        shortlist: int = DEFAULT_SHORTLIST,
        exact: bool = False,
        ef_search: int | None = None,
    ) -> Hits:
        """Two-stage search in one SQL statement per query: HNSW shortlist, full-dim re-rank.

        Args:
            query_emb: ``(n_queries, dim)`` full-dim query embeddings (renormalised here).
            k: results per query (capped at the corpus size).
            shortlist: candidates per query re-ranked at full dim, ``>= k``; at most
                :data:`HNSW_MAX_EF_SEARCH` unless ``exact``.
            exact: take the shortlist by an exact scan instead of the HNSW graph; the result
                then equals :meth:`honed.index.index.Index.search` of a float32 index.
            ef_search: HNSW candidate list size (``hnsw.ef_search``): at least ``shortlist``,
                default ``2 * shortlist`` (at most :data:`HNSW_MAX_EF_SEARCH`).

        Returns:
            For each query, ``(id, score)`` pairs best first; scores are exact full-dim cosines.

        Raises:
            ValueError: bad query shape or values, ``k``/``shortlist`` not positive, ``shortlist < k``,
                or a shortlist / ef_search above :data:`HNSW_MAX_EF_SEARCH` without ``exact``.
            ConnectionError: the server went away.
        """
        k, shortlist = check_shortlist(k, shortlist)
        queries = check_queries(query_emb, self.info.dim)
        shorts = truncate(queries, self.info.shortlist_dim)
        n = self.info.count
        shortlist, k = min(shortlist, n), min(k, n)
        settings = _ef_settings(shortlist, ef_search, exact)
        names = self._names
        statement = sql_text(
            "WITH shortlist AS MATERIALIZED ("
            " SELECT doc_row, doc_id, vec_full FROM {docs}"
            " ORDER BY vec_short <#> %(short)s LIMIT %(shortlist)s)"
            " SELECT doc_id, -(vec_full <#> %(full)s) AS score FROM shortlist"
            " ORDER BY vec_full <#> %(full)s, doc_row LIMIT %(k)s"
        ).format(docs=names.docs)
        params = [
            {"short": self._vector(s), "full": self._vector(q), "shortlist": shortlist, "k": k}
            for q, s in zip(queries, shorts)
        ]
        return [[(d, float(s)) for d, s in rows] for rows in self._run(statement, params, settings)]

    def search_exact(self, query_emb: np.ndarray, k: int = 10) -> Hits:
        """Single-stage exact search over the full vectors (a sequential scan): the reference."""
        k = min(positive("k", k), self.info.count)
        queries = check_queries(query_emb, self.info.dim)
        statement = sql_text(
            "SELECT doc_id, -(vec_full <#> %(full)s) FROM {docs}"
            " ORDER BY vec_full <#> %(full)s, doc_row LIMIT %(k)s"
        ).format(docs=self._names.docs)
        params = [{"full": self._vector(q), "k": k} for q in queries]
        return [[(d, float(s)) for d, s in rows] for rows in self._run(statement, params, [])]

    def bm25_search(self, queries: Sequence[str], k: int = 100) -> Hits:
        """BM25 top-``k`` per query text from the side table; scores equal bm25s's.

        Documents sharing no term with a query are left out (as :class:`BM25Retriever` does).

        Raises:
            ValueError: the index has no BM25 side table, or ``k`` is not positive.
        """
        k = positive("k", k)
        if self.bm25 is None:
            raise ValueError(self._no_bm25())
        tokens = bm25_tokenize(queries, self.bm25.get("stopwords"), bool(self.bm25.get("stemmed")))
        names = self._names
        statement = sql_text(
            "SELECT d.doc_id, s.score FROM ("
            " SELECT b.doc_row, SUM(b.score::float8) AS score"
            " FROM unnest(%(tokens)s::text[]) AS q(token)"
            " JOIN {vocab} v ON v.token = q.token"
            " JOIN {bm25} b ON b.term_id = v.term_id"
            " GROUP BY b.doc_row ORDER BY score DESC, b.doc_row LIMIT %(k)s) s"
            " JOIN {docs} d ON d.doc_row = s.doc_row ORDER BY s.score DESC, s.doc_row"
        ).format(vocab=names.vocab, bm25=names.bm25, docs=names.docs)
        params = [{"tokens": list(t), "k": k} for t in tokens]
        return [
            [(d, float(s)) for d, s in rows if s > 0] for rows in self._run(statement, params, [])
        ]

    def hybrid_search(
        self,
        query_texts: Sequence[str],
        query_emb: np.ndarray,
        k: int = 10,
        shortlist: int = DEFAULT_SHORTLIST,
        exact: bool = False,
        fusion: FusionConfig | None = None,
    ) -> Hits:
        """Dense two-stage + BM25, fused as the index's fusion record says (chosen on dev).

        The dense run is the top ``depth`` of :meth:`search` (its shortlist raised to ``depth``
        when smaller), the BM25 run the top ``depth`` of :meth:`bm25_search`; they are fused by
        :meth:`honed.retrieval.fusion.FusionConfig.fuse` and the best ``k`` kept.

        Args:
            query_texts: the queries' texts, aligned with ``query_emb``.
            query_emb: ``(n_queries, dim)`` query embeddings.
            k: results per query.
            shortlist: dense candidates re-ranked at full dim.
            exact: see :meth:`search`.
            fusion: use this instead of the stored record.

        Returns:
            For each query, ``(id, fused score)`` pairs best first.

        Raises:
            ValueError: no fusion record or BM25 side table, or mismatched inputs.
        """
        config = self.check_hybrid(fusion)
        k = positive("k", k)
        if len(query_texts) != len(np.asarray(query_emb)):
            raise ValueError(
                f"query_texts has {len(query_texts)} texts but query_emb has "
                f"{len(np.asarray(query_emb))} rows: pass one embedding per query text"
            )
        depth = config.depth
        lexical = self.bm25_search(query_texts, k=depth)
        dense = self.search(query_emb, k=depth, shortlist=max(shortlist, depth), exact=exact)
        hits: Hits = []
        for dense_hits, bm25_hits in zip(dense, lexical):  # as Index.search_hybrid fuses
            fused = config.fuse({"q": dict(dense_hits)}, {"q": dict(bm25_hits)}, max(k, depth))
            hits.append(list(fused.get("q", {}).items())[:k])
        return hits

    def check_hybrid(self, fusion: FusionConfig | None = None) -> FusionConfig:
        """The fusion :meth:`hybrid_search` would use; ValueError if it cannot run.

        Raises:
            ValueError: no fusion record (and none given), or no BM25 side table.
        """
        config = fusion or self.fusion
        if config is None:
            raise ValueError(
                f"{redact(self.dsn)} table {self.table} has no fusion record; fix: build the "
                "index folder with --bm25 --fusion-from RUN_DIR (or --fusion METHOD "
                "--dense-weight W) and upload it again with --store ... --overwrite"
            )
        if self.bm25 is None:
            raise ValueError(self._no_bm25())
        return config

    def _no_bm25(self) -> str:
        return (
            f"{redact(self.dsn)} table {self.table} has no BM25 side table; fix: build the index "
            "folder with --bm25 and upload it again with --store ... --overwrite (or pass "
            "bm25=BM25Retriever(ids, texts) to PgIndex.upload)"
        )

    def texts(self, ids: Sequence[str]) -> dict[str, str]:
        """``id -> text`` of ``ids`` (documents uploaded without texts are left out)."""
        statement = sql_text(
            "SELECT doc_id, doc_text FROM {docs} WHERE doc_id = ANY(%(ids)s) AND doc_text IS NOT NULL"
        ).format(docs=self._names.docs)
        rows = self._run(statement, [{"ids": list(ids)}], [])[0]
        return dict(rows)
