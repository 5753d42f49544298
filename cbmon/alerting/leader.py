"""One sender among replicas: the replica holding a PostgreSQL advisory lock sends alerts.

Session-level advisory locks need no write privilege, so the read-only role can take them.
When the leader's process or connection dies, the server releases the lock and another
replica takes it at its next poll.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import psycopg

from cbmon.db.connect import connect, first_line
from cbmon.errors import DatabaseError

log = logging.getLogger(__name__)


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for what this deployment monitors."""
    digest = hashlib.sha256("\x00".join(("cbmon-leader", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    def __init__(self, dsn: str, key: int, *, connect_timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.key = key
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self.is_leader = False

    def check(self) -> bool:
        """Take or keep the lock; False if another replica holds it or the database is away."""
        try:
            if self._conn is None or self._conn.closed:
                self.is_leader = False
                self._conn = connect(
                    self.dsn,
                    statement_timeout=self.connect_timeout,
                    connect_timeout=self.connect_timeout,
                    application_name="cbmon leader",
                )
            if self.is_leader:
                self._conn.execute("SELECT 1")  # a dead session has lost the lock
            else:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
                self.is_leader = bool(row and row[0])
                if self.is_leader:
                    log.info("this replica now sends the notifications")
        except psycopg.Error as exc:
            log.info("leadership check failed: %s", first_line(exc))
            self.close()
        except DatabaseError as exc:
            log.info("leadership check failed: %s", exc)
            self.close()
        return self.is_leader

    def close(self) -> None:
        self.is_leader = False
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error as exc:
                log.debug("closing the leader connection: %s", first_line(exc))
            self._conn = None
