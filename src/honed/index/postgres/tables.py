"""The tables of a honed index in PostgreSQL: names, binary COPY, BM25 postings, meta, swap.

:mod:`honed.index.postgres.store` serves the index; this module owns the tables (layout in its docstring).
Rows are sent with binary ``COPY``: the fixed-width part of each row (vectors, integers) is
laid out by numpy for a whole batch, so a million 384-dim documents cost no per-float Python.
Every table is written under a ``__stage`` name and renamed into place in the same transaction
(:mod:`honed.index.postgres.upload`), so a failed upload never replaces a good index.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from honed.encoding.dims import truncate
from honed.index.postgres.redact import redact

if TYPE_CHECKING:
    from honed.index.index import Index

__all__ = [
    "COPY_SIGNATURE",
    "COPY_TRAILER",
    "DEFAULT_TABLE",
    "HNSW_MAX_DIM",
    "LAYOUT_VERSION",
    "MAX_DIM",
    "SUFFIXES",
    "TableNames",
    "check_table",
    "copy_chunks",
    "ensure_vector",
    "first_line",
    "psycopg_module",
    "read_meta",
    "redact",
    "existing_tables",
    "sql_text",
    "swap_in",
    "vector_adapter",
    "write_docs",
    "write_meta",
]

LAYOUT_VERSION = 1
DEFAULT_TABLE = "honed_index"
HNSW_MAX_DIM = 2000  # pgvector's limit for an HNSW index on vector
MAX_DIM = 16000  # pgvector's limit for the vector type
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
SUFFIXES = {"docs": "", "meta": "_meta", "bm25": "_bm25", "vocab": "_vocab"}
_STAGE = "__stage"
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)


def psycopg_module() -> Any:
    """The psycopg module, or ImportError naming the extra that installs it."""
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "the PostgreSQL backend needs the psycopg 3 driver; fix: pip install 'honed[pg]'"
        ) from None
    return psycopg


def check_table(table: str) -> str:
    """``table`` when it is a plain lower-case SQL name of at most 40 characters, else ValueError."""
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
        raise ValueError(
            f"table name {table!r}: expected lower-case letters, digits and _ (not starting with "
            "a digit), at most 40 characters; fix: pass --table like honed_index"
        )
    return table


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for one-line errors."""
    text = " ".join(str(err).split("\n")[:1]).strip()
    return text.rstrip(".") or type(err).__name__


class TableNames:
    """The quoted identifiers of one index's tables and indexes, final or staged."""

    def __init__(self, table: str, stage: bool = False) -> None:
        sql = psycopg_module().sql
        self.base = check_table(table)
        tail = _STAGE if stage else ""
        self.raw = {key: f"{table}{suffix}{tail}" for key, suffix in SUFFIXES.items()}
        self.docs, self.meta, self.bm25, self.vocab = (
            sql.Identifier(self.raw[key]) for key in ("docs", "meta", "bm25", "vocab")
        )
        self.index_raw = {
            "docs_pkey": f"{table}_pkey{tail}",
            "doc_id": f"{table}_doc_id_key{tail}",
            "short": f"{table}_short_hnsw{tail}",
            "meta_pkey": f"{table}_meta_pkey{tail}",
            "bm25_term": f"{table}_bm25_term{tail}",
            "vocab_pkey": f"{table}_vocab_pkey{tail}",
        }

    def index(self, key: str) -> Any:
        from psycopg import sql

        return sql.Identifier(self.index_raw[key])


# --------------------------------------------------------------------------- binary COPY rows


def _vector_fields(dim: int) -> list[tuple[str, str] | tuple[str, str, tuple[int]]]:
    return [("len", ">i4"), ("dim", ">u2"), ("unused", ">u2"), ("values", ">f4", (dim,))]


def doc_chunks(index: Index, texts: Iterator[str | None], batch_size: int) -> Iterator[bytes]:
    """Binary COPY data of ``(doc_row, vec_short, vec_full, doc_id, doc_text)``, per batch.

    The fixed-width part of each row (field count, row number, both vectors) is laid out by
    numpy for a whole batch; only the two text fields are appended per row.
    """
    sd, dim = index.info.shortlist_dim, index.info.dim
    layout = np.dtype(
        [
            ("nfields", ">i2"),
            ("row_len", ">i4"),
            ("row", ">i4"),
            ("short", np.dtype(_vector_fields(sd))),
            ("full", np.dtype(_vector_fields(dim))),
        ]
    )
    width = layout.itemsize
    yield COPY_SIGNATURE
    for start in range(0, index.info.count, batch_size):
        full = truncate(index.full[start : start + batch_size], dim)  # (b, dim), unit rows
        fixed = np.zeros(len(full), dtype=layout)
        fixed["nfields"], fixed["row_len"] = 5, 4
        fixed["row"] = np.arange(start, start + len(full))
        for name, vectors in (("short", truncate(full, sd)), ("full", full)):
            fixed[name]["len"] = 4 + 4 * vectors.shape[1]
            fixed[name]["dim"] = vectors.shape[1]
            fixed[name]["values"] = vectors
        raw = memoryview(fixed.tobytes())
        parts: list[bytes | memoryview] = []
        for i, doc_id in enumerate(index.ids[start : start + len(full)]):
            parts.append(raw[i * width : (i + 1) * width])
            for value in (doc_id, next(texts)):
                if value is None:
                    parts.append(_NULL)
                else:
                    encoded = str(value).encode("utf-8")
                    parts += (struct.pack(">i", len(encoded)), encoded)
        yield b"".join(parts)
    yield COPY_TRAILER


def copy_chunks(cur: Any, statement: Any, chunks: Iterator[bytes]) -> None:
    """Stream ``chunks`` (a whole binary COPY: signature, rows, trailer) into ``statement``."""
    with cur.copy(statement) as copy:
        for chunk in chunks:
            copy.write(chunk)


# --------------------------------------------------------------------------- SQL helpers


def sql_text(text: str) -> Any:
    """A constant SQL template; values go in as parameters, names as :class:`TableNames`."""
    from psycopg import sql

    return sql.SQL(text)  # type: ignore[arg-type]  # constant templates only


def vector_adapter(conn: Any) -> Any:
    """A wrapper class whose values psycopg sends as binary pgvector ``vector`` parameters."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    type_info = TypeInfo.fetch(conn, "vector")
    if type_info is None:  # checked before; kept for a clear error if dropped meanwhile
        raise ValueError("the pgvector extension is missing; fix: CREATE EXTENSION vector")

    class Vector:
        __slots__ = ("values",)

        def __init__(self, values: np.ndarray) -> None:
            self.values = np.ascontiguousarray(values, dtype=">f4")

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = type_info.oid

        def dump(self, obj: Vector) -> bytes:
            return struct.pack(">HH", obj.values.size, 0) + obj.values.tobytes()

    conn.adapters.register_dumper(Vector, VectorDumper)
    return Vector


def ensure_vector(conn: Any, dsn: str, create: bool) -> None:
    """Make sure the database has pgvector (creating it when ``create``); ValueError if not."""
    psycopg = psycopg_module()
    present = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if present:
        return
    reason = "it is not installed in this database"
    if create:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            return
        except psycopg.Error as err:
            reason = f"CREATE EXTENSION failed: {first_line(err)}"
    raise ValueError(
        f"{redact(dsn)}: the pgvector extension is missing ({reason}); fix: install pgvector "
        "on the server and, as a superuser, run CREATE EXTENSION vector in this database"
    )


def existing_tables(cur: Any, names: TableNames) -> set[str]:
    """Which of ``names``' tables exist in the current schema."""
    cur.execute(
        "SELECT relname FROM pg_class WHERE relname = ANY(%s)"
        " AND relnamespace = current_schema()::regnamespace",
        [list(names.raw.values())],
    )
    return {row[0] for row in cur.fetchall()}


def read_meta(conn: Any, dsn: str, names: TableNames) -> dict[str, Any]:
    """The meta table of ``names`` as ``key -> value``; the errors name the fix."""
    vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if not vector:
        raise ValueError(
            f"{redact(dsn)}: the pgvector extension is missing from this database; fix: run "
            "CREATE EXTENSION vector (as a superuser), then upload with honed index ... --store"
        )
    with conn.cursor() as cur:
        found = existing_tables(cur, names)
        if names.raw["docs"] not in found or names.raw["meta"] not in found:
            raise FileNotFoundError(
                f"{redact(dsn)}: no honed index in table {names.base}; fix: upload one with "
                f"honed index MODEL DATA --out FOLDER --store DSN --table {names.base}"
            )
        cur.execute(sql_text("SELECT key, value FROM {}").format(names.meta))
        meta = {key: value for key, value in cur.fetchall()}
    layout = meta.get("layout") or {}
    if layout.get("version") != LAYOUT_VERSION:
        raise ValueError(
            f"{redact(dsn)} table {names.base}: layout version {layout.get('version')!r}, this "
            f"honed reads {LAYOUT_VERSION}; fix: upload the index folder again with --overwrite"
        )
    return meta


def write_docs(
    cur: Any, index: Index, stage: TableNames, batch_size: int, m: int, ef_construction: int
) -> None:
    """Create and fill the documents table, then its keys and HNSW index (faster after COPY)."""
    from psycopg import sql

    info = index.info
    cur.execute(
        sql_text(
            "CREATE TABLE {docs} (doc_row int4 NOT NULL, doc_id text NOT NULL, doc_text text,"
            " vec_short vector({sd}) NOT NULL, vec_full vector({dim}) NOT NULL)"
        ).format(
            docs=stage.docs,
            sd=sql.Literal(int(info.shortlist_dim)),
            dim=sql.Literal(int(info.dim)),
        )
    )
    texts = texts_in_row_order(index)
    copy_chunks(
        cur,
        sql_text(
            "COPY {} (doc_row, vec_short, vec_full, doc_id, doc_text) FROM STDIN (FORMAT BINARY)"
        ).format(stage.docs),
        doc_chunks(index, texts, batch_size),
    )
    cur.execute(
        sql_text("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (doc_row)").format(
            stage.docs, stage.index("docs_pkey")
        )
    )
    cur.execute(
        sql_text("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE (doc_id)").format(
            stage.docs, stage.index("doc_id")
        )
    )
    cur.execute(
        sql_text(
            "CREATE INDEX {} ON {} USING hnsw (vec_short vector_ip_ops)"
            " WITH (m = {}, ef_construction = {})"
        ).format(
            stage.index("short"),
            stage.docs,
            sql.Literal(int(m)),
            sql.Literal(int(ef_construction)),
        )
    )
    cur.execute(sql_text("ANALYZE {}").format(stage.docs))


def texts_in_row_order(index: Index) -> Iterator[str | None]:
    """The index's texts in row order, streamed from texts.jsonl; None without one."""
    file = index.path / "texts.jsonl" if index.path is not None else None
    if file is None or not file.is_file():
        while True:
            yield None
    with file.open(encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            try:
                yield str(json.loads(line))
            except ValueError:
                raise ValueError(
                    f"{file}:{row + 1}: not a JSON string; fix: rebuild the index folder"
                ) from None
    raise ValueError(
        f"{file}: fewer lines than the index's {index.info.count} documents; fix: rebuild the "
        "index folder"
    )


def write_meta(cur: Any, stage: TableNames, meta: Mapping[str, Any]) -> None:
    """Create the meta table: one jsonb value per key."""
    from psycopg.types.json import Jsonb

    cur.execute(
        sql_text(
            "CREATE TABLE {} (key text NOT NULL, value jsonb NOT NULL, CONSTRAINT {} PRIMARY KEY (key))"
        ).format(stage.meta, stage.index("meta_pkey"))
    )
    cur.executemany(
        sql_text("INSERT INTO {} (key, value) VALUES (%s, %s)").format(stage.meta),
        [(key, Jsonb(value)) for key, value in meta.items()],
    )


def swap_in(cur: Any, stage: TableNames, names: TableNames) -> None:
    """Move the staged tables and their indexes to the final names (same transaction)."""
    present = existing_tables(cur, stage)
    for key in ("docs", "meta", "bm25", "vocab"):
        if stage.raw[key] in present:
            cur.execute(
                sql_text("ALTER TABLE {} RENAME TO {}").format(
                    getattr(stage, key), getattr(names, key)
                )
            )
    cur.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'i' AND relname = ANY(%s)"
        " AND relnamespace = current_schema()::regnamespace",
        [list(stage.index_raw.values())],
    )
    staged = {row[0] for row in cur.fetchall()}
    for key, raw in stage.index_raw.items():
        if raw in staged:
            cur.execute(
                sql_text("ALTER INDEX {} RENAME TO {}").format(stage.index(key), names.index(key))
            )
