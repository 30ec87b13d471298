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

Search is one parameterised statement per query, and hybrid search fuses it with a stored BM25
side table (:mod:`honed.index.postgres.search`).

An upload runs in one transaction (:mod:`honed.index.postgres.upload`): a failed or interrupted
upload leaves the previous tables as they were, and readers see the old index until the commit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honed.encoding.encoder import model_fingerprint
from honed.index.index import Index
from honed.index.postgres.connection import connect
from honed.index.postgres.ownership import hold_upload_lock, refuse_existing
from honed.index.postgres.redact import redact, scrubbed
from honed.index.postgres.search import HNSW_MAX_EF_SEARCH, PgSearch
from honed.index.postgres.tables import (
    DEFAULT_TABLE,
    TableNames,
    check_table,
    ensure_vector,
    read_meta,
    vector_adapter,
)
from honed.index.postgres.upload import UploadOptions, upload_tables
from honed.index.store import IndexInfo
from honed.retrieval.fusion import FusionConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from honed.retrieval.bm25 import BM25Retriever

__all__ = ["DEFAULT_TABLE", "HNSW_MAX_EF_SEARCH", "PgIndex", "check_table", "redact"]


def _info_from(values: dict[str, Any], where: str) -> IndexInfo:
    """The :class:`IndexInfo` of an uploaded index.json record, as :func:`read_info` reads it."""
    try:
        return IndexInfo.from_dict(values)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: the index record is incomplete ({err!s:.80}); fix: upload the index "
            "folder again with honed index ... --store DSN --overwrite"
        ) from None


class PgIndex(PgSearch):
    """A honed index served from PostgreSQL; make one with :meth:`upload` or :meth:`open`.

    Search it with :meth:`search`, :meth:`search_exact`, :meth:`bm25_search` and
    :meth:`hybrid_search` (see :class:`~honed.index.postgres.search.PgSearch`).

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
        with scrubbed(dsn):
            conn = connect(dsn)
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
        with scrubbed(dsn):
            conn = connect(dsn)
            try:
                ensure_vector(conn, dsn, create_extension)
                with conn.transaction(), conn.cursor() as cur:  # rolled back: changes nothing
                    hold_upload_lock(cur, names, dsn)
                    refuse_existing(cur, names, dsn, overwrite)
            finally:
                conn.close()

    @classmethod
    def upload(
        cls,
        index_or_folder: Index | str | Path,
        dsn: str,
        bm25: BM25Retriever | None = None,
        fusion: FusionConfig | None = None,
        **settings: Any,
    ) -> PgIndex:
        """Copy an index into PostgreSQL (one transaction) and open it there.

        Args:
            index_or_folder: an :class:`~honed.index.index.Index` or its folder.
            dsn: libpq connection string or URL of the server.
            bm25: a BM25 index of the same documents for :meth:`hybrid_search`; by default
                the folder's ``bm25/`` index when it has one, else no side table.
            fusion: how :meth:`hybrid_search` fuses; by default the index's own
                (``index.info.fusion``, recorded in its index.json), if any.
            **settings: :class:`~honed.index.postgres.upload.UploadOptions` fields: ``table``,
                ``overwrite``, ``batch_size``, ``create_extension``, ``hnsw_m``,
                ``hnsw_ef_construction``.

        Returns:
            The uploaded index, open; ``upload_seconds`` says how long the upload took.

        Raises:
            ImportError: psycopg is not installed.
            ConnectionError: the server cannot be reached or the DSN is malformed.
            FileExistsError: ``table`` exists and ``overwrite`` is False, or a table the upload
                would replace is not proved honed's by its marker (nothing is dropped), or
                another upload to ``table`` is running (names its database backend pid).
            ValueError: no pgvector extension (and it cannot be created), a bad table name,
                dims pgvector cannot index, or a BM25 index of another corpus.
            PermissionError: the user may not create tables there.
        """
        started = time.perf_counter()
        options = UploadOptions(**settings)  # a bad table name fails before loading anything
        index = (
            index_or_folder if isinstance(index_or_folder, Index) else Index.load(index_or_folder)
        )
        with scrubbed(dsn):
            conn, meta = upload_tables(index, dsn, bm25, fusion, options)
        opened = cls(conn, dsn, options.table, meta)
        opened.upload_seconds = time.perf_counter() - started
        return opened
