"""``cbmon demo``: the whole callback system and cbmon watching it, in one process.

An embedded PostgreSQL (or ``--dsn``) holds the reference mechanism in a schema of its own,
recreated each run. Orders flow in, the router queues callbacks, reference workers deliver them
to local receivers that behave as the scenario says, and the sidecar polls the tables, serves
``/metrics``, judges the baseline and sends signed alerts to a local alert receiver. Everything
runs in threads of this process; each part is stopped and joined on the way out, in reverse
order of starting, whatever ends the run (the duration, Ctrl-C, SIGTERM or an error).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import queue
import signal
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import psycopg
from psycopg import sql

from cbmon import present
from cbmon.config import Config, load_config, parse_listen
from cbmon.db.connect import connect, describe, first_line
from cbmon.db.embedded import BACKENDS, DataDirInUse, EmbeddedPostgres, default_data_dir
from cbmon.delivery import signing
from cbmon.demo import summary
from cbmon.demo.receivers import PATHS, AlertEvent, AlertReceiver, CallbackReceivers
from cbmon.demo.scenario import (
    DEFAULT_CYCLE,
    FROZEN_LEASE,
    SCENARIOS,
    Conditions,
    Scenario,
    shortest_cycle,
    slo_window,
)
from cbmon.demo.traffic import Traffic
from cbmon.demo.view import CallbackTotals, LiveView, Snapshot, clock
from cbmon.demo.workers import FreezingWorker, LeasedOptions
from cbmon.durations import format_duration
from cbmon.errors import CbmonError, ConfigError, DatabaseError
from cbmon.ingest.store import View as StoreView
from cbmon.reference import mechanism
from cbmon.reference.worker import Worker, WorkerOptions
from cbmon.sidecar.service import Service

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9863"
DEFAULT_SCHEMA = "cbmon_demo"
EXECUTOR_ROLE = "cbmon_demo_executor"  # the mechanism's NOLOGIN role; the user's own is untouched
# Short settings so alerts fire and resolve within a demo of a minute or two.
POLL_INTERVAL = "1s"
FOR = "5s"
MIN_EVENTS = 10
# Retries come quickly in the demo (0.5 s, 1 s, 2 s), so they land within the SLO window.
RETRY_POLICY = json.dumps(
    {"max_retries": 3, "backoff": "exponential", "backoff_seconds": 0.5, "max_backoff_seconds": 5}
)
REFRESH = 0.5  # seconds between redraws of the live view
SPARE_DATA_DIRS = 8  # pgdata-2 ... pgdata-9 beside the default, for demos run side by side
JOIN_GRACE = 2.0  # seconds workers get to finish the delivery in hand before receivers let go

# Loggers whose routine messages (retries given up, alerts sent, server start) the live view
# already shows; they are lowered to warnings unless the user asked for debug output.
_CHATTY = {
    "cbmon.reference.worker": logging.ERROR,
    "cbmon.sidecar.evaluator": logging.WARNING,
    "cbmon.delivery.dispatcher": logging.WARNING,
    "cbmon.sidecar.service": logging.WARNING,
    "cbmon.db.embedded": logging.WARNING,
    "cbmon.delivery.leader": logging.WARNING,
    "cbmon.ingest.wake": logging.WARNING,
}


@dataclass(frozen=True)
class DemoOptions:
    scenario: str = "degraded"
    duration: float | None = None  # None: until Ctrl-C, the scenario repeating
    listen: str | None = None  # None: DEFAULT_LISTEN, or a free port when another demo has it
    dsn: str | None = None  # None: an embedded PostgreSQL in data_dir
    schema: str = DEFAULT_SCHEMA
    data_dir: Path | None = None
    workers: int = 8
    live: bool | None = None  # None: a redrawn panel when the output is a terminal
    every: float = 5.0  # seconds between status lines when not live


def reserve_listen(listen: str | None) -> str:
    """``listen`` with a concrete port, after checking it is free (port 0: one is picked).

    Checked before anything starts, so a taken port costs the user one line and no wait.
    Without ``listen``, the default port, or a free one when the default is taken (by
    another demo, say): only a port the user asked for is worth refusing over.
    """
    if listen is None:
        try:
            return reserve_listen(DEFAULT_LISTEN)
        except ConfigError:
            host, _ = parse_listen(DEFAULT_LISTEN)
            return reserve_listen(f"{host}:0")
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"--listen {listen}: address already in use; "
                    "pass --listen 127.0.0.1:0 for a free port"
                ) from None
            raise ConfigError(f"--listen {listen}: {exc.strerror or exc}") from None
        port = int(sock.getsockname()[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop``; a second Ctrl-C while stopping interrupts for good."""
    signals = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    # The embedded server's package also logs when the interpreter exits (its atexit hook):
    # it stays quiet for good
    for package in BACKENDS:
        logging.getLogger(package).setLevel(logging.WARNING)
    saved = {name: logging.getLogger(name).level for name in _CHATTY}
    for name, level in _CHATTY.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def demo_lock_key(schema: str) -> int:
    """The advisory lock a demo holds on its schema while it runs: a signed 64-bit key."""
    digest = hashlib.sha256(f"cbmon demo schema {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def demo_config(
    dsn: str, listen: str, schema: str, window: float, alerts: AlertReceiver, state_dir: Path
) -> Config:
    tables = {table: {"schema": schema} for table in ("logs", "errors", "queue")}
    overrides = {
        "listen": listen,
        "poll_interval": POLL_INTERVAL,
        "tables": tables,
        "slo": {"window": format_duration(window), "for": FOR, "min_events": MIN_EVENTS},
        # A run starts afresh: its alert state lives as long as the run.
        "alerting": {"webhooks": [alerts.url], "timeout": "2s", "state_dir": str(state_dir)},
        # Probed every 2 s; the NOTIFY queue (8 GB) judged against tiny limits, so that a
        # listener stuck for a minute shows (the defaults are 50 % and 90 %).
        "mechanism": {
            "interval": "2s",
            "listeners": [{"channel": "callback_queue", "application_name": DEMO_LISTENER}],
            "notify_queue_usage": {"normal": "0.0001%", "alert": "0.001%"},
        },
    }
    # environ={}: the demo's settings are its own, whatever CBMON_* says
    return load_config(overrides=overrides, dsn=dsn, webhook_secret=alerts.secret, environ={})


DEMO_LISTENER = "cbmon-demo-worker-1"


class Demo:
    """One run. :meth:`run` returns the exit code."""

    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        if options.scenario not in SCENARIOS:
            raise ConfigError(
                f"--scenario: {options.scenario!r} is not one of {', '.join(SCENARIOS)}"
            )
        if options.duration is not None and options.duration <= 0:
            raise ConfigError("--duration: must be above 0s")
        if options.workers < 1:
            raise ConfigError("--workers: must be at least 1")
        self.options = options
        self.out = out
        self.scenario: Scenario = SCENARIOS[options.scenario]
        self.cycle = options.duration or DEFAULT_CYCLE
        self.window = slo_window(self.cycle)
        self.stop = threading.Event()  # the user's stop, or the duration's end
        self.started = time.monotonic()
        live = out.isatty() if options.live is None else options.live
        self.view = LiveView(out, live=live, every=options.every)
        self.data_dir: Path | None = None
        self.events: queue.Queue[AlertEvent] = queue.Queue()
        self.traffic: Traffic | None = None
        self.scheduler_job: str | None = None
        self.freezing: FreezingWorker | None = None  # the worker the scenario stops, if any
        self._held: int | None = None  # the callback it held when last looked at

    # -- helpers -----------------------------------------------------------------------------
    def say(self, text: str, indent: str = "    ") -> None:
        """Lines that stay on screen, wrapped to the terminal by the view."""
        for line in text.splitlines():
            self.view.note(line, indent)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def conditions(self, elapsed: float | None = None) -> Conditions:
        at = self.elapsed() if elapsed is None else elapsed
        if self.options.duration is not None:
            at = min(at, self.options.duration * 0.999)  # the last moment is still the last phase
        return self.scenario.at(at, self.cycle)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> int:
        listen = reserve_listen(self.options.listen)
        with stop_on_signals(self.stop), quiet_logs(), ExitStack() as database:
            dsn = self.options.dsn or self._embedded(database)
            if self.stop.is_set():
                return 0
            self._hold_schema(database, dsn)
            self._prepare_schema(dsn)
            # Leaving this block stops the parts newest first: traffic, workers, the sidecar,
            # the receivers. The database stays up for the summary.
            with ExitStack() as parts:
                receivers, alerts = self._receivers(parts)
                self._route(dsn, receivers)
                state = Path(parts.enter_context(tempfile.TemporaryDirectory(prefix="cbmon-demo-")))
                config = demo_config(dsn, listen, self.options.schema, self.window, alerts, state)
                service = self._service(parts, config)
                self._workers(parts, dsn, receivers)
                self.started = time.monotonic()
                self._traffic(parts, dsn)
                self._header(dsn, service, receivers, alerts)
                self._loop(service, alerts)
                elapsed = self.elapsed()
                self.view.close()
                self.say(f"stopping after {clock(elapsed)} ...")
            return self._summary(config, alerts, elapsed)

    def _embedded(self, database: ExitStack) -> str:
        """Start an embedded server on a data directory no other demo is using.

        The default directory has spares beside it, so demos run side by side each get their
        own; a directory given with ``--data-dir`` is used only when nobody else holds it.
        """
        chosen = self.options.data_dir
        default = default_data_dir()
        candidates = (
            [chosen]
            if chosen is not None
            else [default]
            + [default.with_name(f"{default.name}-{n}") for n in range(2, SPARE_DATA_DIRS + 2)]
        )
        refusals = []
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver copes without it
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            for data_dir in candidates:
                server = EmbeddedPostgres(data_dir, exclusive=True)
                try:
                    server.lock()
                except DataDirInUse as exc:
                    refusals.append(str(exc))
                    continue
                database.callback(server.stop)  # releases the lock even if start fails
                self.say(f"starting the embedded PostgreSQL (data in {data_dir}) ...")
                server.start()
                self.data_dir = data_dir
                return server.dsn
        where = "--data-dir" if chosen is not None else "every demo data directory"
        raise DataDirInUse(f"{where}: {refusals[-1]}" + ("" if chosen else "; pass --data-dir"))

    def _hold_schema(self, database: ExitStack, dsn: str) -> None:
        """Hold the schema for this run: a second demo on the same database and schema would
        drop the tables this one is using."""
        conn = connect(dsn, statement_timeout=30, application_name="cbmon demo", read_only=False)
        database.callback(conn.close)
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s)", [demo_lock_key(self.options.schema)]
            ).fetchone()
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot lock schema {self.options.schema}: {first_line(exc)}"
            ) from None
        if row is None or not row[0]:
            raise ConfigError(
                f"--schema {self.options.schema}: another cbmon demo is using this schema on "
                "this database; pass another --schema"
            )

    def _prepare_schema(self, dsn: str) -> None:
        """Drop and recreate the demo's schema, so each run starts from empty tables."""
        conn = connect(dsn, statement_timeout=60, application_name="cbmon demo", read_only=False)
        try:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.options.schema)
                )
            )
        finally:
            conn.close()
        installed = mechanism.apply(
            dsn,
            schema=self.options.schema,
            executor_role=EXECUTOR_ROLE,
            signatures=False,
            wake=True,  # alerts within a fraction of a second of the rows that cause them
        )
        self.scheduler_job = installed.scheduler_job  # where pg_cron runs the reference job

    def _receivers(self, stack: ExitStack) -> tuple[CallbackReceivers, AlertReceiver]:
        release = threading.Event()
        receivers = CallbackReceivers(
            signing.new_secret(), lambda: self.conditions().phase, release
        )
        receivers.start()
        stack.callback(receivers.close)
        stack.callback(release.set)
        alerts = AlertReceiver(signing.new_secret(), self.events.put)
        alerts.start()
        stack.callback(alerts.close)
        return receivers, alerts

    def _route(self, dsn: str, receivers: CallbackReceivers) -> None:
        conn = connect(dsn, statement_timeout=30, application_name="cbmon demo", read_only=False)
        try:
            router = sql.SQL("{}.callback_router").format(sql.Identifier(self.options.schema))
            for event_type in PATHS.values():
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET target_url = %s, retry_policy = %s::jsonb"
                        " WHERE event_type = %s"
                    ).format(router),
                    (receivers.url(event_type), RETRY_POLICY, event_type),
                )
        finally:
            conn.close()

    def _service(self, stack: ExitStack, config: Config) -> Service:
        service = Service(config)
        stack.callback(service.close)
        service.start()
        thread = threading.Thread(target=service.run, name="cbmon poller")
        thread.start()
        stack.callback(thread.join)
        stack.callback(service.stop_event.set)
        return service

    def _workers(self, stack: ExitStack, dsn: str, receivers: CallbackReceivers) -> None:
        stop = threading.Event()
        options = WorkerOptions(
            secret=receivers.secret, timeout=5.0, poll_interval=1.0, batch_size=5
        )
        threads = []
        freezes = any(phase.freeze_worker for phase in self.scenario.phases)
        for number in range(1, self.options.workers + 1):
            name = f"cbmon-demo-worker-{number}"
            worker: Worker
            if freezes and number == 1:
                # the one the scenario stops mid-delivery: one claim at a time, a short lease
                leased = LeasedOptions(
                    secret=receivers.secret,
                    timeout=5.0,
                    poll_interval=1.0,
                    batch_size=1,
                    lease=FROZEN_LEASE,
                )
                worker = self.freezing = FreezingWorker(
                    dsn,
                    frozen=lambda: self.conditions().phase.freeze_worker,
                    schema=self.options.schema,
                    options=leased,
                    stop=stop,
                    name=name,
                )
            else:
                worker = Worker(
                    dsn, schema=self.options.schema, options=options, stop=stop, name=name
                )
            stack.callback(worker.close)
            worker.check_tables()
            threads.append(threading.Thread(target=worker.run, name=worker.name))

        def stop_workers() -> None:
            stop.set()
            deadline = time.monotonic() + JOIN_GRACE
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            receivers.stop.set()  # a stalled receiver answers now, so no worker waits it out
            for thread in threads:
                thread.join()

        for thread in threads:
            thread.start()
        stack.callback(stop_workers)

    def _traffic(self, stack: ExitStack, dsn: str) -> None:
        stop = threading.Event()
        traffic = Traffic(dsn, self.options.schema, self.conditions, stop, job=self.scheduler_job)
        thread = threading.Thread(target=traffic.run, name="cbmon demo traffic")
        thread.start()
        self.traffic = traffic

        def stop_traffic() -> None:
            stop.set()
            thread.join()

        stack.callback(stop_traffic)

    # -- what the user sees ------------------------------------------------------------------
    def _header(
        self,
        dsn: str,
        service: Service,
        receivers: CallbackReceivers,
        alerts: AlertReceiver,
    ) -> None:
        o = self.options
        length = (
            f"for {format_duration(o.duration)}"
            if o.duration
            else f"until Ctrl-C (the scenario repeats every {format_duration(self.cycle)})"
        )
        # the embedded server trusts local socket connections, so its DSN holds no secret
        where = f"embedded PostgreSQL {dsn}" if o.dsn is None else describe(dsn)
        assert service.server is not None
        t = service.config.thresholds
        url = service.server.url
        lines = [
            f"cbmon demo: scenario {self.scenario.name} ({self.scenario.summary}), "
            f"running {length}",
            f"  status     {url}/   (the status page, for a browser; JSON at /api/v1/status)",
            f"  metrics    {url}/metrics   (Prometheus; also /healthz, /readyz)",
            f"  database   {where}, schema {o.schema}",
            f"  receivers  {receivers.base_url}{', '.join(PATHS)}   "
            f"({o.workers} workers, signed deliveries)",
            f"  alerts     {alerts.url}   (signed with a fresh secret, verified on receipt)",
            f"  SLO        window {format_duration(self.window)}, for {FOR}, poll every "
            f"{POLL_INTERVAL}, judged from {MIN_EVENTS} calls",
            f"  ok         success > {present.percent(t.success_rate.normal)}, avg < "
            f"{present.millis(t.avg_latency.normal)}, backlog < {t.backlog.normal}",
            f"  critical   success < {present.percent(t.success_rate.alert)}, avg > "
            f"{present.millis(t.avg_latency.alert)}, backlog > {t.backlog.alert}",
        ]
        end = service.config.baseline.limit("end_to_end_p95")
        if end is not None:
            alert = "" if end.alert is None else f", critical > {format_duration(end.alert)}"
            lines.append(
                f"  callbacks  3 retries (0.5s, 1s, 2s), then a dead letter (a warning); end to "
                f"end p95 ok < {format_duration(end.normal)}{alert}"
            )
        if o.listen is None and service.server.address != DEFAULT_LISTEN:
            lines.append(
                f"  note: {DEFAULT_LISTEN} is taken (another demo?), so this one serves on "
                f"{service.server.address}"
            )
        if self.cycle < shortest_cycle(self.scenario):
            lines.append(
                f"  note: {format_duration(self.cycle)} is short for this scenario; alerts "
                f"need about {format_duration(shortest_cycle(self.scenario))} to fire and resolve"
            )
        lines.append("  Ctrl-C stops everything and prints a summary.")
        # continuation lines start under the values, after the labels' column
        self.say("\n".join(lines), indent=" " * 13)

    def _snapshot(self, service: Service, alerts: AlertReceiver) -> Snapshot:
        view = service.store.view()
        counts = alerts.snapshot()
        phase = self.conditions().phase
        return Snapshot(
            elapsed=self.elapsed(),
            duration=self.options.duration,
            scenario=self.scenario.name,
            phase=phase.name,
            phase_text=phase.describe(),
            indicators=service.evaluator.indicators(),
            calls={label: (t.attempts, t.failures) for label, t in view.figures.items()},
            backlog=view.backlog,
            database_up=view.database_up,
            fired=counts.fired,
            resolved=counts.resolved,
            firing=counts.firing,
            window=self.window,
            baseline=service.config.baseline,
            callbacks=self._callbacks(view),
        )

    @staticmethod
    def _callbacks(view: StoreView) -> CallbackTotals | None:
        """Callbacks since the start and the queue by state, where the tables tell them."""
        if view.features is None or not view.features.outcomes:
            return None
        totals = [f.callbacks for f in view.figures.values()]
        return CallbackTotals(
            delivered=sum(c.delivered for c in totals),
            dead=sum(c.dead for c in totals),
            duplicates=sum(c.duplicates for c in totals),
            states=view.queue_states,
        )

    def _loop(self, service: Service, alerts: AlertReceiver) -> None:
        duration = self.options.duration
        phase = ""
        while True:
            elapsed = self.elapsed()
            if duration is not None and elapsed >= duration:
                break
            current = self.conditions(elapsed).phase
            if current.name != phase:
                phase = current.name
                self.view.note(f"[{clock(elapsed)}] phase {phase}: {current.describe()}")
            while not self.events.empty():
                self.view.alert(self.events.get_nowait(), elapsed)
            self._watch_frozen(elapsed)
            self.view.update(self._snapshot(service, alerts))
            if self.traffic is not None and self.traffic.failure is not None:
                raise DatabaseError(f"demo traffic failed: {self.traffic.failure}")
            wait = REFRESH if duration is None else min(REFRESH, duration - elapsed)
            if self.stop.wait(max(0.0, wait)):
                break
        while not self.events.empty():
            self.view.alert(self.events.get_nowait(), self.elapsed())
        self.view.update(self._snapshot(service, alerts), force=True)

    def _watch_frozen(self, elapsed: float) -> None:
        """Say when the stopped worker stops, and when it comes back."""
        worker = self.freezing
        if worker is None:
            return
        holding = worker.holding
        if holding == self._held:
            return
        if holding is not None:
            self.view.note(
                f"[{clock(elapsed)}] {worker.name} stops after delivering callback {holding}, "
                f"before recording it (as if killed): the callback stays in flight, then "
                f"stuck once its {format_duration(FROZEN_LEASE)} lease runs out, and another "
                "worker delivers it again"
            )
        else:
            self.view.note(
                f"[{clock(elapsed)}] {worker.name} is back and records its delivery of "
                f"callback {self._held}: a second successful attempt, counted as a duplicate"
            )
        self._held = holding

    def _summary(self, config: Config, alerts: AlertReceiver, elapsed: float) -> int:
        try:
            report = summary.fetch(config, elapsed + 60.0)
        except CbmonError as exc:
            self.say(f"no summary: {exc}")
            return 1
        self.say("\n".join(summary.render(report, alerts.snapshot(), self.options.schema)))
        if self.options.dsn is not None:
            self.say(
                f"The demo's tables stay in schema {self.options.schema} "
                f"(DROP SCHEMA {self.options.schema} CASCADE removes them)."
            )
        return 0


def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Run the demo, writing to ``out``; the exit code."""
    return Demo(options, out).run()
