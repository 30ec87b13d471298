"""Copying an index folder into PostgreSQL: one transaction, staged tables swapped in at the end.

The rows are COPYed (binary, in batches) into ``__stage`` tables, indexed, and renamed into
place in the same transaction (:mod:`honed.index.postgres.tables`), so a failed or interrupted
upload leaves the previous tables as they were, and readers see the old index until the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from honed.index.checks import positive
from honed.index.index import Index
from honed.index.postgres.bm25 import Bm25Source, folder_bm25, write_bm25
from honed.index.postgres.connection import connect
from honed.index.postgres.ownership import MARKER_KEY, hold_upload_lock, marker, refuse_existing
from honed.index.postgres.tables import (
    DEFAULT_TABLE,
    HNSW_MAX_DIM,
    LAYOUT_VERSION,
    MAX_DIM,
    SUFFIXES,
    TableNames,
    check_table,
    ensure_vector,
    first_line,
    psycopg_module,
    redact,
    sql_text,
    swap_in,
    write_docs,
    write_meta,
)
from honed.index.store import IndexInfo
from honed.retrieval.bm25 import BM25Retriever
from honed.retrieval.fusion import FusionConfig

__all__ = ["UploadOptions", "upload_tables"]


@dataclass(frozen=True)
class UploadOptions:
    """Where and how :meth:`~honed.index.postgres.store.PgIndex.upload` writes an index.

    Attributes:
        table: documents table; ``{table}_meta``, ``_bm25`` and ``_vocab`` go beside it.
        overwrite: replace an index already in ``table`` (only ever a honed one).
        batch_size: rows per COPY chunk (memory holds one chunk).
        create_extension: run ``CREATE EXTENSION IF NOT EXISTS vector`` first.
        hnsw_m: the HNSW graph's degree (pgvector's ``m``).
        hnsw_ef_construction: candidates kept while building the graph (``ef_construction``).

    Raises:
        ValueError: a bad table name, or a size that is not a positive integer.
    """

    table: str = DEFAULT_TABLE
    overwrite: bool = False
    batch_size: int = 5_000
    create_extension: bool = True
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64

    def __post_init__(self) -> None:
        check_table(self.table)
        for name in ("batch_size", "hnsw_m", "hnsw_ef_construction"):
            positive(name, getattr(self, name))


def _check_dims(info: IndexInfo) -> None:
    if info.shortlist_dim > HNSW_MAX_DIM or info.dim > MAX_DIM:
        raise ValueError(
            f"pgvector indexes at most {HNSW_MAX_DIM} dims with HNSW and stores at most "
            f"{MAX_DIM}; this index has shortlist_dim {info.shortlist_dim} and dim "
            f"{info.dim}; fix: rebuild with --shortlist-dim <= {HNSW_MAX_DIM}"
        )


def _meta(index: Index, info: IndexInfo, options: UploadOptions) -> dict[str, Any]:
    """The meta table's content: the layout, ``info`` (index.json) and where it came from."""
    hnsw = {"m": options.hnsw_m, "ef_construction": options.hnsw_ef_construction, "ops": "ip"}
    return {
        "layout": {"version": LAYOUT_VERSION, "hnsw": hnsw},
        "index": info.to_dict(),
        "source": {
            "folder": str(index.path.resolve()) if index.path is not None else None,
            "uploaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _write_tables(
    conn: Any,
    dsn: str,
    index: Index,
    meta: dict[str, Any],
    source: Bm25Source | None,
    options: UploadOptions,
) -> dict[str, Any]:
    """Write every table of ``index`` staged, then swap them in: one transaction.

    Returns:
        ``meta``, with the BM25 settings under ``bm25`` when there is a side table.
    """
    table, batch_size = options.table, options.batch_size
    names, stage = TableNames(table), TableNames(table, stage=True)
    with conn.transaction(), conn.cursor() as cur:
        # One upload of a table at a time; readers are not blocked until the swap.
        hold_upload_lock(cur, names, dsn)
        refuse_existing(cur, names, dsn, options.overwrite)  # honed's marker, in this transaction
        write_docs(cur, index, stage, batch_size, options.hnsw_m, options.hnsw_ef_construction)
        written = [names.raw["docs"], names.raw["meta"]]
        if source is not None:  # a posting is 26 bytes, a document row kilobytes: 50x rows
            meta = {**meta, "bm25": write_bm25(cur, index, source, stage, batch_size * 50)}
            written += [names.raw["bm25"], names.raw["vocab"]]
        meta = {**meta, MARKER_KEY: marker(meta["index"], written)}
        write_meta(cur, stage, meta)
        for key in SUFFIXES:  # each one proved honed's by refuse_existing
            cur.execute(sql_text("DROP TABLE IF EXISTS {}").format(getattr(names, key)))
        swap_in(cur, stage, names)
    return meta


def upload_tables(
    index: Index,
    dsn: str,
    bm25: BM25Retriever | None,
    fusion: FusionConfig | None,
    options: UploadOptions,
) -> tuple[Any, dict[str, Any]]:
    """Copy ``index`` into the database at ``dsn``; the open connection and the meta written.

    ``bm25`` and ``fusion`` replace the index's own (its ``bm25/`` folder, index.json's fusion).

    Raises:
        ImportError, ConnectionError, FileExistsError, ValueError, PermissionError: see
            :meth:`honed.index.postgres.store.PgIndex.upload`.
    """
    info = index.info if fusion is None else replace(index.info, fusion=fusion)
    _check_dims(info)
    bm25 = bm25 if bm25 is not None else index._bm25  # an in-memory index's own
    source = Bm25Source.from_retriever(bm25) if bm25 is not None else folder_bm25(index)
    psycopg = psycopg_module()
    conn = connect(dsn)
    try:
        ensure_vector(conn, dsn, options.create_extension)
        meta = _write_tables(conn, dsn, index, _meta(index, info, options), source, options)
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
    return conn, meta
