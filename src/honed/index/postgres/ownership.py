"""Which tables an upload may replace: only those honed's own marker names, checked in its transaction.

An existing ``{table}_meta`` proves nothing: a user's tables ``orders`` and ``orders_meta`` are
not a honed index. Every upload writes a marker row into the meta table::

    key 'honed' -> {"format": "honed pgvector index", "layout": 1,
                    "fingerprint": sha256 of the 'index' row (index.json), "tables": [...]}

and ``--overwrite`` replaces existing tables only when the meta table has honed's columns, the
marker has honed's format and layout version, its fingerprint matches the ``index`` row beside
it, and it lists *every* existing table the upload would replace (documents, meta, BM25,
vocabulary). The check runs in the upload's own transaction, after the tables are locked
against writes and schema changes (``SHARE ROW EXCLUSIVE``: searches still read them), so
nothing can change between the check and the drop.

Uploads of one table are serialised by a transaction-scoped advisory lock: a second upload (or
its pre-flight :func:`hold_upload_lock` check) is refused naming the database backend pid that
holds it, instead of waiting behind it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from honed.index.postgres.redact import redact
from honed.index.postgres.tables import (
    LAYOUT_VERSION,
    SUFFIXES,
    TableNames,
    existing_tables,
    sql_text,
)

__all__ = [
    "ADVISORY_CLASS",
    "MARKER_FORMAT",
    "MARKER_KEY",
    "hold_upload_lock",
    "index_fingerprint",
    "marker",
    "refuse_existing",
]

MARKER_KEY = "honed"
MARKER_FORMAT = "honed pgvector index"
ADVISORY_CLASS = 0x686F6E65  # "hone": the first key of honed's advisory locks
_LOCK_TIMEOUT = "30s"  # a reader's long transaction must not hang an upload forever


def index_fingerprint(record: Mapping[str, Any]) -> str:
    """sha256 of an index record (index.json's content), keys sorted: what the marker proves."""
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def marker(record: Mapping[str, Any], tables: Sequence[str]) -> dict[str, Any]:
    """The marker row an upload of ``record`` into ``tables`` writes (key :data:`MARKER_KEY`)."""
    return {
        "format": MARKER_FORMAT,
        "layout": LAYOUT_VERSION,
        "fingerprint": index_fingerprint(record),
        "tables": sorted(tables),
    }


def hold_upload_lock(cur: Any, names: TableNames, dsn: str) -> None:
    """Take the table's upload lock for this transaction, or refuse naming the backend holding it.

    Raises:
        FileExistsError: another upload to the same table is running.
    """
    key = f"honed:{names.base}"
    cur.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", [ADVISORY_CLASS, key])
    if cur.fetchone()[0]:
        return
    cur.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND classid = %s::bigint::oid AND objid = (hashtext(%s)::bigint & 4294967295)::oid",
        [ADVISORY_CLASS, key],
    )
    row = cur.fetchone()
    pid = row[0] if row else "unknown"
    raise FileExistsError(
        f"{redact(dsn)} table {names.base}: another upload to it is running (database backend "
        f"pid {pid}); fix: wait for it to finish, then upload again"
    )


def _marker_problem(cur: Any, names: TableNames) -> str | None:
    """Why the meta table is not honed's proof of ownership, or None when it is."""
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        [names.raw["meta"]],
    )
    columns = dict(cur.fetchall())
    if columns.get("key") != "text" or columns.get("value") != "jsonb":
        return f"{names.raw['meta']} does not have honed's key/value columns"
    cur.execute(
        sql_text("SELECT key, value FROM {} WHERE key IN (%s, 'index')").format(names.meta),
        [MARKER_KEY],
    )
    rows = dict(cur.fetchall())
    found = rows.get(MARKER_KEY)
    if not isinstance(found, dict) or found.get("format") != MARKER_FORMAT:
        return f"no honed marker in {names.raw['meta']}"
    if found.get("layout") != LAYOUT_VERSION:
        return f"marker of layout {found.get('layout')!r}, this honed writes {LAYOUT_VERSION}"
    record = rows.get("index")
    if not isinstance(record, dict) or found.get("fingerprint") != index_fingerprint(record):
        return f"the marker's fingerprint does not match the index record in {names.raw['meta']}"
    if not isinstance(found.get("tables"), list):
        return "the marker lists no tables"
    return None


def refuse_existing(cur: Any, names: TableNames, dsn: str, overwrite: bool) -> None:
    """FileExistsError unless every table an upload would replace is free or honed's own.

    Run inside the upload's transaction: the existing tables are locked against writes and
    schema changes until it ends, so they cannot change between this check and the drop.

    Raises:
        FileExistsError: a table exists and ``overwrite`` is False; or one is not proved to be
            honed's by the marker (nothing is dropped then); or a ``__stage`` name is taken.
    """
    where, table = redact(dsn), names.base
    stage = TableNames(table, stage=True)
    for raw in sorted(existing_tables(cur, stage)):  # honed's never outlive their transaction
        raise FileExistsError(
            f"{where} table {raw}: exists, and honed uses that name while it uploads {table}; "
            "fix: rename that table, or choose another --table"
        )
    existing = existing_tables(cur, names)
    if not existing:
        return
    if not overwrite:
        raise FileExistsError(
            f"{where} table {table}: exists; fix: pass --overwrite to replace it, or "
            "choose another --table"
        )
    ordered = [names.raw[key] for key in SUFFIXES if names.raw[key] in existing]
    cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    cur.execute(
        sql_text("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
            sql_text(", ").join(getattr(names, k) for k in SUFFIXES if names.raw[k] in existing)
        )
    )
    problem = _marker_problem(cur, names) if names.raw["meta"] in existing else (
        f"no {names.raw['meta']}"
    )
    if problem is not None:
        raise FileExistsError(
            f"{where} table {table}: not a honed index ({problem}), so --overwrite will not "
            "drop it; fix: choose another --table"
        )
    cur.execute(sql_text("SELECT value FROM {} WHERE key = %s").format(names.meta), [MARKER_KEY])
    listed = set(cur.fetchone()[0]["tables"])
    for raw in ordered:
        if raw not in listed:
            raise FileExistsError(
                f"{where} table {raw}: exists but is not part of the honed index in {table} "
                f"(its marker does not list it), so --overwrite will not drop it; fix: rename "
                f"or drop {raw} yourself, or choose another --table"
            )
