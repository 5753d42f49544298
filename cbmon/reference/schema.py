"""Installing the reference schema and cbmon's read-only role (``cbmon schema``)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from cbmon.db import dialect, roles, sqlfiles
from cbmon.db.connect import connect, first_line, server_of
from cbmon.db.driver import Driver
from cbmon.errors import DatabaseError

DEFAULT_ROLE = "cbmon"


def roles_sql(role: str = DEFAULT_ROLE, schema: str = "public") -> sql.SQL:
    """The role part of :func:`render`, to run on a connection of its own."""
    return sql.SQL(roles.print_script(role, schema))


def render(role: str | None = DEFAULT_ROLE, schema: str = "public", wake: bool = False) -> str:
    """The SQL ``cbmon schema apply`` runs, for review or for ``psql -f -``: one transaction,
    so a failure leaves nothing half made, the schema created first."""
    name = sql.Identifier(schema).as_string(None)
    parts = [
        "BEGIN;",
        f"CREATE SCHEMA IF NOT EXISTS {name};",
        f"SET LOCAL search_path = {name};",
        sqlfiles.text("schema.sql"),
    ]
    if wake:
        parts.append(sqlfiles.text("wake.sql"))
    if role is not None:
        parts.append(roles.print_script(role, schema))
    parts.append("COMMIT;")
    return "\n".join(parts)


def apply(
    dsn: str,
    *,
    schema: str = "public",
    role: str | None = DEFAULT_ROLE,
    using: Driver = "psycopg",
    wake: bool = False,
) -> None:
    """Create the tables (in ``schema``), indexes and, unless ``role`` is None, the role;
    with ``wake``, the triggers that wake ``cbmon serve`` when rows are committed.

    Runs in one transaction, so a failure leaves nothing half-made; applying twice is harmless.
    The role is made in the server's own grammar (openGauss: ``PASSWORD DISABLE``, no
    ``NOSUPERUSER``).
    """
    conn = connect(dsn, autocommit=False, statement_timeout=60, read_only=False, using=using)
    try:
        with conn:
            server = server_of(conn)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)))
            conn.execute(sqlfiles.template("schema.sql"))
            if wake:
                conn.execute(sqlfiles.template("wake.sql"))
            if role is not None:
                _ensure_role(conn, role, schema, server)
    except psycopg.Error as exc:
        raise DatabaseError(f"schema apply failed: {first_line(exc)}") from None
    finally:
        conn.close()


def _ensure_role(
    conn: psycopg.Connection[Any], role: str, schema: str, server: dialect.Server
) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if exists is None:
        conn.execute(roles.create_role(role, server))
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    for statement in roles.reader_statements(role, schema, str(database[0])):
        conn.execute(statement)
    for statement in roles.mechanism_grants(conn, role, server, schema):
        conn.execute(statement)
