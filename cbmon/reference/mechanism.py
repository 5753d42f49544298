"""Installing the reference callback mechanism (``sql/mechanism/``) into a schema.

The mechanism is the source article's design made to run: the orders tables and their audit
and NOTIFY triggers, the router that decides what is queued, the token bucket, the
least-privilege executor role and, where pgcrypto is available, signed callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cbmon.db import sqlfiles
from cbmon.db.connect import connect, first_line
from cbmon.errors import DatabaseError

DEFAULT_EXECUTOR = "callback_executor"

# Applied in this order after schema.sql; each is plain SQL run with the schema on search_path.
PLAIN_FILES = ("mechanism/orders.sql", "mechanism/router.sql", "mechanism/limits.sql")


@dataclass(frozen=True)
class Installed:
    """What ``apply`` put in place."""

    schema: str
    executor_role: str
    signatures: bool  # False when pgcrypto is not available on the server
    crypto_schema: str | None  # where pgcrypto's functions live, when installed


def _crypto_schema(conn: psycopg.Connection[Any], schema: str) -> str | None:
    """The schema holding pgcrypto, installing it into ``schema`` if it is available but absent.

    An extension exists once per database, so an existing installation is used where it is.
    """
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pgcrypto'"
    ).fetchone()
    if row is not None:
        return str(row[0])
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto'"
    ).fetchone()
    if available is None:
        return None
    conn.execute(
        sql.SQL("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA {}").format(
            sql.Identifier(schema)
        )
    )
    return schema


def apply(
    dsn: str,
    *,
    schema: str = "public",
    executor_role: str = DEFAULT_EXECUTOR,
    signatures: bool = True,
) -> Installed:
    """Create the base tables and the mechanism in ``schema``, in one transaction.

    Applying twice is harmless: tables are kept, functions and triggers replaced, router rows
    the user changed left alone. ``signatures=False`` skips pgcrypto and signed callbacks.
    """
    conn = connect(dsn, autocommit=False, statement_timeout=60, read_only=False)
    try:
        with conn:
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            # Functions capture this path (SET search_path FROM CURRENT): pg_temp last, so a
            # session's temporary objects can never shadow the mechanism's.
            conn.execute(sql.SQL("SET LOCAL search_path = {}, pg_temp").format(ident))
            conn.execute(sqlfiles.template("schema.sql"))
            for name in PLAIN_FILES:
                conn.execute(sqlfiles.template(name))
            role = {
                "schema": ident,
                "executor": sql.Identifier(executor_role),
                "executor_literal": sql.Literal(executor_role),
            }
            conn.execute(sqlfiles.template("mechanism/executor.sql").format(**role))
            crypto = _crypto_schema(conn, schema) if signatures else None
            if crypto is not None:
                conn.execute(
                    sqlfiles.template("mechanism/signatures.sql").format(
                        crypto=sql.Identifier(crypto), **role
                    )
                )
    except psycopg.Error as exc:
        raise DatabaseError(f"mechanism apply failed: {first_line(exc)}") from None
    finally:
        conn.close()
    return Installed(
        schema=schema,
        executor_role=executor_role,
        signatures=crypto is not None,
        crypto_schema=crypto,
    )
