"""The database connection of a PostgreSQL index: connecting, and running its statements.

Every failure becomes one line naming the fix, with any password in the address redacted: an
unparsable or unreachable address is a ConnectionError, and so is a server that goes away
during a search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from honed.index.postgres.redact import driver_text, redact
from honed.index.postgres.tables import first_line, psycopg_module

__all__ = ["CONNECT_TIMEOUT_S", "connect", "run_each"]

CONNECT_TIMEOUT_S = 10  # libpq waits forever on an unreachable host without it


def connect(dsn: str) -> Any:
    """An autocommit connection to ``dsn``; ConnectionError naming the fix when it fails."""
    psycopg = psycopg_module()
    from psycopg.conninfo import conninfo_to_dict

    where = redact(dsn)
    try:
        options = conninfo_to_dict(dsn)
    except psycopg.Error as err:  # the driver's text can echo the address: scrubbed too
        raise ConnectionError(
            f"could not parse the database address {where!r} ({driver_text(err, dsn)}); "
            "fix: pass --store postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    extra = {} if "connect_timeout" in options else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return psycopg.connect(dsn, autocommit=True, **extra)
    except psycopg.Error as err:
        raise ConnectionError(
            f"could not connect to {where}: {driver_text(err, dsn)}; fix: start the "
            "PostgreSQL server or check --store (host, port, database, user, password)"
        ) from None


def run_each(
    conn: Any,
    where: tuple[str, str],
    statement: Any,
    rows: Sequence[Mapping[str, Any]],
    settings: Sequence[tuple[str, str]],
) -> list[list[tuple[Any, ...]]]:
    """Execute ``statement`` once per parameter row, in one transaction with local ``settings``.

    Args:
        conn: an open connection.
        where: ``(dsn, table)`` of the index, for the error messages.
        statement: the SQL (a :func:`~honed.index.postgres.tables.sql_text` template).
        rows: one parameter mapping per execution.
        settings: ``(name, value)`` run-time settings for this transaction only.

    Raises:
        ConnectionError: the server went away.
        FileNotFoundError: the index's tables were dropped while it was open.
    """
    psycopg, (dsn, table) = psycopg_module(), where
    results = []
    try:
        with conn.transaction(), conn.cursor() as cur:
            for name, value in settings:
                cur.execute("SELECT set_config(%s, %s, true)", [name, value])
            for params in rows:
                # Never a server-side prepared statement: its cached plan would ignore the
                # settings above (a cached HNSW plan survives enable_indexscan=off).
                cur.execute(statement, params, prepare=False)
                results.append(cur.fetchall())
    except psycopg.OperationalError as err:
        raise ConnectionError(
            f"lost the connection to {redact(dsn)}: {first_line(err)}; fix: check "
            "that the server is running, then search again"
        ) from None
    except psycopg.errors.UndefinedTable:
        raise FileNotFoundError(
            f"{redact(dsn)}: the tables of {table} were dropped while open; fix: "
            "upload the index again with honed index ... --store DSN"
        ) from None
    return results
