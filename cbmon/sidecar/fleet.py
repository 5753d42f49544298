"""``cbmon serve`` with ``targets:``: several databases in one process.

Each database has its own pipeline (a :class:`~cbmon.sidecar.service.Service`: poller,
store, evaluator, leader lock, dispatcher, Alertmanager sender, state file) polled by a
thread of its own, so a slow or dead database never delays another's polls. One HTTP server
serves them all: ``/metrics`` merges their families, each sample labelled ``database``
(:class:`~cbmon.web.exposition.ByDatabase`), ``/`` shows the fleet worst first, and each
database has its pages under ``/databases/NAME/``.

A reload (SIGHUP, ``POST /-/reload``) reads the file once for them all: a database still
listed reloads as one ``cbmon serve`` does, one newly listed starts polling, one no longer
listed stops (its state file keeps its alerts, should it come back), and one whose DSN changed
starts again on the new one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from cbmon import scope
from cbmon.config import Config
from cbmon.errors import CbmonError, ConfigError
from cbmon.sidecar.service import Service, not_reloaded, start_server
from cbmon.web import status
from cbmon.web.exposition import ByDatabase, Exposition
from cbmon.web.pages import FleetPages
from cbmon.web.server import MetricsServer

log = logging.getLogger(__name__)

STOP_WAIT = 2.0  # seconds, for every poll thread together


class Fleet:
    def __init__(
        self,
        config: Config,
        *,
        reload_from: Callable[[], Config] | None = None,
        lifecycle: bool = False,
    ) -> None:
        if not config.fleet:
            raise ConfigError(f"{config.source}: targets: lists no database")
        self.config = config
        self._load = reload_from or (lambda: config)
        # Replaced whole, never changed in place: a scrape or a page reads one list.
        self.services = [self._service(target) for target in config.fleet]
        self._live = ByDatabase({})
        live, process = CollectorRegistry(), CollectorRegistry()
        live.register(self._live)
        ProcessCollector(registry=process)
        self.exposition = Exposition({}, live, process)
        self._exported()
        self._lifecycle = lifecycle
        self.stop_event = threading.Event()
        self.server: MetricsServer | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._reload_lock = threading.Lock()
        self._reload_requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reloader = threading.Thread(target=self._reload_loop, name="reload", daemon=True)

    @staticmethod
    def _service(target: Config) -> Service:
        # No reload_from: the fleet reads the file once and hands each its part (reload).
        return Service(target)

    def _exported(self) -> None:
        """Export what the services listed now export, and let each poll refresh it all."""
        services = self.services
        self._live.registries = {s.database: s.live for s in services}
        for service in services:
            service.exposition = self.exposition  # each poll refreshes its part of the fleet's
        self.exposition.set_polled({s.database: s.polled for s in services})

    def readiness(self) -> tuple[bool, str]:
        """Ready while any database is: one database down must not take the others' metrics
        out of a load balancer. The reason names those that are not."""
        answers = [(s.database, *s.readiness()) for s in self.services]
        ready = [name for name, ok, _ in answers if ok]
        not_ready = [f"{name}: {reason}" for name, ok, reason in answers if not ok]
        said = f"{len(ready)} of {len(answers)} databases ready"
        return bool(ready), "; ".join([said, *not_ready])

    def snapshots(self) -> list[status.Snapshot]:
        return [service.status() for service in self.services]

    def start(self) -> MetricsServer:
        for service in self.services:
            self._start_pipeline(service)
        self.server = start_server(
            self.config,
            self.exposition,
            self.readiness,
            FleetPages(self.snapshots),
            self._reload_over_http if self._lifecycle else None,
        )
        self._reloader.start()
        return self.server

    @staticmethod
    def _start_pipeline(service: Service) -> None:
        # What it says on starting is about it, and so is every thread it starts.
        with scope.scoped(service.database):
            service.start_pipeline()

    def run(self) -> None:
        """Poll every database, each in its own thread, until :meth:`stop`."""
        for service in self.services:
            self._start_polling(service)
        self.stop_event.wait()
        # A poll in flight is cut short by stop(); a connection attempt to a database that
        # hangs is not, and is left behind (its thread is a daemon) rather than waited for.
        deadline = time.monotonic() + STOP_WAIT
        for thread in list(self._threads.values()):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.info("%s: still waiting on its database; not waited for", thread.name)

    def _start_polling(self, service: Service) -> None:
        running = self._threads.get(service.database)
        if running is not None and running.is_alive():
            return  # started by a reload that came before run()
        thread = threading.Thread(
            target=self._poll, args=(service,), name=f"poll {service.database}", daemon=True
        )
        self._threads[service.database] = thread
        thread.start()

    @staticmethod
    def _poll(service: Service) -> None:
        scope.enter(service.database)
        try:
            service.run()
        except CbmonError as exc:
            # The others go on; this one stays down, on its page and in cbmon_database_up.
            log.error("no longer polled: %s", exc)  # the line names the database

    # -- reloading ---------------------------------------------------------------------------
    def request_reload(self, source: str) -> None:
        """Reload soon, in the fleet's reload thread: safe from a signal handler."""
        self._reload_requests.put(source)

    def _reload_loop(self) -> None:
        while (source := self._reload_requests.get()) is not None:
            self.reload(source)

    def _reload_over_http(self) -> tuple[bool, str]:
        return self.reload("POST /-/reload")

    def reload(self, source: str) -> tuple[bool, str]:
        """Read the file once; reload each database still listed, start those newly listed,
        stop those no longer listed. Returns whether the file was valid and what it did, one
        ``name: what`` per database."""
        with self._reload_lock:
            try:
                loaded = self._load()
                if not loaded.fleet:
                    raise ConfigError(
                        f"{loaded.source}: targets: lists no database; a fleet stays one "
                        "until a restart"
                    )
            except CbmonError as exc:
                for service in self.services:
                    with scope.scoped(service.database):
                        service.reload_failed(source, exc)
                return False, not_reloaded(exc)
            return True, self._reconcile(source, {t.database: t for t in loaded.fleet})

    def _reconcile(self, source: str, targets: dict[str, Config]) -> str:
        running = {service.database: service for service in self.services}
        gone = [name for name in running if name not in targets]
        # A database whose DSN changed is another database under the same name: started
        # again on the new DSN (with its state file, which follows the DSN).
        moved = [n for n in running if n in targets and targets[n].dsn != running[n].config.dsn]
        said: dict[str, str] = {}
        for name in gone + moved:
            self._retire(running[name], moved=name in moved)
            said[name] = "removed" if name in gone else "started again on its new DSN"
        for name, target in targets.items():
            if name in running and name not in moved:
                with scope.scoped(name):
                    said[name] = running[name].reload(source, target)[1]
        kept = [running[name] for name in running if name not in gone and name not in moved]
        born = []
        for name in [n for n in targets if n not in running or n in moved]:
            with scope.scoped(name):
                try:
                    service = self._service(targets[name])
                    service.start_pipeline()
                except CbmonError as exc:
                    said[name] = f"not started: {not_reloaded(exc)}"
                    log.error("not polled: %s", not_reloaded(exc))
                    continue
                if name not in moved:
                    said[name] = "added"
                    log.info("added to the fleet (%s): polled from now on", source)
            born.append(service)
        order = list(targets)
        self.services = sorted([*kept, *born], key=lambda s: order.index(s.database))
        self._exported()
        if not self.stop_event.is_set():
            for service in born:
                self._start_polling(service)
        return "; ".join(f"{name}: {said[name]}" for name in [*targets, *gone])

    def _retire(self, service: Service, *, moved: bool) -> None:
        """Stop polling ``service`` for good; its alerts stay in its state file."""
        with scope.scoped(service.database):
            firing = len(service.evaluator.tracker.active())
            service.stop()
            thread = self._threads.pop(service.database, None)
            if thread is not None:
                thread.join(timeout=STOP_WAIT)
            service.close()
            if moved:
                log.info("a new DSN: polled again from there")
            else:
                log.warning(
                    "removed from the fleet: no longer polled or exported; %d alert(s) it had "
                    "firing are neither resolved nor sent again from here (its state file keeps "
                    "them, should it be listed again)",
                    firing,
                )

    def stop(self) -> None:
        self.stop_event.set()
        for service in self.services:
            with scope.scoped(service.database):
                service.stop()

    def close(self) -> None:
        self.stop_event.set()
        self._reload_requests.put(None)
        if self._reloader.is_alive():
            self._reloader.join(timeout=2)
        if self.server is not None:
            self.server.stop()
        for service in self.services:
            with scope.scoped(service.database):
                service.close()
