"""``cbmon serve`` as a long-running service: the poll loop, the HTTP server and shutdown.

One thread polls, so polls never overlap; the HTTP server answers scrapes from memory in its
own threads. When the database goes away the loop keeps serving, marks it down and retries
with backoff; the readers keep their position, so counts stay exact across outages.
"""

from __future__ import annotations

import logging
import random
import socket
import sys
import threading
import time
from typing import Any, Protocol

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from cbmon.config import Config, parse_listen
from cbmon.db.connect import connect, describe, first_line
from cbmon.errors import CbmonError, ConfigError
from cbmon.sidecar.collector import CallbackCollector, QueueAgeCollector
from cbmon.sidecar.evaluator import Evaluator, EvaluatorCollector, NotifierCollector
from cbmon.sidecar.exposition import Exposition
from cbmon.sidecar.poller import CallbackDelta, Poller, PollResult
from cbmon.sidecar.server import MetricsServer
from cbmon.sidecar.state import State

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# Errors that mean the configuration names tables or columns the role cannot read.
_SCHEMA_ERRORS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InsufficientPrivilege,
    psycopg.errors.InvalidSchemaName,
)


def external_url(listen: str) -> str:
    """The URL alerts point back to: this host's name when listening on every interface."""
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::"):  # noqa: S104
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class PollObserver(Protocol):
    """Something fed after every successful poll (the SLO evaluator is one)."""

    def observe(
        self, result: PollResult, deltas: dict[str, tuple[CallbackDelta | None, int]]
    ) -> None: ...

    def close(self) -> None: ...


class Service:
    def __init__(
        self,
        config: Config,
        observers: list[PollObserver] | None = None,
    ) -> None:
        self.config = config
        self.dsn = config.require_dsn()
        self.state = State(
            config.file.max_event_types, max_event_type_length=config.file.max_event_type_length
        )
        self.poller = Poller(config, backfill=config.file.slo.window)
        self.evaluator = Evaluator(
            config, external_url(config.file.listen), self.state.labels.label
        )
        self.observers: list[PollObserver] = [self.evaluator, *(observers or [])]
        polled, live = CollectorRegistry(), CollectorRegistry()
        polled.register(CallbackCollector(self.state))
        polled.register(EvaluatorCollector(self.evaluator))
        live.register(QueueAgeCollector(self.state))
        live.register(NotifierCollector(self.evaluator))
        ProcessCollector(registry=live)
        self.exposition = Exposition(polled, live)
        self.stop_event = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self.server: MetricsServer | None = None

    def add_observer(self, observer: PollObserver) -> None:
        self.observers.append(observer)

    # -- readiness -------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if not self.state.database_up:
            return False, "database unreachable or not polled yet"
        age = time.time() - self.state.last_poll_timestamp
        limit = 3 * self.config.file.poll_interval + self.config.file.database.statement_timeout
        if age > limit:
            return False, f"last successful poll {age:.0f}s ago"
        return True, "ready"

    # -- the loop ---------------------------------------------------------------------------
    def start_server(self) -> MetricsServer:
        host, port = parse_listen(self.config.file.listen)
        try:
            self.server = MetricsServer((host, port), self.exposition, self.readiness)
        except OSError as exc:
            raise CbmonError(
                f"cannot listen on {self.config.file.listen}: {exc.strerror}"
            ) from None
        self.server.start()
        return self.server

    def poll_once(self) -> PollResult:
        """Connect if needed and run one poll; raises ``psycopg.Error`` or ``CbmonError``."""
        if self._conn is None or self._conn.closed:
            db = self.config.file.database
            self._conn = connect(
                self.dsn,
                statement_timeout=db.statement_timeout,
                connect_timeout=db.connect_timeout,
            )
            log.info("connected to %s", describe(self.dsn))
        started = time.monotonic()
        result = self.poller.poll(self._conn)
        for assumption in result.assumptions:
            if not assumption.ok:
                log.warning(
                    "counts of the %s table may be inexact: %s", assumption.table, assumption.detail
                )
        for table, count in result.ahead_rows.items():
            if count:
                log.warning(
                    "%d rows of the %s table are dated in the future; they are left out "
                    "of the SLO window",
                    count,
                    table,
                )
        deltas = self.state.label_deltas(result)
        self.state.apply(result, deltas, time.monotonic() - started)
        for observer in self.observers:
            observer.observe(result, deltas)
        self.exposition.refresh()
        return result

    def run(self) -> None:
        """Poll until :attr:`stop_event` is set. A database that is away is waited for; tables
        that the first poll cannot read are a :class:`ConfigError`."""
        interval = self.config.file.poll_interval
        # Rendering after a poll holds the GIL for tens of milliseconds; a short switch interval
        # lets a scrape arriving meanwhile be served from the cache without waiting for it.
        sys.setswitchinterval(0.0005)
        failures = 0
        while not self.stop_event.is_set():
            try:
                result = self.poll_once()
            except _SCHEMA_ERRORS as exc:
                if self.state.last_poll_timestamp == 0:
                    # Never polled: the tables or grants are wrong, not the weather. Say so.
                    raise ConfigError(
                        f"{first_line(exc)} (check tables.logs/errors/queue in the "
                        "configuration and the role's SELECT grants)"
                    ) from None
                failures = self._poll_failed(exc, failures, interval)
                continue
            except (psycopg.Error, CbmonError) as exc:
                failures = self._poll_failed(exc, failures, interval)
                continue
            if failures:
                log.info("database back after %d failed polls", failures)
            failures = 0
            if result.caught_up:
                self.stop_event.wait(interval)

    def _poll_failed(self, exc: BaseException, failures: int, interval: float) -> int:
        """Record a failed poll, drop the connection and wait with backoff; returns failures."""
        failures += 1
        self.state.poll_failed()
        self.exposition.refresh()
        self._drop_connection()
        delay = min(MAX_BACKOFF, max(interval, 2 ** (failures - 1))) * (0.8 + 0.4 * random.random())
        text = first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
        log.warning("poll failed (%s); retrying in %.1fs", text, delay)
        self.stop_event.wait(delay)
        return failures

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error as exc:
                log.debug("closing a broken connection: %s", first_line(exc))
            self._conn = None

    def close(self) -> None:
        self.stop_event.set()
        if self.server is not None:
            self.server.stop()
        for observer in self.observers:
            observer.close()
        self._drop_connection()
