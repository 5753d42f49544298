"""Which server cbmon talks to: PostgreSQL (and its version), openGauss or GaussDB.

Detected once per connection from ``version()`` (openGauss and GaussDB name themselves there,
and report a PostgreSQL 9.2 ``server_version`` otherwise indistinguishable). Where their SQL
must differ, code asks this one value, never the version string again; everywhere else cbmon
writes SQL that both accept (docs/gaussdb.md lists each feature and the form used).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal, LiteralString

import psycopg

from cbmon.domain import DatabaseInfo

Flavor = Literal["postgresql", "opengauss", "gaussdb"]

# Server-side settings are integers in openGauss' session_timeout range (seconds, 0 = never).
SESSION_TIMEOUT_MAX = 86400


@dataclasses.dataclass(frozen=True)
class Server:
    flavor: Flavor
    version: str  # "15.3", "5.0.2", ...
    number: int  # server_version_num as the server reports it (90204 on openGauss)

    @property
    def postgresql(self) -> bool:
        return self.flavor == "postgresql"

    @property
    def has_idle_session_timeout(self) -> bool:
        return self.postgresql and self.number >= 140000

    @property
    def has_jit(self) -> bool:
        """PostgreSQL 11 added JIT compilation (on by default from 12); openGauss has none."""
        return self.postgresql and self.number >= 110000

    @property
    def has_pg_sequence(self) -> bool:
        """PostgreSQL 10 moved sequence parameters into the ``pg_sequence`` catalog; openGauss
        (forked from 9.2) keeps them in the sequence relation itself (``cache_value``)."""
        return self.postgresql and self.number >= 100000

    @property
    def tells_ids_handed_out(self) -> bool:
        """Whether reading a sequence on a primary shows the last id its ``nextval`` handed
        out, which bounds what an idle poll looks at (:mod:`cbmon.ingest.reader`). Known of
        PostgreSQL; on openGauss and GaussDB the newest id is found as before, from the rows."""
        return self.postgresql

    @property
    def honours_function_search_path(self) -> bool:
        """openGauss accepts ``SET search_path`` on a function but ignores it (its CREATE
        FUNCTION reference says so), and refuses ``pg_temp`` placed last in a search_path."""
        return self.postgresql

    @property
    def insert_lsn(self) -> LiteralString:
        """The WAL position a primary has inserted up to, as text (``0/16B3748``)."""
        if self.postgresql:
            return "SELECT pg_current_wal_insert_lsn()::text"
        return "SELECT pg_current_xlog_insert_location()::text"

    @property
    def recovery_state(self) -> LiteralString:
        """Whether the server is a standby in recovery, and the WAL position it has replayed
        up to (NULL on a primary), as text."""
        if self.postgresql:
            return (
                "SELECT pg_is_in_recovery(), "
                "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END"
            )
        return (
            "SELECT pg_is_in_recovery(), "
            "CASE WHEN pg_is_in_recovery() THEN pg_last_xlog_replay_location()::text END"
        )

    @property
    def has_control_functions(self) -> bool:
        """``pg_control_system()`` and ``pg_control_checkpoint()`` (PostgreSQL 9.6): the
        cluster's system identifier and timeline."""
        return self.postgresql and self.number >= 90600

    @property
    def scheduler(self) -> str:
        """Where scheduled jobs are listed: pg_cron's ``cron`` schema on PostgreSQL, the
        ``pg_job`` catalog on openGauss and GaussDB."""
        return "cron" if self.postgresql else "pg_job"

    @property
    def label(self) -> str:
        names = {"postgresql": "PostgreSQL", "opengauss": "openGauss", "gaussdb": "GaussDB"}
        return f"{names[self.flavor]} {self.version}"

    @property
    def info(self) -> DatabaseInfo:
        return DatabaseInfo(self.flavor, self.version)


POSTGRESQL_15 = Server("postgresql", "15", 150000)

_NAMED = re.compile(r"\((openGauss|GaussDB)[^\d]*([\d.]+)", re.IGNORECASE)


def classify(version_text: str, number: int) -> Server:
    """``version()``'s text and ``server_version_num`` as a :class:`Server`."""
    named = _NAMED.search(version_text)
    if named:
        flavor: Flavor = "gaussdb" if named.group(1).lower() == "gaussdb" else "opengauss"
        return Server(flavor, named.group(2), number)
    plain = re.search(r"PostgreSQL ([\d.]+)", version_text)
    return Server("postgresql", plain.group(1) if plain else str(number), number)


def detect(conn: psycopg.Connection[Any]) -> Server:
    return detect_with_pid(conn)[0]


def detect_with_pid(conn: psycopg.Connection[Any]) -> tuple[Server, int]:
    """The server, and the pid of the backend that answered (which a pooler in between does
    not report as the connection's own: see :mod:`cbmon.db.topology`)."""
    # Both from SQL: the gaussdb driver's ``info.server_version`` is a word cut from
    # version(), not the number.
    row = conn.execute(
        "SELECT version(), current_setting('server_version_num'), pg_backend_pid()"
    ).fetchone()
    if row is None:
        return classify("", 0), 0
    number = str(row[1] or "0")
    server = classify(str(row[0] or ""), int(number) if number.isdigit() else 0)
    return server, int(row[2] or 0)
