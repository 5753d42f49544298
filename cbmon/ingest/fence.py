"""Before a poll with gaps open: what is known of the transactions that could still fill them.

On a primary, the poll's own connection lists the running transactions just before the poll's
snapshot (:func:`cbmon.ingest.reader.running_transactions`), and that listing settles gaps at
once. On a hot standby the standby's ``pg_locks`` holds none of the primary's transactions, so:

* the listing is taken on the primary (``database.primary_dsn``), and followed there by the
  primary's WAL insert position;
* the standby's replay position is read next, still before the poll's snapshot;
* a listing settles gaps only in a poll where the standby had replayed past the position read
  after it. A transaction missing from that listing had ended before it was taken: its commit,
  if it committed, was written to the WAL below that position, replayed, and so visible to the
  poll's snapshot. An id that snapshot still cannot see was rolled back.

Without a primary to ask, nothing tells when a transaction on the primary has ended: gaps are
then held for ``reader.standby_gap_hold`` and given up after that, counted as expired, and
cbmon says so (``cbmon_reader_assumption_ok{check="standby_fence"} 0``). docs/design.md has
the argument in full.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import psycopg

from cbmon.db import topology
from cbmon.db.connect import Deadline, connect, describe, first_line, server_of, sever
from cbmon.db.driver import Driver
from cbmon.durations import format_duration
from cbmon.errors import DatabaseError
from cbmon.ingest.reader import Fence, Listing, running_transactions

log = logging.getLogger(__name__)

# primary: the poll's server is the primary; primary_dsn: a standby, fenced from the primary;
# unreachable: a standby whose primary cannot be asked now (gaps are held); none: a standby and
# no primary DSN (gaps are held for reader.standby_gap_hold).
Mode = Literal["primary", "primary_dsn", "unreachable", "none"]
MODES: tuple[Mode, ...] = ("primary", "primary_dsn", "unreachable", "none")
GRACE = 2.0  # on our side, beyond the statement timeout
KEPT_LISTINGS = 64  # listings waiting for the standby to replay past them
CATCH_UP = 1.0  # seconds a woken poll on a standby waits for the commit that woke it
CATCH_UP_STEP = 0.01


@dataclasses.dataclass(frozen=True)
class _Taken:
    listing: Listing
    lsn: int  # the primary's WAL insert position, read after the listing


class FenceKeeper:
    """Learns the fence for each poll of one reader's connection; one poll thread calls it."""

    def __init__(
        self,
        primary_dsn: str | None,
        *,
        statement_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        using: Driver = "psycopg",
        hold: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary_dsn = primary_dsn
        self.statement_timeout = statement_timeout
        self.connect_timeout = connect_timeout
        self.using = using
        self.hold = hold
        self._clock = clock
        self.mode: Mode | None = None  # None until the poll's server has been seen
        self._in_recovery: bool | None = None
        self._history: topology.History | None = None  # the poll's server's
        self._number = 0
        self._taken: collections.deque[_Taken] = collections.deque(maxlen=KEPT_LISTINGS)
        self._conn: psycopg.Connection[Any] | None = None
        self._trouble: str | None = None  # why the primary cannot be asked, as last said

    # -- what the poll's server is ---------------------------------------------------------
    def connected(self, history: topology.History) -> None:
        """The poll's connection is new (or its server changed): nothing known holds."""
        self._history = history
        self.observe(history.in_recovery)

    def observe(self, in_recovery: bool) -> None:
        """What each poll saw of its server; says once what changes."""
        self._in_recovery = in_recovery
        mode: Mode
        if not in_recovery:
            mode = "primary"
        elif self.primary_dsn is None:
            mode = "none"
        else:
            mode = "unreachable" if self._trouble else "primary_dsn"
        self._set_mode(mode)

    def _set_mode(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        previous, self.mode = self.mode, mode
        if mode == "none":
            log.warning(
                "reading a hot standby without database.primary_dsn: the transactions that "
                "could still write run on the primary, which cbmon cannot ask, so rows "
                "committed more than reader.standby_gap_hold (%s) after their id was taken "
                "are not counted; set database.primary_dsn or CBMON_PRIMARY_DSN to a "
                "connection to the primary to stay exact",
                format_duration(self.hold),
            )
        elif mode == "primary_dsn":
            log.info("reading a hot standby; fenced from the primary (database.primary_dsn)")
        elif mode == "primary" and previous in ("primary_dsn", "unreachable", "none"):
            log.info("the server cbmon reads is a primary now (promoted)")

    # -- the fence -------------------------------------------------------------------------
    def fence(self, conn: psycopg.Connection[Any]) -> Fence:
        """The fence for the poll about to begin on ``conn`` (autocommit, outside the poll's
        transaction, which must begin after this returns)."""
        if self._in_recovery is None:
            self.observe(self._recovery(conn)[0])
        if not self._in_recovery:
            # A primary stays one for the connection's life (a standby only becomes one).
            return Fence.on_primary(self._list(conn))
        if self.primary_dsn is None:
            return Fence(expire_before=self._clock() - self.hold)
        taken = self._take_on_primary()
        in_recovery, replayed = self._recovery(conn)  # after the primary's position was read
        if not in_recovery:
            self.observe(False)
            return Fence.on_primary(self._list(conn))
        self.observe(True)
        settled = self._settled(replayed)
        return Fence(
            current=None if taken is None else taken.listing,
            settled=None if settled is None else settled.listing,
        )

    def catch_up(self, conn: psycopg.Connection[Any]) -> None:
        """On a standby fenced from its primary: wait, up to ``CATCH_UP``, until the standby
        has replayed what the primary has written now. A poll woken by a notification sent
        on the primary then reads the commit that sent it, not the interval after."""
        if not self._in_recovery or self.primary_dsn is None or self._trouble is not None:
            return
        try:
            conn_primary = self._primary()
            with Deadline(conn_primary, self.statement_timeout + GRACE):
                row = conn_primary.execute(server_of(conn_primary).insert_lsn).fetchone()
        except (psycopg.Error, DatabaseError) as exc:
            self._unreachable(first_line(exc) if isinstance(exc, psycopg.Error) else str(exc))
            return
        assert row is not None
        target = topology.parse_lsn(str(row[0]))
        deadline = time.monotonic() + CATCH_UP  # a wait on the network: real time
        while True:
            in_recovery, replayed = self._recovery(conn)
            if not in_recovery or replayed is None or replayed >= target:
                return
            if time.monotonic() >= deadline:
                log.debug("the standby is still replaying after %ss; polling anyway", CATCH_UP)
                return
            time.sleep(CATCH_UP_STEP)

    def _settled(self, replayed: int | None) -> _Taken | None:
        """The newest listing the standby has replayed past; older ones are forgotten."""
        if replayed is None:
            return None
        usable = [taken for taken in self._taken if taken.lsn <= replayed]
        if not usable:
            return None
        newest = usable[-1]
        while self._taken and self._taken[0] is not newest:
            self._taken.popleft()
        return newest

    def _list(self, conn: psycopg.Connection[Any]) -> Listing:
        with conn.cursor() as cur:
            running = running_transactions(cur)
        self._number += 1
        return Listing(self._number, running)

    @staticmethod
    def _recovery(conn: psycopg.Connection[Any]) -> tuple[bool, int | None]:
        row = conn.execute(server_of(conn).recovery_state).fetchone()
        assert row is not None
        in_recovery, replayed = bool(row[0]), row[1]
        return in_recovery, None if replayed is None else topology.parse_lsn(str(replayed))

    def _take_on_primary(self) -> _Taken | None:
        """A listing on the primary and its WAL position after it; None when it cannot be
        asked (gaps are then held, never dropped)."""
        assert self.primary_dsn is not None
        try:
            conn = self._primary()
            with Deadline(conn, self.statement_timeout + GRACE), conn.cursor() as cur:
                running = running_transactions(cur)
                row = cur.execute(server_of(conn).insert_lsn).fetchone()
            assert row is not None
            lsn = topology.parse_lsn(str(row[0]))
        except (psycopg.Error, DatabaseError) as exc:
            self._unreachable(first_line(exc) if isinstance(exc, psycopg.Error) else str(exc))
            return None
        if self._trouble is not None:
            log.info("the primary answers again (database.primary_dsn)")
            self._trouble = None
        self._number += 1
        taken = _Taken(Listing(self._number, running), lsn)
        self._taken.append(taken)
        return taken

    def _primary(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        assert self.primary_dsn is not None
        conn = connect(
            self.primary_dsn,
            statement_timeout=self.statement_timeout,
            connect_timeout=self.connect_timeout,
            application_name="cbmon fence",
            using=self.using,
        )
        try:
            with Deadline(conn, self.statement_timeout + GRACE), conn.cursor() as cur:
                found = topology.history(cur, server_of(conn))
        except BaseException:
            conn.close()
            raise
        problem = None
        if found.in_recovery:
            problem = f"database.primary_dsn ({describe(self.primary_dsn)}) reaches a standby"
        elif self._history is not None and found.database != self._history.database:
            problem = (
                f"database.primary_dsn ({describe(self.primary_dsn)}) names database "
                f"{found.database}, the standby is read in {self._history.database}"
            )
        elif self._history is not None and found.system_identifier is not None:
            theirs = self._history.system_identifier
            if theirs is not None and theirs != found.system_identifier:
                problem = (
                    f"database.primary_dsn ({describe(self.primary_dsn)}) reaches another "
                    f"cluster (system {found.system_identifier}) than the standby read "
                    f"(system {theirs})"
                )
        if problem is not None:
            conn.close()
            raise DatabaseError(problem)
        self._conn = conn
        return conn

    def _unreachable(self, why: str) -> None:
        self.close()
        if why != self._trouble:
            log.warning(
                "cannot list the primary's transactions (%s): gaps are held until it answers",
                why,
            )
        self._trouble = why
        self._set_mode("unreachable")

    def interrupt(self) -> None:
        if self._conn is not None:
            sever(self._conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                log.debug("closing the fence connection: %s", first_line(exc))
