"""Connections to the monitored database: timeouts on everything, passwords kept out of messages."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import weakref
from types import TracebackType
from typing import Any

import psycopg
from psycopg import conninfo, sql

from cbmon import secrets
from cbmon.db import dialect, driver, topology
from cbmon.errors import ConfigError, DatabaseError


def describe(dsn: str) -> str:
    """A DSN as it may be logged: ``user@host:port/dbname``, never the password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeDecodeError, ValueError):
        return "(unparsable DSN)"
    host = str(params.get("host") or "local socket")
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{host}{port}/{params.get('dbname', '')}"


def database_label(dsn: str) -> str:
    """A DSN as the ``database`` label of what cbmon exports and sends: ``host:port/dbname``,
    without the user or the password (libpq's defaults for what the DSN leaves out)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeDecodeError, ValueError):
        return "unknown"
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    host = host.split(",")[0]  # a multi-host DSN: named by its first host
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432").split(",")[0]
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or ""
    if host.startswith("/"):
        host = "localhost"  # a socket directory says nothing a reader needs
    return f"{host}:{port}/{dbname}"


def connect(
    dsn: str,
    *,
    statement_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    autocommit: bool = True,
    application_name: str = "cbmon",
    idle_timeout: float | None = None,
    read_only: bool = True,
    using: driver.Driver = "psycopg",
) -> psycopg.Connection[Any]:
    """Open a connection whose every wait is bounded, on the server and on our side.

    ``statement_timeout`` is set on the server, so a query the client gave up on does not run
    on. TCP keepalives and ``tcp_user_timeout`` drop a connection whose network path died, so
    a read never waits on a peer that is gone. ``idle_timeout`` asks the server to end the
    session when it stays idle that long (PostgreSQL 14 and later): the leader lock's session
    uses it so that a frozen replica lets go of the lock.

    ``read_only`` (the default: cbmon reads) starts every transaction read-only, whatever the
    role's own default or a mistaken grant allows. ``using`` picks the driver
    (:mod:`cbmon.db.driver`).
    """
    secrets.remember_dsn(dsn)
    try:
        conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeDecodeError, ValueError):
        raise ConfigError(
            "the database DSN is not a valid libpq connection string or URI (percent-encode "
            "special characters); it is not shown here, as it may hold a password"
        ) from None
    options: dict[str, Any] = {
        "autocommit": autocommit,
        "connect_timeout": max(1, round(connect_timeout)),
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": max(1, round(statement_timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
    }
    if using == "psycopg":
        # libpq 12 and later; Huawei's libpq (the gaussdb driver's) is older and refuses it.
        options["tcp_user_timeout"] = max(1000, round((statement_timeout + connect_timeout) * 1000))
    dsn = _primary_for_read_write(dsn, using)
    conn = _open(using, dsn, options)
    try:
        server, pid = dialect.detect_with_pid(conn)
        if not autocommit:
            conn.commit()
        pooler: topology.Pooler = "none"
        if pid != conn.info.backend_pid:
            # Something in between answers for the server: ask it which pool mode it runs.
            conn.autocommit = True
            pooler = topology.pooling(
                conn, lambda: _open(using, dsn, options), lambda c, s: Deadline(c, s)
            )
            if pooler == "statement":
                raise DatabaseError(
                    f"{describe(dsn)} is a pooler in statement mode: cbmon reads each poll in "
                    "one transaction; use session or transaction mode (see docs/deploy.md)"
                )
            if conn.broken:  # the probe's wait cut it: a pool of one
                conn = _open(using, dsn, options)
            conn.autocommit = autocommit
        _servers[conn] = server
        _links[conn] = Link(pooler, statement_timeout)
        if pooler == "transaction":
            # Session state does not hold, and would leak to the pool's other clients: no SET
            # (each poll sets its statement timeout locally, and begins READ ONLY), and no
            # server-side prepared statements, which another backend would not know.
            conn.prepare_threshold = None
            return conn
        _set(conn, "statement_timeout", statement_timeout)
        if server.has_jit:
            # cbmon's statements are short, but the planner prices the lifecycle's per-row
            # probes high enough to JIT-compile them: 0.4 s of compiling for 0.2 s of work on
            # a 200k-row burst.
            conn.execute("SET jit = off")
        if idle_timeout is not None and server.has_idle_session_timeout:
            _set(conn, "idle_session_timeout", idle_timeout)
        if not server.postgresql:
            # openGauss ends sessions idle for session_timeout (600 s by default): none for
            # ours, except the leader lock's, which must end when its replica goes silent.
            seconds = 0 if idle_timeout is None else max(1, round(idle_timeout))
            seconds = min(seconds, dialect.SESSION_TIMEOUT_MAX)
            conn.execute(sql.SQL("SET session_timeout = {}").format(sql.Literal(seconds)))
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseError(f"{describe(dsn)}: {first_line(exc)}") from None
    except DatabaseError:
        conn.close()
        raise
    return conn


def _open(using: driver.Driver, dsn: str, options: dict[str, Any]) -> psycopg.Connection[Any]:
    try:
        return driver.connect(using, dsn, **options)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to {describe(dsn)}: {explain(exc)}") from None


def _primary_for_read_write(dsn: str, using: driver.Driver) -> str:
    """``target_session_attrs=read-write`` as ``primary``: libpq's read-write test fails on a
    session whose ``default_transaction_read_only`` is on, which is how cbmon's role is
    made, even on the primary. What the user means is the primary. (Huawei's libpq, under
    the gaussdb driver, has no ``primary``: left as written there.)"""
    if using != "psycopg":
        return dsn
    params = conninfo.conninfo_to_dict(dsn)
    if str(params.get("target_session_attrs") or "") != "read-write":
        return dsn
    return conninfo.make_conninfo(dsn, target_session_attrs="primary")


@dataclasses.dataclass(frozen=True)
class Link:
    """What stands between a connection and its server."""

    pooler: topology.Pooler  # "none", "session" or "transaction"
    statement_timeout: float

    @property
    def keeps_session(self) -> bool:
        """Session state (locks, LISTEN, SET) holds: no pooler, or one in session mode."""
        return self.pooler in ("none", "session")


_links: weakref.WeakKeyDictionary[psycopg.Connection[Any], Link] = weakref.WeakKeyDictionary()


def link_of(conn: psycopg.Connection[Any]) -> Link:
    """What :func:`connect` found between ``conn`` and its server (nothing, for others)."""
    return _links.get(conn) or Link("none", 0.0)


def local_settings(cur: psycopg.Cursor[Any]) -> None:
    """Inside a transaction: what :func:`connect` could not set for the session (behind a
    pooler in transaction mode), set for this transaction."""
    link = link_of(cur.connection)
    if link.pooler != "transaction":
        return
    if link.statement_timeout > 0:
        milliseconds = max(1, round(link.statement_timeout * 1000))
        cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(milliseconds)))
    if server_of(cur.connection).has_jit:
        cur.execute("SET LOCAL jit = off")


_servers: weakref.WeakKeyDictionary[psycopg.Connection[Any], dialect.Server] = (
    weakref.WeakKeyDictionary()
)


def server_of(conn: psycopg.Connection[Any]) -> dialect.Server:
    """What :func:`connect` found on the other end (detected again for other connections)."""
    found = _servers.get(conn)
    if found is None:
        found = _servers[conn] = dialect.detect(conn)
    return found


def _set(conn: psycopg.Connection[Any], setting: str, seconds: float) -> None:
    # SET takes no bound parameters; the name is ours and the value an integer we formatted.
    milliseconds = max(1, round(seconds * 1000))
    conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(milliseconds)))


_SHA256 = (
    "none of the server's SASL authentication mechanisms are supported",
    "authentication method 10 not supported",
    "authentication method 11 not supported",
)


def explain(exc: BaseException) -> str:
    """A connection error in one line; the sha256 method of openGauss and GaussDB, which a
    stock libpq cannot speak, is named with its fix."""
    text = first_line(exc)
    if any(marker in str(exc) for marker in _SHA256):
        return (
            f"{text} (the server asks for openGauss/GaussDB sha256 password authentication, "
            "which this libpq cannot do: give the role an md5 password "
            "(password_encryption_type = 1, then set the password again) with an md5 line "
            "in pg_hba.conf, or use database.driver: gaussdb with Huawei's libpq; "
            "see docs/gaussdb.md)"
        )
    return text


def sever(conn: psycopg.Connection[Any]) -> None:
    """Cut ``conn``'s socket from another thread: a wait on it returns at once with an error.

    ``shutdown`` on a duplicate of the descriptor ends the connection for every user of the
    socket, so a libpq call blocked on a frozen server or network path fails immediately.
    """
    try:
        fd = conn.pgconn.socket
    except driver.error_classes():
        return  # already closed
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)
    duplicate.close()


class Deadline:
    """Bounds everything done on a connection inside a ``with`` block, on our side.

    When ``seconds`` pass first, the connection is severed and the block's psycopg error
    becomes :class:`DatabaseError` saying the database did not answer in time.
    """

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self.conn = conn
        self.seconds = seconds
        self.expired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired.set()
        sever(self.conn)

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        if self.expired.is_set() and (exc is None or isinstance(exc, psycopg.Error)):
            raise DatabaseError(f"no answer from the database within {self.seconds:g}s") from None


def poll_error_reason(exc: BaseException) -> str:
    """Why a poll failed, as one of :data:`cbmon.domain.POLL_ERROR_REASONS`: ``connection`` when
    the database did not answer (no connection, a connection lost, no answer in time on our
    side), else what the database refused. By SQLSTATE, which both drivers carry."""
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return "timeout"  # statement_timeout or lock_timeout: the server answered, late
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return "permission"
    if isinstance(exc, DatabaseError | psycopg.OperationalError | psycopg.InterfaceError):
        return "connection"
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("42"):
        return "schema"  # a table, column or schema missing, or a type the SQL cannot use
    if state.startswith("22"):
        return "data"  # a value the SQL could not read
    return "query"


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, with any password removed."""
    text = str(exc).strip().splitlines()
    return secrets.scrub(text[0]) if text else type(exc).__name__
