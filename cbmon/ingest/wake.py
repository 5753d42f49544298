"""Polling at once when rows are committed, instead of waiting out the poll interval.

``cbmon schema apply --wake`` installs a statement-level trigger on the log and error tables
that calls ``pg_notify('cbmon_wake', 'schema.table')`` once per statement; PostgreSQL delivers
it when the transaction commits, and folds identical ones of a transaction into one.
:class:`Listener` LISTENs on a connection of its own and wakes the :class:`Pacer`, which lets
the poll loop go at once, but never sooner than ``min_interval`` after the previous poll: a
burst of notifications costs one poll per ``min_interval``, however many arrive. The poll
interval stays the fallback, so a lost notification, a server without LISTEN (openGauss,
distributed GaussDB) or a table without the trigger only means waiting as before.

Once notified, the listener knows a poll is due that reads everything committed before it
starts, so it UNLISTENs until the poll loop is about to start it (:meth:`Listener.before_poll`)
and LISTENs again before the poll's snapshot: a busy log's notifications are then delivered to
nobody, instead of to a session with nothing to do with them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, LiteralString, Protocol

import psycopg

from cbmon.db import topology
from cbmon.db.connect import Deadline, connect, describe, first_line, link_of, server_of, sever
from cbmon.delivery.retry import RECONNECT
from cbmon.errors import DatabaseError

log = logging.getLogger(__name__)

CHANNEL = "cbmon_wake"
TRIGGER = "cbmon_wake"
_LISTEN: LiteralString = "LISTEN cbmon_wake"
_UNLISTEN: LiteralString = "UNLISTEN cbmon_wake"
HEARTBEAT = 30.0  # seconds between proofs that the listening session is alive
PAUSE_CHECK = 0.05  # seconds between looks at the poll loop while paused
GRACE = 2.0  # on our side, beyond the statement timeout, as for polls
# How polls are started, as the status page and the API say it: woken by notifications;
# listening, but a watched table has no trigger; (re)connecting; no LISTEN on this server;
# notifications cannot arrive where the listener connects (a hot standby, a pooler in
# transaction mode), so polls keep the interval; switched off (wake.listen: false).
MODES = ("notify", "no_trigger", "connecting", "unsupported", "poll", "off")
RECHECK = 60.0  # seconds before looking again where notifications could not arrive
_TRIGGERED = """
SELECT n.nspname || '.' || c.relname
FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE t.tgname = %s
"""


class Pacer:
    """When the next poll is due: ``interval`` after the last one began, or ``min_interval``
    after it once woken. Pure timing with an injected clock; :meth:`wait` blocks on it."""

    def __init__(
        self, interval: float, min_interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.min_interval = min(min_interval, interval)
        self._clock = clock
        self._cond = threading.Condition()
        self._last: float | None = None
        self._woken = False
        self._stopped = False
        self.wakes = 0  # notifications received
        self.polls = 0  # polls started

    def due_in(self, now: float | None = None) -> float:
        """Seconds until the next poll is due; 0 when it is due now."""
        with self._cond:
            return self._due_in(self._clock() if now is None else now)

    def _due_in(self, now: float) -> float:
        if self._last is None:
            return 0.0
        gap = self.min_interval if self._woken else self.interval
        return max(0.0, self._last + gap - now)

    def wake(self) -> None:
        """Rows were committed: poll as soon as the floor allows."""
        with self._cond:
            self._woken = True
            self.wakes += 1
            self._cond.notify_all()

    def started(self) -> bool:
        """A poll begins: it reads everything committed until now, so earlier wakes are
        served. Called before the poll's snapshot is taken, never after. True when a
        notification brought it forward."""
        with self._cond:
            woken = self._woken
            self._last = self._clock()
            self._woken = False
            self.polls += 1
            return woken

    def wait(self) -> bool:
        """Block until the next poll is due; False when stopped instead."""
        with self._cond:
            while not self._stopped:
                due = self._due_in(self._clock())
                if due <= 0:
                    return True
                self._cond.wait(due)
            return False

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class _NoNotifications(Exception):
    """Notifications cannot reach a session where the listener connected."""


class _Notifying(Protocol):
    """What :class:`Listener` needs of a connection (psycopg's, or a test's)."""

    closed: bool

    def execute(self, query: Any, params: Any = ...) -> Any: ...

    def notifies(
        self, *, timeout: float | None = ..., stop_after: int | None = ...
    ) -> Iterable[Any]: ...

    def close(self) -> None: ...


Connect = Callable[[], Any]


class Listener:
    """LISTENs for ``CHANNEL`` and calls ``on_wake`` for notifications about ``tables``
    (``schema.table``). Nothing runs until :meth:`start`; :meth:`stop` returns at once.

    The connection is bounded like every other: keepalives and ``tcp_user_timeout`` drop a
    dead network path, a heartbeat statement under a deadline catches a frozen server, and a
    lost connection is opened again with backoff. On every (re)connection it wakes the poll
    loop once, since rows may have been committed while nobody listened.
    """

    def __init__(
        self,
        connect_to: Connect,
        tables: Iterable[str],
        on_wake: Callable[[], None],
        *,
        statement_timeout: float = 5.0,
        heartbeat: float = HEARTBEAT,
        retry_base: float = 1.0,
        polls: Callable[[], int] = lambda: 0,
    ) -> None:
        """``polls``: how many polls the poll loop has started (:attr:`Pacer.polls`)."""
        self._connect = connect_to
        self.retry = dataclasses.replace(RECONNECT, initial=retry_base)
        self._polls = polls
        self.tables = frozenset(tables)
        self._on_wake = on_wake
        self.statement_timeout = statement_timeout
        self.heartbeat = heartbeat
        self.mode = "connecting"
        self.listening = threading.Event()  # set while LISTEN is in place
        self.backend_pid: int | None = None  # the listening session's, on the server
        self._stopping = threading.Event()
        self._conn: _Notifying | None = None
        self._missing: list[str] | None = None  # watched tables without the trigger
        self._why_not: str | None = None  # why notifications cannot arrive, as last said
        # Pauses (UNLISTENed while a poll is due) are numbered: the one begun last, the one
        # ended last, and the last one a poll asked to end because it is about to start.
        self._cond = threading.Condition()
        self._paused = 0
        self._ended = 0
        self._asked = 0
        self._thread = threading.Thread(target=self._run, name="cbmon wake", daemon=True)

    @classmethod
    def for_dsn(
        cls,
        dsn: str,
        tables: Iterable[str],
        pacer: Pacer,
        *,
        statement_timeout: float,
        connect_timeout: float,
    ) -> Listener:
        def open_connection() -> psycopg.Connection[Any]:
            return connect(
                dsn,
                statement_timeout=statement_timeout,
                connect_timeout=connect_timeout,
                application_name="cbmon wake",
            )

        return cls(
            open_connection,
            tables,
            pacer.wake,
            statement_timeout=statement_timeout,
            polls=lambda: pacer.polls,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end, cutting any wait on the network short; does not block."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        conn = self._conn
        if isinstance(conn, psycopg.Connection):
            sever(conn)

    def join(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                conn = self._listen()
            except psycopg.errors.FeatureNotSupported as exc:
                self.mode = "unsupported"
                log.info(
                    "the database does not support LISTEN (%s): polls stay on the poll interval",
                    first_line(exc),
                )
                return
            except _NoNotifications as exc:
                self.mode = "poll"
                if str(exc) != self._why_not:
                    log.info(
                        "%s: polls stay on the poll interval; database.primary_dsn gives the "
                        "listener a direct connection to the primary",
                        exc,
                    )
                self._why_not = str(exc)
                self._stopping.wait(RECHECK)
                continue
            except (psycopg.Error, DatabaseError) as exc:
                failures += 1
                self._failed(exc, failures)
                continue
            if failures:
                log.info("listening for new rows again")
            failures = 0
            try:
                self._receive(conn)
            except (psycopg.Error, DatabaseError) as exc:
                if not self._stopping.is_set():
                    failures = 1
                    self._failed(exc, failures)
            finally:
                self._close()

    def _listen(self) -> _Notifying:
        conn: _Notifying = self._connect()
        self._conn = conn
        if isinstance(conn, psycopg.Connection):
            self.backend_pid = conn.info.backend_pid
        try:
            if isinstance(conn, psycopg.Connection):
                self._can_hear(conn)
            with self._bounded(conn):
                conn.execute(_LISTEN)
                self._check_triggers(conn)
        except BaseException:
            self._close()
            raise
        self.listening.set()
        self._on_wake()  # rows committed while nobody listened: one poll reads them
        return conn

    def _can_hear(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse what would LISTEN where no notification arrives: behind a pooler in
        transaction mode (LISTEN stays on one backend while the session moves on) and on a
        hot standby (which refuses LISTEN, and where NOTIFY is never replicated)."""
        where = describe(conn.info.dsn)
        if not link_of(conn).keeps_session:
            raise _NoNotifications(
                f"{where} goes through a pooler in transaction mode, where LISTEN does not hold"
            )
        with Deadline(conn, self.statement_timeout + GRACE), conn.cursor() as cur:
            if topology.history(cur, server_of(conn)).in_recovery:
                raise _NoNotifications(f"{where} is a hot standby, where no NOTIFY arrives")
        if self._why_not is not None:
            log.info("notifications can arrive again (%s)", where)
            self._why_not = None

    def _check_triggers(self, conn: _Notifying) -> None:
        """Which watched tables have no trigger to wake us: said when it changes (at start,
        and when one is installed or dropped later), looked at with every heartbeat."""
        rows = conn.execute(_TRIGGERED, [TRIGGER]).fetchall()
        missing = sorted(self.tables - {str(row[0]) for row in rows})
        self.mode = "no_trigger" if missing else "notify"
        if missing == self._missing:
            return
        if missing:
            log.info(
                "no %s trigger on %s: new rows there are read at the next poll interval "
                "(cbmon schema apply --wake installs it)",
                TRIGGER,
                " and ".join(missing),
            )
        elif self._missing is not None:
            log.info("every watched table has its %s trigger now", TRIGGER)
        self._missing = missing

    def _receive(self, conn: _Notifying) -> None:
        while not self._stopping.is_set():
            if self._woken_by(conn):
                self._pause(conn)
                continue
            with self._bounded(conn):  # a frozen server or network path shows here
                self._check_triggers(conn)

    def _woken_by(self, conn: _Notifying) -> bool:
        """Wait up to a heartbeat for a notification about a watched table."""
        notes = iter(conn.notifies(timeout=self.heartbeat))
        try:
            for note in notes:
                if note.payload in self.tables or self._stopping.is_set():
                    return not self._stopping.is_set()
            return False
        finally:
            close = getattr(notes, "close", None)
            if close is not None:
                close()  # the connection is free for statements again

    def _pause(self, conn: _Notifying) -> None:
        """A poll is due and will read everything committed before it starts: stop hearing
        about more until then. Otherwise every commit of a busy log, a thousand a second,
        would be delivered to this session for nothing, at a cost to the committing ones.

        Paused first, then the poll loop woken: a poll that starts from here on waits in
        :meth:`before_poll` until LISTEN is back, so no commit after its snapshot goes
        unannounced."""
        with self._cond:
            self._paused += 1
            pause = self._paused
        started = self._polls()  # a poll starting from here on sees the pause
        self._on_wake()
        try:
            with self._bounded(conn):
                conn.execute(_UNLISTEN)
            missed = self._wait_for_poll(pause, started)
            if self._stopping.is_set():
                return
            with self._bounded(conn):
                conn.execute(_LISTEN)
            if missed:
                # A poll began without waiting for LISTEN (it passed before_poll just before
                # the pause): what was committed after its snapshot needs one more.
                self._on_wake()
        finally:
            with self._cond:
                self._ended = pause
                self._cond.notify_all()

    def _wait_for_poll(self, pause: int, started: int) -> bool:
        """Until a poll asks to resume, or one began without asking (True: it missed the
        pause), or a heartbeat passed (the poll loop is held up: its wake is still due)."""
        deadline = time.monotonic() + self.heartbeat
        with self._cond:
            while self._asked < pause and not self._stopping.is_set():
                if self._polls() > started:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, PAUSE_CHECK))
            return False

    def before_poll(self) -> None:
        """Called by the poll loop just before a poll: returns once LISTEN is in place (at
        once unless paused), or after a statement timeout if the session is in trouble."""
        with self._cond:
            pause = self._paused
            if self._ended >= pause:
                return
            self._asked = pause
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._ended >= pause or self._stopping.is_set(),
                self.statement_timeout + GRACE,
            )

    def _bounded(self, conn: _Notifying) -> contextlib.AbstractContextManager[object]:
        """Statements on the listening connection are bounded on our side too."""
        if isinstance(conn, psycopg.Connection):
            return Deadline(conn, self.statement_timeout + GRACE)
        return contextlib.nullcontext()

    def _failed(self, exc: BaseException, failures: int) -> None:
        self.mode = "connecting"
        self.listening.clear()
        text = first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
        delay = self.retry.delay(failures)
        level = logging.INFO if failures == 1 else logging.DEBUG
        log.log(level, "not listening for new rows (%s); trying again in %.1fs", text, delay)
        self._stopping.wait(delay)

    def _close(self) -> None:
        self.listening.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                log.debug("closing the listening connection: %s", first_line(exc))
