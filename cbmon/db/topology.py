"""What stands between cbmon and the primary: a pooler, a standby, a server with a new history.

Three questions decide whether cbmon's reading stays exact and whether one replica sends:

* **Is a pooler in between, and in which mode?** A connection's backend pid, as the server
  reports it at login, is the pid of the backend that answers when nothing stands in between;
  pgbouncer reports one of its own. Behind a pooler, a second connection tells the modes apart:
  in transaction mode, it is handed the backend the first connection just released (pgbouncer
  reuses the most recently released one), or the first connection is moved to another backend
  while the second holds one. In session mode neither can happen. In transaction mode session
  state does not hold: no session-level lock, LISTEN, SET or server-side prepared statement.
* **Is the server a hot standby?** Then the transactions that could still write live on the
  primary, not in the standby's ``pg_locks``, and the WAL position tells when the standby has
  replayed what the primary had written at a given moment.
* **Is it still the same history?** The cluster's system identifier and timeline change when
  another cluster answers or a standby was promoted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Literal

import psycopg

from cbmon.db import dialect
from cbmon.errors import DatabaseError

log = logging.getLogger(__name__)

Pooler = Literal["none", "session", "transaction", "statement"]
# How long the probe waits for a pooler to serve a second connection while the first holds a
# backend: a pool that cannot is a pool in transaction mode with one server connection.
PROBE_WAIT = 2.0
PROBE_ROUNDS = 3  # rounds of the pool-mode probe before it says "session"


def parse_lsn(text: str) -> int:
    """A WAL position written ``hi/lo`` in hexadecimal, as one number."""
    high, _, low = text.strip().partition("/")
    return (int(high, 16) << 32) | int(low or "0", 16)


def _pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(row[0]) if row else 0


def pooling(
    conn: psycopg.Connection[Any],
    open_other: Callable[[], psycopg.Connection[Any]],
    bound: Callable[[psycopg.Connection[Any], float], Any],
) -> Pooler:
    """The pool mode of the pooler ``conn`` goes through (call it only when one is in between:
    the pid the server reported at login is not the backend's). ``open_other`` opens a second
    connection like ``conn``; ``bound(conn, seconds)`` is a context bounding a wait on it, raising
    :class:`DatabaseError` when the time is up.

    In session mode ``conn``'s backend is its own: ``conn`` always finds it, and no other
    client ever does. In transaction mode it goes back to the pool after each statement, and
    either is seen soon: ``conn`` on another backend, or the other on ``conn``'s, though not
    at once when other clients share the pool (the backend may be theirs for a moment): a few
    rounds, and "session" only when none showed it."""
    first = _pid(conn)
    other = open_other()
    try:
        other.autocommit = False
        for _ in range(PROBE_ROUNDS):
            try:
                theirs = _pid(other)  # inside a transaction: it holds its backend from here on
            except psycopg.errors.FeatureNotSupported:
                return "statement"  # "transaction blocks not allowed in statement pooling mode"
            except psycopg.Error as exc:
                if "statement pooling" in str(exc):
                    return "statement"
                raise
            if theirs == first:
                return "transaction"
            try:
                with bound(conn, PROBE_WAIT):
                    if _pid(conn) != first:  # while the other holds a backend
                        return "transaction"
            except (psycopg.Error, DatabaseError) as exc:
                # No second backend within the wait: a pool of one, in transaction mode.
                log.debug("pooler probe: %s", exc)
                return "transaction"
            # The other's backend back to the pool, released last: a pool hands out the last
            # released first (pgbouncer does), so in transaction mode conn gets that one.
            other.rollback()
            with bound(conn, PROBE_WAIT):
                if _pid(conn) != first:
                    return "transaction"
        return "session"
    finally:
        try:
            other.close()
        except psycopg.Error as exc:
            log.debug("closing the pooler probe: %s", exc)


@dataclasses.dataclass(frozen=True)
class History:
    """Which server answers, by the history it carries."""

    in_recovery: bool
    database: str  # current_database()
    system_identifier: str | None  # None where the server does not say (openGauss) or hides it
    timeline: int | None

    def describe(self) -> str:
        parts = []
        if self.system_identifier is not None:
            parts.append(f"system {self.system_identifier}")
        if self.timeline is not None:
            parts.append(f"timeline {self.timeline}")
        return ", ".join(parts) or "unknown history"

    def differs(self, other: History) -> bool:
        """True only when both say who they are and say something different."""
        pairs = (
            (self.system_identifier, other.system_identifier),
            (self.timeline, other.timeline),
        )
        return any(a is not None and b is not None and a != b for a, b in pairs)


# The primary's timeline from its current WAL file name (immediate after a promotion, where
# the control file's checkpoint keeps the old one until the next checkpoint); a standby's
# from the last restart point.
_HISTORY = (
    "SELECT pg_is_in_recovery(), current_database(), "
    "(SELECT system_identifier::text FROM pg_control_system()), "
    "CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint()) "
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END"
)


def history(cur: psycopg.Cursor[Any], server: dialect.Server) -> History:
    """The answering server's recovery state, system identifier and timeline. Run it in a
    transaction of its own or under a savepoint: a role denied the control functions gets
    the recovery state alone."""
    if server.has_control_functions:
        try:
            with cur.connection.transaction():
                row = cur.execute(_HISTORY).fetchone()
            assert row is not None
            timeline = None if row[3] is None else int(row[3])
            return History(bool(row[0]), str(row[1]), row[2], timeline)
        except psycopg.errors.InsufficientPrivilege:
            log.debug("the role may not read the control functions: history unknown")
    row = cur.execute("SELECT pg_is_in_recovery(), current_database()").fetchone()
    assert row is not None
    return History(bool(row[0]), str(row[1]), None, None)
