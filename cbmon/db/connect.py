"""Connections to the monitored database: timeouts on everything, passwords kept out of messages."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import conninfo, sql

from cbmon.errors import DatabaseError

_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide any password a DSN or an error message built from one may hold."""
    text = _URI_PASSWORD.sub(r"\1***@", text)
    return _KV_PASSWORD.sub(r"\1***", text)


def describe(dsn: str) -> str:
    """A DSN as it may be logged: ``user@host:port/dbname``, never the password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable DSN)"
    host = str(params.get("host") or "local socket")
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{host}{port}/{params.get('dbname', '')}"


def connect(
    dsn: str,
    *,
    statement_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    autocommit: bool = True,
    application_name: str = "cbmon",
) -> psycopg.Connection[Any]:
    """Open a connection whose every statement is bounded by ``statement_timeout`` seconds.

    The timeout is set on the server, so a query the client gave up on does not run on.
    """
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=autocommit,
            connect_timeout=max(1, round(connect_timeout)),
            application_name=application_name,
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to {describe(dsn)}: {first_line(exc)}") from None
    try:
        timeout_ms = max(1, round(statement_timeout * 1000))
        # SET takes no bound parameters; the value is an integer we formatted ourselves.
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout_ms)))
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseError(f"{describe(dsn)}: {first_line(exc)}") from None
    return conn


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, with any password removed."""
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__
