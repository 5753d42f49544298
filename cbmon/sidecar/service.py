"""``cbmon serve`` as a long-running service: the one place where the parts are wired, the
poll loop, the HTTP server and shutdown.

Data flows one way: database -> poller -> store and evaluator -> collectors (scrapes) and
dispatcher (alerts). One thread polls, so polls never overlap; the HTTP server answers scrapes
from memory in its own threads. When the database goes away the loop keeps serving, marks it
down and retries with backoff; the readers keep their position, so counts stay exact across
outages. Constructors start nothing: :meth:`Service.start` does.

A reload (:meth:`Service.reload`: SIGHUP through :meth:`Service.request_reload`, or
``POST /-/reload``) reads the configuration again at once and says what it does; the poll
thread applies it before its next poll (see :mod:`cbmon.sidecar.reload`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from cbmon import scope, secrets
from cbmon.clock import SystemClock
from cbmon.config import Config, parse_listen, secrets_of
from cbmon.db.connect import Deadline, connect, describe, first_line, poll_error_reason, sever
from cbmon.delivery import signing, statefile
from cbmon.delivery.alertmanager import AlertmanagerSender
from cbmon.delivery.dispatcher import Dispatcher
from cbmon.delivery.leader import Leadership
from cbmon.delivery.retry import RECONNECT
from cbmon.delivery.statefile import StateFile
from cbmon.domain import DatabaseInfo, PollResult
from cbmon.durations import format_duration
from cbmon.errors import CbmonError, ConfigError
from cbmon.ingest.mechanism import MechanismProbe, Settings
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.ingest.wake import CHANNEL, Listener, Pacer
from cbmon.sidecar.evaluator import Evaluator
from cbmon.sidecar.reload import ReloadStatus, plan
from cbmon.slo.notification import Notification
from cbmon.slo.tracker import Transition
from cbmon.web import status, webconfig
from cbmon.web.collector import (
    CallbackCollector,
    DeliveryCollector,
    EvaluatorCollector,
    QueueAgeCollector,
    ReloadCollector,
)
from cbmon.web.exposition import Exposition, by_database
from cbmon.web.mechanism import MechanismCollector
from cbmon.web.mechanism import summary as mechanism_summary
from cbmon.web.pages import Pages, StatusPages
from cbmon.web.server import MetricsServer, Readiness, Reload

log = logging.getLogger(__name__)

# A poll is bounded by the statement timeout on the server and by this much more on our side.
POLL_GRACE = 2.0
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


class Service:
    """``cbmon serve``: owns every part of a running sidecar and is the only place they are
    wired together.

    It owns the poll connection, the :class:`~cbmon.ingest.poller.Poller` (readers and
    fences), the :class:`~cbmon.ingest.store.Store`, the
    :class:`~cbmon.sidecar.evaluator.Evaluator`, the leader lock, the webhook dispatcher and
    the Alertmanager sender, the alert state file, the two metric registries (rendered once
    per poll, and live) and the HTTP server.

    Threads: :meth:`run` is the poll thread, the only one that polls, evaluates, saves the
    state file and applies a reload, so polls never overlap and the state it feeds changes
    in one place. The HTTP server answers from memory in threads of its own (one snapshot per
    request, never the database); each webhook receiver and the Alertmanager sender post from
    their own threads; the wake listener holds its own connection; a reload is read and
    checked in the ``reload`` thread and handed to the poll thread to apply.

    Invariants: the constructor starts nothing and opens no connection (:meth:`start` does);
    a failed poll changes no count (the readers keep their position) and is retried with the
    reconnect backoff; only the replica holding the leader lock sends webhooks; the state file
    is read and written only once started.
    """

    def __init__(
        self,
        config: Config,
        *,
        reload_from: Callable[[], Config] | None = None,
        lifecycle: bool = False,
    ) -> None:
        """``reload_from`` loads the configuration again, as it was loaded at start (the
        same file, flags and environment); ``lifecycle`` enables ``POST /-/reload``.
        A fleet (:mod:`cbmon.sidecar.fleet`) starts its services with
        :meth:`start_pipeline` and serves them all itself."""
        secrets.learn(secrets_of(config))  # masked in every line from here on
        self.config = config
        self.database = config.database  # the database label of all it exports and sends
        self.dsn = config.require_dsn()
        if config.webhook_secret is not None:
            signing.check_secret(config.webhook_secret)  # one clear line now, not at 3 a.m.
        alerting, db = config.file.alerting, config.file.database
        self.clock = SystemClock()
        self.store = Store(
            config.file.max_event_types,
            clock=self.clock,
            max_event_type_length=config.file.max_event_type_length,
        )
        self.poller = Poller(config, backfill=config.file.slo.window)
        self.evaluator = Evaluator(config, clock=self.clock)
        self.mechanism = (
            MechanismProbe(Settings.of(config), self.clock.monotonic)
            if config.file.mechanism.enabled
            else None
        )
        url = external_url(config.file.listen)
        logs = config.tables.logs
        secret = config.cluster_secret or config.webhook_secret
        # A named database (each of a fleet) has its own lock and state file even where two
        # names watch the same tables; an unnamed one keeps those it always had.
        named = () if config.file.database.name is None else (config.file.database.name,)
        # The lock lives on the primary; through database.primary_dsn when the DSN reaches a
        # standby or a pooler in transaction mode (where it would exclude nobody).
        self.leadership = Leadership(
            config.primary_dsn or self.dsn,
            secret=secret,
            watched=(logs.table_schema, logs.table, *named),
            cluster=alerting.cluster,
            # A leader that stops proving it is alive loses the lock within this.
            alive_timeout=2 * config.file.poll_interval + db.statement_timeout,
            connect_timeout=db.connect_timeout,
            using=db.driver,
            replica=url.partition("://")[2],  # the others name the sender by it
        )
        self._lock_key_is_secret = secret is not None
        self._said: tuple[bool, str | None, str | None, str | None] | None = None  # last said
        self.dispatcher = Dispatcher.from_config(config, self.leadership, url)
        self.alertmanagers = AlertmanagerSender(
            alerting.alertmanagers,
            cluster=alerting.cluster,
            database=self.database,
            external_url=url,
            timeout=alerting.timeout,
            resend_interval=alerting.resend_interval,
            clock=self.clock,
        )
        identity = "|".join(
            (describe(self.dsn), f"{logs.table_schema}.{logs.table}", config.file.listen, *named)
        )
        self.state = StateFile(statefile.path_for(alerting.state_dir, alerting.cluster, identity))
        # This database's own metrics, without the database label: the exposition adds it.
        self.polled, self.live = CollectorRegistry(), CollectorRegistry()
        self.polled.register(CallbackCollector(self.store))
        self.polled.register(EvaluatorCollector(self.evaluator, self.dispatcher))
        if self.mechanism is not None:
            self.polled.register(MechanismCollector(self.mechanism))
        self.live.register(QueueAgeCollector(self.store))
        self.live.register(DeliveryCollector(self.dispatcher, self.alertmanagers))
        self.reloads = ReloadStatus(self.clock.wall())
        self.live.register(ReloadCollector(self.reloads))
        process = CollectorRegistry()
        ProcessCollector(registry=process)
        # Refreshed after each poll; a fleet puts its own, of every database, in its place.
        self.exposition = Exposition(
            {self.database: self.polled},
            by_database({self.database: self.live}),
            process,
        )
        self._reload_from = reload_from or (lambda: self.config)
        self._lifecycle = lifecycle
        self._reload_lock = threading.Lock()
        self._latest = config  # the last configuration accepted, applied or about to be
        self._pending: Config | None = None  # accepted, for the poll thread to apply
        self._reload_requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reloader = scope.Thread(target=self._reload_loop, name="reload", daemon=True)
        wake = config.file.wake
        self.pacer = Pacer(config.file.poll_interval, wake.min_interval)
        self.listener: Listener | None = None
        if wake.listen:
            errors = config.tables.errors
            # NOTIFY is sent on the primary and never replicated; LISTEN needs a session.
            self.listener = Listener.for_dsn(
                config.primary_dsn or self.dsn,
                {f"{logs.table_schema}.{logs.table}", f"{errors.table_schema}.{errors.table}"},
                self.pacer,
                statement_timeout=db.statement_timeout,
                connect_timeout=db.connect_timeout,
            )
        self.reconnect = RECONNECT  # the wait after a failed poll, at most 3 poll intervals
        self.stop_event = threading.Event()
        self._nudge = threading.Event()  # ends a wait after a failed poll: a reload, a stop
        self._conn: psycopg.Connection[Any] | None = None
        self.server: MetricsServer | None = None
        self._started = False  # the state file is read and written only once started
        self._announced_server: DatabaseInfo | None = None

    # -- readiness -------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        age = self.store.seconds_since_poll()
        if not self.store.database_up or age is None:
            return False, "database unreachable or not polled yet"
        limit = 3 * self.config.file.poll_interval + self.config.file.database.statement_timeout
        if age > limit:
            return False, f"last successful poll {age:.0f}s ago"
        return True, "ready"

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> MetricsServer:
        """Restore the alert state, listen for scrapes and start the senders; :meth:`run`
        then polls."""
        self._prepare()
        server = self._start_server()
        self._start_senders()
        return server

    def start_pipeline(self) -> None:
        """:meth:`start` without the HTTP server, for a fleet that serves every database."""
        self._prepare()
        self._start_senders()

    def _prepare(self) -> None:
        self.state.prepare()
        self._restore()
        self._started = True
        self._reloader.start()

    def _start_senders(self) -> None:
        self.dispatcher.start()
        self.alertmanagers.start()
        if self.listener is not None:
            self.listener.start()
        self._announce()

    def _restore(self) -> None:
        saved = self.state.read()
        firing = self.evaluator.restore(saved.get("tracks", []))
        waiting = self.dispatcher.restore(saved.get("outboxes", {}))
        if saved:
            log.info(
                "alert state restored from %s: %d alert(s) firing, %d notification(s) to deliver",
                self.state.path,
                firing,
                waiting,
            )

    def _announce(self) -> None:
        alerting, file = self.config.file.alerting, self.config.file
        if not alerting.webhooks and not alerting.alertmanagers:
            log.info(
                "no alert receivers configured: alerts are logged, exported and shown on the "
                "status page only"
            )
        if not alerting.webhooks:
            log.info("this replica sends no webhook notifications: none are configured")
        if alerting.webhooks and not self._lock_key_is_secret:
            log.warning(
                "no cluster secret (CBMON_CLUSTER_SECRET or a webhook secret): any session "
                "that reads this configuration can compute the leader lock and silence webhooks"
            )
        if alerting.alertmanagers:
            log.info(
                "every replica posts alerts to %d Alertmanager(s)", len(alerting.alertmanagers)
            )
        interval = format_duration(file.poll_interval)
        if self.listener is None:
            log.info("polling every %s (wake.listen is off)", interval)
        else:
            log.info(
                "polling at once when the database notifies new rows (LISTEN %s, at most every "
                "%s), and every %s otherwise",
                CHANNEL,
                format_duration(file.wake.min_interval),
                interval,
            )

    def _say_who_sends(self) -> None:
        """At the first leadership check and at every change: whether this replica sends the
        webhook notifications and, if not, who does. Every replica says it, so any one log
        answers the question."""
        if not self.config.file.alerting.webhooks:
            return
        leadership = self.leadership
        said = (
            leadership.is_leader,
            leadership.holder,
            leadership.foreign_holder,
            leadership.refusal,
        )
        if said == self._said:
            return
        self._said = said
        cluster = self.config.file.alerting.cluster
        if leadership.is_leader:
            log.info("this replica sends the webhook notifications (cluster %s)", cluster)
        elif leadership.holder is not None:
            log.info(
                "replica %s sends the webhook notifications of cluster %s; this one stands by",
                leadership.holder,
                cluster,
            )
        elif leadership.foreign_holder is None and leadership.refusal is None:
            # a foreign holder and a refusal have their own warning
            log.info(
                "no replica of cluster %s could be seen holding the leader lock; this one "
                "stands by and tries again at its next poll",
                cluster,
            )

    def status(self) -> status.Snapshot:
        """What the status page and the JSON API show, from memory."""
        alerting = self.config.file.alerting
        leadership = self.leadership
        leading = self.dispatcher.is_leader
        return status.build(
            now=self.clock.wall(),
            config=self.config,
            view=self.store.view(),
            indicators=self.evaluator.indicators(),
            trend=self.evaluator.trend,
            active=self.evaluator.tracker.active(),
            transitions=self.evaluator.tracker.transitions(),
            leader=status.LeaderStatus(
                webhooks=len(alerting.webhooks),
                alertmanagers=len(alerting.alertmanagers),
                sends_webhooks=leading,
                sender=None if leading else leadership.holder,
                foreign_holder=leadership.foreign_holder,
                refusal=leadership.refusal,
            ),
            wake="off" if self.listener is None else self.listener.mode,
            budgets=self.evaluator.budgets(),
            mechanism=mechanism_summary(
                self.evaluator.mechanism, self.config.file.mechanism.missed_runs
            ),
        )

    def _start_server(self) -> MetricsServer:
        self.server = start_server(
            self.config,
            self.exposition,
            self.readiness,
            StatusPages(self.status),
            self._reload_over_http if self._lifecycle else None,
        )
        return self.server

    def poll_once(self, *, catch_up: bool = False) -> PollResult:
        """Connect if needed and run one poll; raises ``psycopg.Error`` or ``CbmonError``.
        ``catch_up``: a notification from the primary brought the poll forward, so on a
        standby it first waits (briefly) until the commit that notified has been replayed."""
        self.clock.check()  # a step of the wall clock is said once, and changes no decision
        db = self.config.file.database
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self.dsn,
                statement_timeout=db.statement_timeout,
                connect_timeout=db.connect_timeout,
                using=db.driver,
            )
            log.info("connected to %s", describe(self.dsn))
        started = time.monotonic()
        # Bounded on our side too: a frozen server or network path cannot hold the poll.
        with Deadline(self._conn, db.statement_timeout + POLL_GRACE):
            result = self.poller.poll(self._conn, catch_up=catch_up)
        for assumption in result.assumptions:
            if assumption.ok is None:
                log.warning(
                    "cannot check that counts of the %s table are exact: %s",
                    assumption.table,
                    assumption.detail,
                )
            elif not assumption.ok:
                log.warning(
                    "counts of the %s table may be inexact: %s", assumption.table, assumption.detail
                )
        if result.database is not None and self._announced_server != result.database:
            self._announced_server = result.database
            log.info("polling %s %s", result.database.flavor, result.database.version)
        if result.features is not None:
            for note in result.features.notes:  # what the tables do not let cbmon read
                log.info("%s", note)
        for reset in result.resets:
            log.warning("%s (reset of the %s table: %s)", reset.detail, reset.table, reset.reason)
        for table, count in result.ahead_rows.items():
            if count:
                log.warning(
                    "%d rows of the %s table are dated in the future; they are left out "
                    "of the SLO window",
                    count,
                    table,
                )
        if self.mechanism is not None:
            self._probe_mechanism()
        labeled = self.store.label(result)
        self.store.apply(result, labeled, time.monotonic() - started)
        tracker = self.evaluator.tracker
        recorded = tracker.recorded
        notes = self.evaluator.observe(result, labeled)
        _log_transitions(notes, tracker.transitions(tracker.recorded - recorded))
        self.dispatcher.dispatch(notes, self.evaluator.current)
        self._say_who_sends()
        self.alertmanagers.update(self.evaluator.alerts(), changed=bool(notes))
        if notes or self.dispatcher.dirty.is_set():
            self._save()
        self.exposition.refresh(self.database)
        return result

    def _probe_mechanism(self) -> None:
        """The mechanism's sources, every mechanism.interval, on the poll's connection; a
        failure is said and waits for the next interval, never failing the poll."""
        assert self.mechanism is not None
        assert self._conn is not None
        db = self.config.file.database
        try:
            with Deadline(self._conn, db.statement_timeout + POLL_GRACE):
                state = self.mechanism.maybe_probe(self._conn)
        except psycopg.Error as exc:
            log.warning("mechanism probe failed: %s", first_line(exc))
            return
        if state is not None:
            self.evaluator.mechanism = state

    def _save(self) -> None:
        if not self._started:
            return
        outboxes = self.dispatcher.snapshot()
        self.state.write({"tracks": self.evaluator.snapshot(), "outboxes": outboxes})

    def run(self) -> None:
        """Poll until :attr:`stop_event` is set. A database that is away is waited for; tables
        that the first poll cannot read are a :class:`ConfigError`."""
        interval = self.config.file.poll_interval
        # Rendering after a poll holds the GIL for tens of milliseconds; a short switch interval
        # lets a scrape arriving meanwhile be served from the cache without waiting for it.
        sys.setswitchinterval(0.0005)
        failures = 0
        while not self.stop_event.is_set():
            self._apply_reload()
            if self.listener is not None:
                self.listener.before_poll()  # hearing of commits again before the snapshot
            woken = self.pacer.started()  # before the poll's snapshot: wakes are served
            try:
                result = self.poll_once(catch_up=woken)
            except _SCHEMA_ERRORS as exc:
                if self.store.last_poll_timestamp == 0:
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
                self.pacer.wait()  # the interval, or less once the database notifies new rows

    def _poll_failed(self, exc: BaseException, failures: int, interval: float) -> int:
        """Record a failed poll, drop the connection and wait with backoff; returns failures."""
        failures += 1
        reason = poll_error_reason(exc)
        self.store.poll_failed(reason)
        self.exposition.refresh(self.database)
        self._drop_connection()
        # Capped relative to the poll interval: back within a few polls of the database.
        cap = min(self.reconnect.cap, max(1.0, 3 * interval))
        delay = max(interval, dataclasses.replace(self.reconnect, cap=cap).delay(failures))
        text = first_line(exc) if isinstance(exc, psycopg.Error) else str(exc)
        log.warning("poll failed (%s: %s); retrying in %.1fs", reason, text, delay)
        self._nudge.wait(delay)
        self._nudge.clear()
        return failures

    # -- reloading ---------------------------------------------------------------------------
    def request_reload(self, source: str) -> None:
        """Reload soon, in a thread of its own: safe to call from a signal handler (a
        SimpleQueue's put is reentrant; nothing else is done here)."""
        self._reload_requests.put(source)

    def _reload_loop(self) -> None:
        while (source := self._reload_requests.get()) is not None:
            self.reload(source)

    def _reload_over_http(self) -> tuple[bool, str]:
        return self.reload("POST /-/reload")

    def reload(self, source: str, loaded: Config | None = None) -> tuple[bool, str]:
        """Load the configuration again (or take ``loaded``, which a fleet has read once for
        all its databases); if it is valid, the poll thread applies what can change live
        before its next poll. Returns whether it was valid and, in one line, what it does or
        what is wrong (also logged, and exported by the reload metrics)."""
        with self._reload_lock:
            try:
                loaded = self._reload_from() if loaded is None else loaded
            except CbmonError as exc:
                self.reload_failed(source, exc)
                return False, not_reloaded(exc)
            secrets.learn(secrets_of(loaded))  # a rotated secret is masked before it is used
            outcome = plan(self._latest, loaded)
            if outcome.changed:
                self._latest = self._pending = outcome.config
            self.reloads.succeeded(self.clock.wall())
        said = outcome.summary()
        log.log(
            logging.WARNING if outcome.kept else logging.INFO,
            "configuration reloaded (%s) from %s: %s",
            source,
            loaded.source,
            said,
        )
        if outcome.changed:
            self.pacer.wake()  # the next poll, with what changed, comes at once
            self._nudge.set()
        return True, said

    def reload_failed(self, source: str, exc: CbmonError) -> None:
        """A reload found the configuration invalid: said, exported, and nothing changes."""
        self.reloads.failed()
        log.error(
            "configuration not reloaded (%s); the running one is kept: %s",
            source,
            not_reloaded(exc),
        )

    def _apply_reload(self) -> None:
        """On the poll thread, between polls: what a reload accepted takes effect."""
        with self._reload_lock:
            config, self._pending = self._pending, None
        if config is None:
            return
        if config.file.alerting.webhooks != self.config.file.alerting.webhooks:
            self._said = None  # who sends the webhooks is said again at the next check
        self.config = config
        if self.mechanism is not None:
            self.mechanism.settings = Settings.of(config)
        self.evaluator.reconfigure(config)
        self.dispatcher.reconfigure(config, self.evaluator.current)
        alerting = config.file.alerting
        self.alertmanagers.reconfigure(
            alerting.alertmanagers,
            timeout=alerting.timeout,
            resend_interval=alerting.resend_interval,
            ca_file=alerting.ca_file,
        )
        self._save()
        self.exposition.refresh(self.database)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error as exc:
                log.debug("closing a broken connection: %s", first_line(exc))
            self._conn = None

    def stop(self) -> None:
        """Ask :meth:`run` to return, at once: waits on the database are cut short."""
        self.stop_event.set()
        self._nudge.set()
        self.pacer.stop()
        if self._conn is not None:
            sever(self._conn)
        self.poller.fences.interrupt()
        self.leadership.interrupt()
        if self.listener is not None:
            self.listener.stop()

    def close(self) -> None:
        self.stop_event.set()
        self.pacer.stop()
        self._reload_requests.put(None)
        if self._reloader.is_alive():
            self._reloader.join(timeout=2)
        if self.listener is not None:
            self.listener.stop()
            self.listener.join()
        if self.server is not None:
            self.server.stop()
        self.dispatcher.close()
        self.alertmanagers.stop()
        self._save()
        self._drop_connection()
        self.leadership.close()  # the lock is free for another at once (a fleet lives on)
        self.poller.fences.close()


def not_reloaded(exc: CbmonError) -> str:
    """Why a reload was refused, in one line and without a secret."""
    return "; ".join(secrets.scrub(str(exc)).splitlines())


def _log_transitions(notes: list[Notification], changes: list[Transition]) -> None:
    """Every replica logs what changes, whether or not it sends the notifications: what is
    notified, and the changes no notification carries (no data, data back)."""
    for note in notes:
        for alert in note.alerts:
            scope = f" event_type={alert.event_type}" if alert.event_type else ""
            level = logging.DEBUG if note.repeat else logging.INFO
            log.log(
                level,
                "alert %s %s %s%s: %s",
                alert.status,
                alert.alertname,
                alert.severity,
                scope,
                alert.summary,
            )
    for change in reversed(changes):  # oldest first, like the notes
        if change.change in ("no_data", "data_back"):
            scope = f" event_type={change.event_type}" if change.event_type else ""
            log.info(
                "alert %s %s %s%s: %s",
                change.change.replace("_", " "),
                change.alertname,
                change.severity,
                scope,
                change.summary,
            )


def start_server(
    config: Config,
    exposition: Exposition,
    readiness: Readiness,
    pages: Pages,
    reload: Reload | None,
) -> MetricsServer:
    """The HTTP server of ``config`` (its listen address and web configuration), started."""
    host, port = parse_listen(config.file.listen)
    web, tls = None, None
    path = config.file.web_config_file
    if path is not None:
        web = webconfig.load(path)
        tls = webconfig.context(web, path.parent)
    try:
        server = MetricsServer(
            (host, port), exposition, readiness, web, tls, pages=pages, reload=reload
        )
    except OSError as exc:
        raise CbmonError(f"cannot listen on {config.file.listen}: {exc.strerror}") from None
    server.start()
    return server
