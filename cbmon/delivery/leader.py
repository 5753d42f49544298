"""One webhook sender among replicas: the replica holding a PostgreSQL advisory lock sends.

Session-level advisory locks need no write privilege, so the read-only role can take them.
The lock's key is an HMAC of the cluster's name and what it watches under the cluster secret:
a session that does not know the secret cannot compute it, so it cannot squat the lock and
silence every replica. A session that holds it anyway is named in a warning and a metric.

The lock lives on the primary: advisory locks are per server and not replicated, so a lock
taken on a standby excludes nobody. A replica whose lock DSN reaches a standby, or a pooler in
transaction mode (where consecutive transactions of one connection run on different backends,
and a session-level lock stays behind on whichever backend took it), refuses to lead and says
why once; ``database.primary_dsn`` gives it a connection to the primary that keeps its backend.

The leader proves it is alive at every poll (a statement on its lock session, which also
checks that the session still runs on the backend that took the lock), and tells the
server to end that session when it stops doing so (``idle_session_timeout`` on PostgreSQL 14
and later, ``session_timeout`` on openGauss; TCP keepalives and ``tcp_user_timeout`` for a
dead network everywhere). A frozen or cut-off leader therefore loses the lock within that
timeout, and another replica takes over at its next poll.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from cbmon.db import topology
from cbmon.db.connect import Deadline, connect, describe, first_line, link_of, server_of, sever
from cbmon.db.driver import Driver
from cbmon.errors import DatabaseError

log = logging.getLogger(__name__)

APPLICATION = "cbmon leader"
NAME_BYTES = 63  # PostgreSQL keeps that much of an application_name, and cuts the rest
RECHECK_REFUSAL = 60.0  # seconds before a replica that refused to lead looks again


def application_name(cluster: str, replica: str = "") -> str:
    """``cbmon leader <cluster> <replica>``, as much of it as PostgreSQL keeps: the lock
    holder's session names the replica that sends, so the others can say who does."""
    printable = "".join(c for c in replica if " " < c < "\x7f")  # the server shows ASCII only
    text = f"{APPLICATION} {cluster} {printable}".rstrip()
    return text.encode("ascii", "replace")[:NAME_BYTES].decode("ascii")


def lock_key(secret: str | None, cluster: str, *watched: str) -> int:
    """A signed 64-bit advisory lock key for one cluster of replicas and what it watches."""
    message = "\x00".join(("cbmon-leader", cluster, *watched)).encode()
    digest = hmac.new((secret or "").encode(), message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def split_key(key: int) -> tuple[int, int]:
    """The (classid, objid) pair pg_locks shows for a bigint advisory lock key."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


_HOLDER = """
SELECT a.pid, coalesce(a.application_name, '')
FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::text::bigint = %s AND l.objid::text::bigint = %s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class Leadership:
    def __init__(
        self,
        dsn: str,
        key: int | None = None,
        *,
        cluster: str,
        secret: str | None = None,
        watched: tuple[str, ...] = (),
        alive_timeout: float,
        connect_timeout: float = 5.0,
        using: Driver = "psycopg",
        replica: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``key``: the lock's key; without one it is derived, once connected, from ``secret``,
        the cluster, the database as the server names it and ``watched`` (schema, table), so
        replicas reaching one database by different addresses (a proxy, an alias) share it.
        ``alive_timeout``: how long the server keeps the lock of a leader that went silent;
        ``replica``: how this replica is named to the others (its host:port)."""
        self.dsn = dsn
        self.key = key
        self._secret = secret
        self._watched = watched
        self.cluster = cluster
        self.alive_timeout = alive_timeout
        self.connect_timeout = connect_timeout
        self.using = using
        self.application_name = application_name(cluster, replica)
        # What the holder of a replica of this cluster starts with, as the server keeps it.
        self._ours = application_name(cluster)
        self._conn: psycopg.Connection[Any] | None = None
        self.is_leader = False
        self.foreign_holder: str | None = None  # "pid 123 (psql)" of a non-cbmon holder
        # Who sends when this replica does not: "cbmon-2:9863 (pid 123)", or None when
        # unknown (the lock is free, the database away) or when the holder is foreign.
        self.holder: str | None = None
        # Why this replica cannot lead from where its lock DSN reaches (a standby, a pooler
        # in transaction mode), or None.
        self.refusal: str | None = None
        self._clock = clock
        self._refused_at = 0.0
        self._pid: int | None = None  # the backend that holds the lock for us

    def check(self) -> bool:
        """Take or keep the lock; False if another session holds it, the database is away, or
        the lock DSN reaches no place where a lock means one sender."""
        if self.refusal is not None and self._clock() - self._refused_at < RECHECK_REFUSAL:
            return False
        try:
            if self._conn is None or self._conn.closed:
                self.is_leader = False
                self._conn = connect(
                    self.dsn,
                    statement_timeout=self.connect_timeout,
                    connect_timeout=self.connect_timeout,
                    application_name=self.application_name,
                    idle_timeout=self.alive_timeout,
                    using=self.using,
                )
                if not self._may_lead(self._conn):
                    self.close()
                    return False
            with Deadline(self._conn, self.connect_timeout):
                self._hold(self._conn)
        except psycopg.Error as exc:
            log.info("leadership check failed: %s", first_line(exc))
            self.close()
        except DatabaseError as exc:
            log.info("leadership check failed: %s", exc)
            self.close()
        return self.is_leader

    def _may_lead(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether a lock taken on ``conn`` excludes every other replica: it must reach the
        primary, on a session that keeps its backend."""
        where = describe(self.dsn)
        refusal = None
        if not link_of(conn).keeps_session:
            refusal = (
                f"the leader lock's connection ({where}) goes through a pooler in transaction "
                "mode, where a session-level lock does not hold"
            )
        else:
            with Deadline(conn, self.connect_timeout), conn.cursor() as cur:
                if topology.history(cur, server_of(conn)).in_recovery:
                    refusal = (
                        f"the leader lock's connection ({where}) reaches a hot standby, and "
                        "locks on a standby exclude nobody on the primary"
                    )
        self._refuse(refusal)
        return refusal is None

    def _refuse(self, refusal: str | None) -> None:
        if refusal is not None and refusal != self.refusal:
            log.warning(
                "this replica never sends webhooks from here: %s; set database.primary_dsn "
                "(or CBMON_PRIMARY_DSN) to a direct connection to the primary",
                refusal,
            )
        elif refusal is None and self.refusal is not None:
            log.info("the leader lock's connection reaches the primary now")
        self.refusal = refusal
        self._refused_at = self._clock()

    def _hold(self, conn: psycopg.Connection[Any]) -> None:
        if self.is_leader:
            # Alive (a dead session has lost the lock), and still on the backend holding it.
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            if row is not None and int(row[0]) != self._pid:
                self._refuse(
                    f"the leader lock's connection ({describe(self.dsn)}) moved to another "
                    f"backend (pid {self._pid} took the lock, pid {row[0]} answers now): a "
                    "pooler in transaction mode stands in between"
                )
                self.close()
            return
        if self.key is None:
            database = conn.execute("SELECT current_database()").fetchone()
            assert database is not None
            self.key = lock_key(self._secret, self.cluster, str(database[0]), *self._watched)
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s), pg_backend_pid()", [self.key]
        ).fetchone()
        self.is_leader = bool(row and row[0])
        self._pid = int(row[1]) if row else None
        if self.is_leader:
            self.foreign_holder = self.holder = None
        else:
            self._look_at_holder(conn)

    def _look_at_holder(self, conn: psycopg.Connection[Any]) -> None:
        """Name the replica that holds the lock; warn, once, of a holder that is not one."""
        assert self.key is not None
        row = conn.execute(sql.SQL(_HOLDER), split_key(self.key)).fetchone()
        self.holder = None
        name = "" if row is None else str(row[1])
        if row is None or name == self._ours or name.startswith(self._ours + " "):
            self.foreign_holder = None
            if row is not None:
                replica = name[len(self._ours) :].strip() or "a replica"
                self.holder = f"{replica} (pid {row[0]})"
            return
        holder = f"pid {row[0]} ({row[1] or 'no application_name'})"
        if holder != self.foreign_holder:
            log.warning(
                "the leader lock of cluster %s is held by %s, which is not a cbmon replica: "
                "no replica sends webhooks until it lets go",
                self.cluster,
                holder,
            )
        self.foreign_holder = holder

    def interrupt(self) -> None:
        """Unblock a check waiting on the network (from another thread)."""
        if self._conn is not None:
            sever(self._conn)

    def close(self) -> None:
        self.is_leader = False
        self.holder = None
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error as exc:
                log.debug("closing the leader connection: %s", first_line(exc))
            self._conn = None
