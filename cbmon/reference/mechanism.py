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

from cbmon.db import roles, sqlfiles
from cbmon.db.connect import connect, first_line, server_of
from cbmon.db.dialect import Server
from cbmon.db.driver import Driver
from cbmon.errors import DatabaseError

DEFAULT_EXECUTOR = "callback_executor"

# Applied in this order after schema.sql; each names its objects with {schema}.
PLAIN_FILES = (
    "mechanism/orders.sql",
    "mechanism/router.sql",
    "mechanism/limits.sql",
    "mechanism/scheduler.sql",
)


@dataclass(frozen=True)
class Installed:
    """What ``apply`` put in place."""

    schema: str
    executor_role: str
    signatures: bool  # False when pgcrypto is not available on the server
    crypto_schema: str | None  # where pgcrypto's functions live, when installed
    scheduler_job: str | None = None  # the pg_cron job's name, where pg_cron runs here


def job_name(schema: str) -> str:
    return f"{schema}.expire_callback_leases"


def _schedule(conn: psycopg.Connection[Any], schema: str, server: Server) -> str | None:
    """Schedule the lease expiry every minute with pg_cron where it is installed in this
    database, or can be (preloaded, with this database as cron.database_name); None elsewhere.
    cron.schedule replaces a job of the same name, so applying again keeps one job."""
    if server.scheduler != "cron":
        return None  # PG_JOB jobs are left to the operator (docs/mechanism.md)
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    if installed is None:
        home = conn.execute(
            "SELECT current_setting('cron.database_name', true) = current_database()"
            " AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')"
        ).fetchone()
        if home is None or not home[0]:
            return None
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    name = job_name(schema)
    command = sql.SQL("SELECT {}.expire_callback_leases()").format(sql.Identifier(schema))
    conn.execute("SELECT cron.schedule(%s, '* * * * *', %s)", (name, command.as_string(conn)))
    return name


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


def statements(
    schema: str, executor_role: str, server: Server, crypto: str | None
) -> list[sql.Composed]:
    """The mechanism's files, after schema.sql, as run on ``server``: signed callbacks only
    where pgcrypto lives (in schema ``crypto``)."""
    names = {
        "schema": sql.Identifier(schema),
        "schema_literal": sql.Literal(schema),
        "executor": sql.Identifier(executor_role),
        "executor_literal": sql.Literal(executor_role),
        "attributes": sql.Literal(roles.role_attributes(server, login=False)),
    }
    files = [*PLAIN_FILES, "mechanism/executor.sql"]
    found = [sqlfiles.template(name).format(**names) for name in files]
    if crypto is not None:
        signed = sqlfiles.template("mechanism/signatures.sql")
        found.append(signed.format(crypto=sql.Identifier(crypto), **names))
    return found


def apply(
    dsn: str,
    *,
    schema: str = "public",
    executor_role: str = DEFAULT_EXECUTOR,
    signatures: bool = True,
    using: Driver = "psycopg",
    wake: bool = False,
    reader: str | None = None,
) -> Installed:
    """Create the base tables and the mechanism in ``schema``, in one transaction.

    Applying twice is harmless: tables are kept, functions and triggers replaced, router rows
    the user changed left alone. ``signatures=False`` skips pgcrypto and signed callbacks;
    ``wake`` adds the triggers that wake ``cbmon serve`` (see ``cbmon schema apply --wake``);
    ``reader`` (cbmon's role, made by ``schema apply``) is granted reading what its mechanism
    probes read.
    The same files serve PostgreSQL and openGauss; only the executor role's attributes and the
    search_path the functions capture differ (:mod:`cbmon.db.dialect`).
    """
    conn = connect(dsn, autocommit=False, statement_timeout=60, read_only=False, using=using)
    try:
        with conn:
            server = server_of(conn)
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            # Functions capture this path on PostgreSQL (SET search_path FROM CURRENT): pg_temp
            # last, so a session's temporary objects can never shadow the mechanism's. openGauss
            # ignores a function's search_path and refuses pg_temp placed last; there the
            # functions' schema-qualified names are what protects them.
            path = "SET LOCAL search_path = {}, pg_temp"
            if not server.honours_function_search_path:
                path = "SET LOCAL search_path = {}"
            conn.execute(sql.SQL(path).format(ident))
            conn.execute(sqlfiles.template("schema.sql"))
            if wake:
                conn.execute(sqlfiles.template("wake.sql"))
            crypto = _crypto_schema(conn, schema) if signatures else None
            for statement in statements(schema, executor_role, server, crypto):
                conn.execute(statement)
            job = _schedule(conn, schema, server)
            if reader is not None:
                for grant in roles.mechanism_grants(conn, reader, server, schema):
                    conn.execute(grant)
    except psycopg.Error as exc:
        raise DatabaseError(f"mechanism apply failed: {first_line(exc)}") from None
    finally:
        conn.close()
    return Installed(
        schema=schema,
        executor_role=executor_role,
        signatures=crypto is not None,
        crypto_schema=crypto,
        scheduler_job=job,
    )
