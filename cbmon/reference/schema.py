"""Installing the reference schema and cbmon's read-only role (``cbmon schema``)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from cbmon.db import sqlfiles
from cbmon.db.connect import connect, first_line
from cbmon.errors import DatabaseError

DEFAULT_ROLE = "cbmon"


def roles_sql(role: str = DEFAULT_ROLE, schema: str = "public") -> sql.Composed:
    return sqlfiles.template("roles.sql").format(
        role=sql.Identifier(role),
        role_literal=sql.Literal(role),
        schema=sql.Identifier(schema),
    )


def render(role: str | None = DEFAULT_ROLE, schema: str = "public") -> str:
    """The SQL ``cbmon schema apply`` runs, for review or for ``psql -f -``."""
    parts = [sqlfiles.text("schema.sql")]
    if role is not None:
        parts.append(roles_sql(role, schema).as_string(None))
    return "\n".join(parts)


def apply(dsn: str, *, schema: str = "public", role: str | None = DEFAULT_ROLE) -> None:
    """Create the tables (in ``schema``), indexes and, unless ``role`` is None, the role.

    Runs in one transaction, so a failure leaves nothing half-made; applying twice is harmless.
    """
    conn = connect(dsn, autocommit=False, statement_timeout=60)
    try:
        with conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)))
            conn.execute(sqlfiles.template("schema.sql"))
            if role is not None:
                conn.execute(roles_sql(role, schema))
    except psycopg.Error as exc:
        raise DatabaseError(f"schema apply failed: {first_line(exc)}") from None
    finally:
        conn.close()
