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

# Numbers at or above this do not fit a float8, and non-zero ones below its inverse are
# refused by the cast too (an underflow is an error, not a zero): both are checked first.
_FLOAT8_SAFE = sql.SQL("1e300")
_FLOAT8_TINY = sql.SQL("1e-300")
# Types whose every value casts to float8 without an error (NaN and infinities are invalid
# durations, which the range check of each aggregate already rejects).
_FLOAT_TYPES = ("double precision", "real", "bigint", "integer", "smallint")
# Text that reads as a plain decimal number: digits, one point, an exponent of three digits
# at most. Anything else (``n/a``, ``NaN``, ``Infinity``, ``1e99999``) is not a duration; the
# length bound keeps the cast to numeric within its range. POSIX classes only: openGauss and
# PostgreSQL read this pattern the same way.
_NUMBER = sql.Literal("^ *[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})? *$")
_NUMBER_LENGTH = 64


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


def readable_sequence(cur: psycopg.Cursor[Any], table: str, column: str) -> sql.Identifier | None:
    """The one sequence ``table.column`` takes its ids from, when this role may read it (how
    far it has handed ids out); None otherwise."""
    params = {"table": table, "column": column}
    found = cur.execute(sqlfiles.template("queries/id_sequence.sql"), params).fetchall()
    if len(found) != 1 or not found[0][3]:
        return None
    return sql.Identifier(str(found[0][1]), str(found[0][2]))


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
    """``column`` as a float8 that never fails to cast, whatever the column holds: a value that
    is not a number float8 can hold (``1e400`` in a numeric, ``'n/a'`` in a text column)
    becomes NaN, which every rule already treats as an invalid duration; NULL stays NULL."""
    if type_name in _FLOAT_TYPES:
        return sql.SQL("{}::float8").format(column)
    if type_name == "numeric":
        return _numeric_as_float8(column)
    # Any other type (text, varchar, json, ...) is read through its text, guarded.
    text = sql.SQL("{}::text").format(column)
    return sql.SQL(
        "(CASE WHEN length({t}) <= {length} AND {t} ~ {number} THEN {value} "
        "WHEN {c} IS NOT NULL THEN 'NaN'::float8 END)"
    ).format(
        t=text,
        c=column,
        length=sql.Literal(_NUMBER_LENGTH),
        number=_NUMBER,
        value=_numeric_as_float8(sql.SQL("{}::numeric").format(text)),
    )


def _numeric_as_float8(value: sql.Composable) -> sql.Composable:
    # NaN and the infinities compare above every number, so they fail the first test.
    return sql.SQL(
        "(CASE WHEN abs({v}) < {tiny} THEN 0::float8 WHEN abs({v}) < {safe} THEN {v}::float8 "
        "WHEN {v} IS NOT NULL THEN 'NaN'::float8 END)"
    ).format(v=value, safe=_FLOAT8_SAFE, tiny=_FLOAT8_TINY)


def short_text(column: sql.Composable) -> sql.Composable:
    """A value's text as ``length:first characters``, for a log line that shows what a bad
    value looks like without carrying a 400-digit number (see :func:`shortened`)."""
    text = sql.SQL("{}::text").format(column)
    return sql.SQL("length({t})::text || ':' || left({t}, {keep})").format(
        t=text, keep=sql.Literal(SHORT_VALUE)
    )


SHORT_VALUE = 24


def shortened(sample: str) -> str:
    """:func:`short_text`'s ``length:characters`` as the value a log line shows: the value
    itself when short, else its beginning and its length."""
    length, _, start = sample.partition(":")
    if not length.isdigit() or int(length) <= SHORT_VALUE:
        return repr(start if length.isdigit() else sample)
    return f"{start!r}... ({int(length)} characters)"


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
