"""Serve a honed index from PostgreSQL + pgvector: two-stage search in one SQL statement.

The index folder (:mod:`honed.index.store`) stays the source of truth; PostgreSQL is a serving replica
that :meth:`PgIndex.upload` fills from it, for teams that already run a database. Install the
driver with ``pip install 'honed[pg]'``; the server (with the ``vector`` extension) is yours.

Tables, for ``table="honed_index"`` (every name is validated and quoted, never formatted)::

    honed_index        doc_row int4 PK, doc_id text UNIQUE, doc_text text,
                       vec_short vector(shortlist_dim)  -- HNSW index, vector_ip_ops
                       vec_full  vector(dim)            -- read for the shortlist only
    honed_index_meta   key text PK, value jsonb: the folder's index.json (model fingerprint,
                       dims, fusion record), the BM25 settings, the layout version
    honed_index_bm25   term_id int4, doc_row int4, score float4  -- btree on term_id
    honed_index_vocab  token text PK, term_id int4

The short column holds the float32 prefix of each vector at ``shortlist_dim`` dims,
renormalised: the int8/binary fast tier of an embedded index is a memory saving for
in-process search; the database shortlists with pgvector's HNSW graph instead (pgvector 0.6 has
no halfvec/bit HNSW). Vectors are unit length, so ``<#>`` (negative inner product) is cosine.

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

An upload runs in one transaction: the rows are COPYed (binary, in batches) into staging
tables, indexed, and renamed into place at the end, so a failed or interrupted upload leaves the
previous tables as they were, and readers see the old index until the commit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.dims import truncate
from honed.index.index import DEFAULT_SHORTLIST, Index, check_queries
from honed.index.postgres.bm25 import Bm25Source, bm25_tokenize, folder_bm25, write_bm25
from honed.index.postgres.tables import (
    HNSW_MAX_DIM,
    LAYOUT_VERSION,
    MAX_DIM,
    SUFFIXES,
    TableNames,
    check_table,
    ensure_vector,
    first_line,
    psycopg_module,
    read_meta,
    redact,
    refuse_existing,
    sql_text,
    swap_in,
    vector_adapter,
    write_docs,
    write_meta,
)
from honed.index.quantize import Quantization
from honed.index.store import IndexInfo
from honed.retrieval.fusion import FusionConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.retrieval.dense import BM25Retriever

__all__ = ["DEFAULT_TABLE", "HNSW_MAX_EF_SEARCH", "PgIndex", "check_table", "redact"]

Hits = list[list[tuple[str, float]]]

DEFAULT_TABLE = "honed_index"
HNSW_MAX_EF_SEARCH = 1000
"""pgvector's cap on ``hnsw.ef_search``: an HNSW scan returns at most that many rows, so a
larger shortlist needs ``exact=True``."""
CONNECT_TIMEOUT_S = 10  # libpq waits forever on an unreachable host without it


def _connect(dsn: str) -> Any:
    """An autocommit connection to ``dsn``; ConnectionError naming the fix when it fails."""
    psycopg = psycopg_module()
    from psycopg.conninfo import conninfo_to_dict

    where = redact(dsn)
    try:
        options = conninfo_to_dict(dsn)
    except psycopg.Error as err:
        raise ConnectionError(
            f"could not parse the database address {where!r} ({first_line(err)}); fix: pass "
            "--store postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    extra = {} if "connect_timeout" in options else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return psycopg.connect(dsn, autocommit=True, **extra)
    except psycopg.Error as err:
        raise ConnectionError(
            f"could not connect to {where}: {first_line(err)}; fix: start the PostgreSQL "
            "server or check --store (host, port, database, user, password)"
        ) from None


def _info_from(values: Mapping[str, Any], where: str) -> IndexInfo:
    """The :class:`IndexInfo` of an uploaded index.json record, as :func:`read_info` reads it."""
    try:
        picked = {
            f.name: values[f.name]
            for f in fields(IndexInfo)
            if f.default is MISSING or f.name in values
        }
        fusion = FusionConfig.from_dict(picked["fusion"]) if picked.get("fusion") else None
        return IndexInfo(
            **{**picked, "precision": Quantization(picked["precision"]), "fusion": fusion}
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: the index record is incomplete ({err!s:.80}); fix: upload the index "
            "folder again with honed index ... --store DSN --overwrite"
        ) from None


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _write_tables(
    conn: Any,
    dsn: str,
    index: Index,
    info: IndexInfo,
    table: str,
    overwrite: bool,
    source: Bm25Source | None,
    batch_size: int,
    hnsw_m: int,
    hnsw_ef_construction: int,
) -> dict[str, Any]:
    """Write every table of ``index`` staged, then swap them in: one transaction.

    Returns:
        The meta table's content (``layout``, ``index`` = ``info``, ``source``, ``bm25``).
    """
    names, stage = TableNames(table), TableNames(table, stage=True)
    meta: dict[str, Any] = {
        "layout": {
            "version": LAYOUT_VERSION,
            "hnsw": {"m": hnsw_m, "ef_construction": hnsw_ef_construction, "ops": "ip"},
        },
        "index": info.to_dict(),
        "source": {
            "folder": str(index.path.resolve()) if index.path is not None else None,
            "uploaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    with conn.transaction(), conn.cursor() as cur:
        # Serialise uploads of one table; readers are not blocked until the swap.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"honed:{table}"])
        refuse_existing(cur, names, dsn, overwrite)
        for key in SUFFIXES:
            cur.execute(sql_text("DROP TABLE IF EXISTS {}").format(getattr(stage, key)))
        write_docs(cur, index, stage, batch_size, hnsw_m, hnsw_ef_construction)
        if source is not None:  # a posting is 26 bytes, a document row kilobytes: 50x rows
            meta["bm25"] = write_bm25(cur, index, source, stage, batch_size * 50)
        write_meta(cur, stage, meta)
        for key in SUFFIXES:
            cur.execute(sql_text("DROP TABLE IF EXISTS {}").format(getattr(names, key)))
        swap_in(cur, stage, names)
    return meta


class PgIndex:
    """A honed index served from PostgreSQL; make one with :meth:`upload` or :meth:`open`.

    Attributes:
        info: the uploaded folder's index.json record (model fingerprint, dims, count).
        table: the documents table; the others are ``{table}_meta``, ``_bm25``, ``_vocab``.
        fusion: how :meth:`hybrid_search` fuses (``info.fusion``, from the folder's
            index.json), or None when the index has none.
        bm25: the BM25 tokenizer settings, or None when no side table was uploaded.
        meta: everything the meta table holds.
    """

    def __init__(self, conn: Any, dsn: str, table: str, meta: dict[str, Any]) -> None:
        self._conn = conn
        self.dsn = dsn
        self.table = table
        self.meta = meta
        self.info = _info_from(meta.get("index", {}), f"{redact(dsn)} table {table}_meta")
        self.fusion: FusionConfig | None = self.info.fusion
        self.bm25: dict[str, Any] | None = meta.get("bm25")
        self._names = TableNames(table)
        self._vector = vector_adapter(conn)
        self.upload_seconds: float | None = None  # set by upload

    def __len__(self) -> int:
        return self.info.count

    def __enter__(self) -> PgIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    # ----------------------------------------------------------------------- open / upload

    @classmethod
    def open(
        cls,
        dsn: str,
        model: SentenceTransformer | None = None,
        table: str = DEFAULT_TABLE,
    ) -> PgIndex:
        """Connect to the index uploaded to ``table`` at ``dsn``.

        Args:
            dsn: a libpq connection string or URL (``postgresql://user:pw@host:5432/db``).
            model: when given, refuse the index unless this model built it (same fingerprint).
            table: the documents table name given to :meth:`upload`.

        Raises:
            ImportError: psycopg is not installed.
            ConnectionError: the server cannot be reached or the DSN is malformed.
            ValueError: no pgvector extension, a bad table name, or another model's index.
            FileNotFoundError: no honed index in ``table``.
        """
        names = TableNames(table)
        conn = _connect(dsn)
        try:
            meta = read_meta(conn, dsn, names)
            index = cls(conn, dsn, table, meta)
            if model is not None:
                index.check_model(model)
        except BaseException:
            conn.close()
            raise
        return index

    def check_model(self, model: SentenceTransformer) -> None:
        """ValueError unless ``model`` built this index (same fingerprint, as Index.load checks)."""
        from honed.encoding.encoder import model_fingerprint

        given, info = model_fingerprint(model), self.info
        if given != info.model_fingerprint:
            raise ValueError(
                f"{redact(self.dsn)} table {self.table}: built by model {info.model_name or '?'} "
                f"(fingerprint {info.model_fingerprint}), but the given model has fingerprint "
                f"{given}: its query vectors would not match; fix: search with --model "
                f"{info.model_name or 'MODEL'}, or rebuild and upload the index with the new model "
                "(honed index MODEL DATA --out FOLDER --store DSN --overwrite)"
            )

    @classmethod
    def check_target(
        cls,
        dsn: str,
        table: str = DEFAULT_TABLE,
        overwrite: bool = False,
        create_extension: bool = True,
    ) -> None:
        """Fail now, with :meth:`upload`'s errors, if an upload to ``table`` would be refused.

        Run before a long encoding: the server is reachable, pgvector is there (created when
        ``create_extension``), and ``table`` is free or (with ``overwrite``) a honed index.
        """
        names = TableNames(table)
        conn = _connect(dsn)
        try:
            ensure_vector(conn, dsn, create_extension)
            with conn.cursor() as cur:
                refuse_existing(cur, names, dsn, overwrite)
        finally:
            conn.close()

    @classmethod
    def upload(
        cls,
        index_or_folder: Index | str | Path,
        dsn: str,
        table: str = DEFAULT_TABLE,
        overwrite: bool = False,
        bm25: BM25Retriever | None = None,
        fusion: FusionConfig | None = None,
        batch_size: int = 5_000,
        create_extension: bool = True,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
    ) -> PgIndex:
        """Copy an index into PostgreSQL (one transaction) and open it there.

        Args:
            index_or_folder: an :class:`~honed.index.index.Index` or its folder.
            dsn: libpq connection string or URL of the server.
            table: documents table; ``{table}_meta``, ``_bm25`` and ``_vocab`` go beside it.
            overwrite: replace an index already in ``table`` (only ever a honed one).
            bm25: a BM25 index of the same documents for :meth:`hybrid_search`; by default
                the folder's ``bm25/`` index when it has one, else no side table.
            fusion: how :meth:`hybrid_search` fuses; by default the index's own
                (``index.info.fusion``, recorded in its index.json), if any.
            batch_size: rows per COPY chunk (memory holds one chunk).
            create_extension: run ``CREATE EXTENSION IF NOT EXISTS vector`` first.
            hnsw_m, hnsw_ef_construction: the HNSW graph's build parameters.

        Returns:
            The uploaded index, open; ``upload_seconds`` says how long the upload took.

        Raises:
            ImportError: psycopg is not installed.
            ConnectionError: the server cannot be reached or the DSN is malformed.
            FileExistsError: ``table`` exists and ``overwrite`` is False, or it is not honed's.
            ValueError: no pgvector extension (and it cannot be created), a bad table name,
                dims pgvector cannot index, or a BM25 index of another corpus.
            PermissionError: the user may not create tables there.
        """
        started = time.perf_counter()
        check_table(table)  # before loading anything
        batch_size = _positive("batch_size", batch_size)
        index = (
            index_or_folder if isinstance(index_or_folder, Index) else Index.load(index_or_folder)
        )
        info = index.info if fusion is None else replace(index.info, fusion=fusion)
        if info.shortlist_dim > HNSW_MAX_DIM or info.dim > MAX_DIM:
            raise ValueError(
                f"pgvector indexes at most {HNSW_MAX_DIM} dims with HNSW and stores at most "
                f"{MAX_DIM}; this index has shortlist_dim {info.shortlist_dim} and dim "
                f"{info.dim}; fix: rebuild with --shortlist-dim <= {HNSW_MAX_DIM}"
            )
        bm25 = bm25 if bm25 is not None else getattr(index, "_bm25", None)  # in-memory index
        source = Bm25Source.from_retriever(bm25) if bm25 is not None else folder_bm25(index)
        psycopg = psycopg_module()
        conn = _connect(dsn)
        try:
            ensure_vector(conn, dsn, create_extension)
            meta = _write_tables(
                conn, dsn, index, info, table, overwrite, source, batch_size, hnsw_m,
                hnsw_ef_construction,
            )  # fmt: skip
        except psycopg.errors.InsufficientPrivilege as err:
            conn.close()
            raise PermissionError(
                f"{redact(dsn)}: {first_line(err)}, so nothing was uploaded; fix: connect as a "
                "user who may create tables here (e.g. GRANT CREATE ON SCHEMA public TO USER)"
            ) from None
        except psycopg.OperationalError as err:
            conn.close()
            raise ConnectionError(
                f"upload to {redact(dsn)} failed: {first_line(err)}; nothing was changed (the "
                "transaction rolled back); fix: check the server (disk, logs), then upload again"
            ) from None
        except BaseException:
            conn.close()
            raise
        opened = cls(conn, dsn, table, meta)
        opened.upload_seconds = time.perf_counter() - started
        return opened

    # ----------------------------------------------------------------------- search

    def _queries(self, query_emb: np.ndarray) -> np.ndarray:
        return check_queries(query_emb, self.info.dim)

    def _run(
        self, statement: Any, rows: Sequence[Mapping[str, Any]], settings: Sequence[tuple[str, str]]
    ) -> list[list[tuple[Any, ...]]]:
        """Execute ``statement`` once per parameter row in one transaction with local settings."""
        psycopg = psycopg_module()
        results = []
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                for name, value in settings:
                    cur.execute("SELECT set_config(%s, %s, true)", [name, value])
                for params in rows:
                    # Never a server-side prepared statement: its cached plan would ignore the
                    # settings above (a cached HNSW plan survives enable_indexscan=off).
                    cur.execute(statement, params, prepare=False)
                    results.append(cur.fetchall())
        except psycopg.OperationalError as err:
            raise ConnectionError(
                f"lost the connection to {redact(self.dsn)}: {first_line(err)}; fix: check "
                "that the server is running, then search again"
            ) from None
        except psycopg.errors.UndefinedTable:
            raise FileNotFoundError(
                f"{redact(self.dsn)}: the tables of {self.table} were dropped while open; fix: "
                "upload the index again with honed index ... --store DSN"
            ) from None
        return results

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
        k, shortlist = _positive("k", k), _positive("shortlist", shortlist)
        if shortlist < k:
            raise ValueError(
                f"shortlist ({shortlist}) must be >= k ({k}): the re-rank returns only shortlisted documents; fix: raise --shortlist"
            )
        queries = self._queries(query_emb)
        shorts = truncate(queries, self.info.shortlist_dim)
        n = self.info.count
        shortlist, k = min(shortlist, n), min(k, n)
        # 2 x shortlist by default, as the folder's faiss graph: on SciFact-sized 384-dim data a
        # shortlist of 100 then keeps ~98% of the exact shortlist's top 10 (94% at 1 x)
        default = min(2 * shortlist, HNSW_MAX_EF_SEARCH)
        ef = max(shortlist, 40, _positive("ef_search", ef_search) if ef_search else default)
        if exact:
            settings = [("enable_indexscan", "off")]
        elif ef > HNSW_MAX_EF_SEARCH:
            raise ValueError(
                f"shortlist {shortlist} / ef_search {ef_search or shortlist}: pgvector's HNSW scan "
                f"returns at most {HNSW_MAX_EF_SEARCH} candidates (hnsw.ef_search); fix: use "
                f"--shortlist <= {HNSW_MAX_EF_SEARCH}, or an exact shortlist (exact=True)"
            )
        else:  # an HNSW scan returns at most ef_search rows
            settings = [("hnsw.ef_search", str(ef))]
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
        k = min(_positive("k", k), self.info.count)
        queries = self._queries(query_emb)
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
        k = _positive("k", k)
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
        k = _positive("k", k)
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
