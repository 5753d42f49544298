"""``cbmon serve`` with ``targets:``: several databases in one process.

Each database has its own pipeline (a :class:`~cbmon.sidecar.service.Service`: poller,
store, evaluator, leader lock, dispatcher, Alertmanager sender, state file) polled by a
thread of its own, so a slow or dead database never delays another's polls. One HTTP server
serves them all: ``/metrics`` merges their families, each sample labelled ``database``
(:class:`~cbmon.web.exposition.ByDatabase`), ``/`` shows the fleet worst first, and each
database has its pages under ``/databases/NAME/``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.process_collector import ProcessCollector

from cbmon import scope
from cbmon.config import Config
from cbmon.errors import CbmonError, ConfigError
from cbmon.sidecar.service import Service, start_server
from cbmon.web import status
from cbmon.web.exposition import Exposition, by_database
from cbmon.web.pages import FleetPages
from cbmon.web.server import MetricsServer

log = logging.getLogger(__name__)

STOP_WAIT = 2.0  # seconds, for every poll thread together


def _target(load: Callable[[], Config], name: str) -> Callable[[], Config]:
    """Loads the configuration again and picks one database's out of it."""

    def reload() -> Config:
        for target in load().fleet:
            if target.database == name:
                return target
        raise ConfigError(f"targets: {name} is no longer listed; restart cbmon to remove it")

    return reload


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
        load = reload_from or (lambda: config)
        self.services = [
            Service(target, reload_from=_target(load, target.database)) for target in config.fleet
        ]
        process = CollectorRegistry()
        ProcessCollector(registry=process)
        self.exposition = Exposition(
            by_database({s.database: s.polled for s in self.services}),
            by_database({s.database: s.live for s in self.services}),
            process,
        )
        for service in self.services:
            service.exposition = self.exposition  # each poll refreshes the fleet's
        self._lifecycle = lifecycle
        self.stop_event = threading.Event()
        self.server: MetricsServer | None = None
        self._threads: list[threading.Thread] = []

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
            # What it says on starting is about it, and so is every thread it starts.
            with scope.scoped(service.database):
                service.start_pipeline()
        self.server = start_server(
            self.config,
            self.exposition,
            self.readiness,
            FleetPages(self.snapshots),
            self._reload_over_http if self._lifecycle else None,
        )
        return self.server

    def run(self) -> None:
        """Poll every database, each in its own thread, until :meth:`stop`."""
        for service in self.services:
            thread = threading.Thread(
                target=self._poll, args=(service,), name=f"poll {service.database}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self.stop_event.wait()
        # A poll in flight is cut short by stop(); a connection attempt to a database that
        # hangs is not, and is left behind (its thread is a daemon) rather than waited for.
        deadline = time.monotonic() + STOP_WAIT
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.info("%s: still waiting on its database; not waited for", thread.name)

    @staticmethod
    def _poll(service: Service) -> None:
        scope.enter(service.database)
        try:
            service.run()
        except CbmonError as exc:
            # The others go on; this one stays down, on its page and in cbmon_database_up.
            log.error("database %s is no longer polled: %s", service.database, exc)

    def request_reload(self, source: str) -> None:
        for service in self.services:
            service.request_reload(source)

    def _reload_over_http(self) -> tuple[bool, str]:
        answers = []
        for service in self.services:
            with scope.scoped(service.database):
                answers.append((service.database, *service.reload("POST /-/reload")))
        said = "; ".join(f"{name}: {text}" for name, _, text in answers)
        return all(ok for _, ok, _ in answers), said

    def stop(self) -> None:
        self.stop_event.set()
        for service in self.services:
            with scope.scoped(service.database):
                service.stop()

    def close(self) -> None:
        self.stop_event.set()
        if self.server is not None:
            self.server.stop()
        for service in self.services:
            with scope.scoped(service.database):
                service.close()
