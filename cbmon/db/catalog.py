"""What the database's catalogs say about the monitored tables, read once at start.

The reader's exactness rests on two facts about each table's id column that cbmon cannot
enforce: the ids come from a sequence, and that sequence hands them out one at a time
(``CACHE 1``), so a row's id is taken in the order transactions ask for it. They are checked
here and reported, never assumed silently. Column types decide how a duration is read.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cbmon.db import sqlfiles
from cbmon.db.dialect import POSTGRESQL_15, Server
from cbmon.domain import Assumption

# Numbers at or above this do not fit a float8; numeric columns are checked before the cast.
_FLOAT8_SAFE = sql.SQL("1e300")


def regclass_text(table: sql.Composable, conn: psycopg.Connection[Any]) -> str:
    """A quoted table name as text, for a bound ``%s::regclass`` parameter."""
    return table.as_string(conn)


def id_assumptions(
    cur: psycopg.Cursor[Any], name: str, table: str, column: str, server: Server = POSTGRESQL_15
) -> list[Assumption]:
    """Whether ``table.column`` takes its ids from a sequence with ``CACHE 1``.

    The cache size is unknown (``ok`` None) where the server keeps it in the sequence itself
    (openGauss) and the role may not read it: a check that cannot be made is not a failure.
    """
    params = {"table": table, "column": column}
    found = cur.execute(sqlfiles.template("queries/id_sequence.sql"), params).fetchall()
    if not found:
        return [
            Assumption(
                name,
                "ids_from_sequence",
                False,
                f"{table}.{column} has no sequence, identity or serial default: cbmon counts "
                "exactly only ids handed out by a sequence inside the inserting transaction",
            )
        ]
    caches = {str(row[0]): _cache(cur, row, server) for row in found}
    sequences = ", ".join(
        f"{seq} (cache {'unknown' if cache is None else cache})" for seq, cache in caches.items()
    )
    cached = [f"{seq} has CACHE {cache}" for seq, cache in caches.items() if cache not in (1, None)]
    unread = [seq for seq, cache in caches.items() if cache is None]
    present = Assumption(name, "ids_from_sequence", True, sequences)
    if cached:
        return [
            present,
            Assumption(
                name,
                "sequence_cache_1",
                False,
                "; ".join(cached) + ": sessions take ids in blocks, so a lower id can commit "
                "long after a higher one; rows may be missed. Set it with ALTER SEQUENCE ... "
                "CACHE 1",
            ),
        ]
    if unread:
        return [
            present,
            Assumption(
                name,
                "sequence_cache_1",
                None,
                f"cannot read the cache size of {', '.join(unread)}: this server keeps it in "
                "the sequence itself, which needs GRANT SELECT ON SEQUENCE ... to this role",
            ),
        ]
    return [present, Assumption(name, "sequence_cache_1", True, sequences)]


def _cache(cur: psycopg.Cursor[Any], row: tuple[Any, ...], server: Server) -> int | None:
    """One sequence's cache size, or None when this role cannot read it."""
    sequence, schema_name, relname, readable = row
    if server.has_pg_sequence:
        found = cur.execute(
            sqlfiles.template("queries/sequence_cache.sql"), {"sequence": str(sequence)}
        ).fetchone()
        return None if found is None else int(found[0])
    if not readable:
        return None
    query = sql.SQL("SELECT cache_value FROM {}").format(sql.Identifier(schema_name, relname))
    try:
        # A savepoint: an unexpected sequence layout must not abort the poll's transaction.
        with cur.connection.transaction():
            found = cur.execute(query).fetchone()
    except (psycopg.errors.UndefinedColumn, psycopg.errors.InsufficientPrivilege):
        return None
    return None if found is None else int(found[0])


def column_type(cur: psycopg.Cursor[Any], table: str, column: str) -> str | None:
    row = cur.execute(
        sqlfiles.template("queries/column_type.sql"), {"table": table, "column": column}
    ).fetchone()
    return None if row is None else str(row[0])


def as_float8(column: sql.Composable, type_name: str | None) -> sql.Composable:
    """``column`` as a float8 that never fails to cast: a numeric too large for float8 (``1e400``)
    becomes NaN, which every rule already treats as an invalid duration."""
    if type_name != "numeric":
        return sql.SQL("{}::float8").format(column)
    return sql.SQL(
        "(CASE WHEN abs({c}) < {safe} THEN {c}::float8 WHEN {c} IS NOT NULL THEN 'NaN'::float8 END)"
    ).format(c=column, safe=_FLOAT8_SAFE)


_TIMES = ("timestamp without time zone", "timestamp with time zone", "date")


def fingerprint(column: sql.Composable, type_name: str | None) -> sql.Composable:
    """A 32-bit number telling one row from another row that took the same id: a hash of its
    creation time, read the same by every session (the epoch, not text that follows the
    session's TimeZone); 0 for a NULL time."""
    value = (
        sql.SQL("extract(epoch FROM {})::text").format(column)
        if type_name in _TIMES
        else sql.SQL("{}::text").format(column)
    )
    return sql.SQL("coalesce(hashtext({}), 0)").format(value)


def leads_an_index(cur: psycopg.Cursor[Any], table: str, column: str) -> bool:
    """Whether an index of ``table`` starts with ``column``: what finding a row by it needs."""
    found = cur.execute(
        sqlfiles.template("queries/leading_index.sql"), {"table": table, "column": column}
    ).fetchone()
    return found is not None
