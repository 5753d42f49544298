"""Alertmanager as a receiver: alerts posted to ``/api/v2/alerts`` the way Prometheus does.

Every replica sends (Alertmanager deduplicates alerts by their labels), so no leader is
needed and a replica that dies takes nothing with it. A firing alert is posted again every
``resend_interval`` with ``endsAt`` four intervals ahead: if cbmon stops sending, Alertmanager
resolves the alert by itself once ``endsAt`` has passed. A resolved alert is posted with
``endsAt`` at the moment it resolved, and again for ``resolved_retention``, so a post that
fails once is made good later. Routing, grouping, silences and inhibition are then
Alertmanager's.

One thread posts; the poll loop only hands it the current set and never waits on the network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cbmon.clock import Clock, SystemClock
from cbmon.delivery.dispatcher import display_name
from cbmon.delivery.payload import labels_of
from cbmon.delivery.post import BackgroundSender, post
from cbmon.delivery.retry import ALERTMANAGER, RetryPolicy
from cbmon.slo.notification import Alert

log = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def postable(
    alert: Alert,
    now: float,
    valid_for: float,
    generator_url: str,
    cluster: str,
    database: str = "",
) -> dict[str, Any]:
    """One ``postableAlert``: labels and annotations are strings; ``endsAt`` is the moment it
    resolved, or ``valid_for`` ahead while it fires. Alertmanager tells alerts apart by their
    labels, so the ``database`` label keeps two databases' alerts apart."""
    ends = alert.ends_at if alert.ends_at is not None else now + valid_for
    return {
        "labels": {**labels_of(alert, database), "cluster": cluster},
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "value": "" if alert.value is None else f"{alert.value:g}",
            "threshold": alert.threshold,
        },
        "startsAt": _time(alert.starts_at),
        "endsAt": _time(max(ends, alert.starts_at + 0.001)),
        "generatorURL": generator_url,
    }


@dataclasses.dataclass
class Counters:
    posts: int = 0  # successful posts of the whole set
    failed: int = 0  # posts that failed (tried again after a backoff)


class AlertmanagerSender(BackgroundSender):
    """Posts the current alert set to every configured Alertmanager."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        cluster: str,
        external_url: str,
        timeout: float,
        database: str = "",
        resend_interval: float,
        ca_file: Path | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy = ALERTMANAGER,
    ) -> None:
        """``retry``: the wait after a failed post, never longer than ``resend_interval``;
        ``clock``: resends are timed on its monotonic line (a wall clock stepped back must
        not hold them back, or Alertmanager would resolve what fires); ``endsAt`` and the
        rest are on its wall clock, which Alertmanager compares with its own."""
        self.targets = [(url.rstrip("/") + API_PATH, display_name(url)) for url in urls]
        self._running = False  # started by the service, whether or not there were targets
        self.counters = {name: Counters() for _, name in self.targets}
        self.cluster = cluster
        self.database = database
        self.generator_url = f"{external_url}/"
        self.timeout = timeout  # for each post's whole exchange
        self.resend_interval = resend_interval
        self.ca_file = ca_file
        self.retry = retry
        self._clock = clock or SystemClock()
        self._alerts: list[Alert] = []
        self._changed = False
        super().__init__("alertmanager")

    def start(self) -> None:
        self._running = True
        if self.targets:
            super().start()

    def reconfigure(
        self, urls: Sequence[str], *, timeout: float, resend_interval: float, ca_file: Path | None
    ) -> None:
        """Post to ``urls`` from now on, at once (a reload); counters of those kept go on."""
        targets = [(url.rstrip("/") + API_PATH, display_name(url)) for url in urls]
        with self._cond:
            self.targets = targets
            self.counters = {name: self.counters.get(name, Counters()) for _, name in targets}
            self.timeout, self.resend_interval, self.ca_file = timeout, resend_interval, ca_file
            self._changed = True
            self._cond.notify()
        if targets and not self.started and self._running:
            super().start()

    def update(self, alerts: Sequence[Alert], changed: bool) -> None:
        """The alerts to keep Alertmanager told about; ``changed`` posts them at once."""
        with self._cond:
            self._alerts = list(alerts)
            self._changed = self._changed or changed
            if changed:
                self._cond.notify()

    def _run(self) -> None:
        failures = 0
        next_post = 0.0
        while True:
            with self._cond:
                while not self._stopping and not self._changed:
                    wait = next_post - self._clock.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                alerts, self._changed = list(self._alerts), False
                targets, counters = self.targets, self.counters
            try:
                ok = self._post_all(alerts, targets, counters)
            except Exception as exc:
                log.error("alertmanager: posting failed unexpectedly: %s", exc)
                ok = False
            failures = 0 if ok else failures + 1
            delay = self.resend_interval if ok else self._retry_wait(failures)
            next_post = self._clock.monotonic() + delay

    def _retry_wait(self, failures: int) -> float:
        """The policy's wait after ``failures`` failed posts in a row, its backoff capped at
        the resend interval: a firing alert is posted again before its ``endsAt``."""
        cap = min(self.retry.cap, self.resend_interval)
        return dataclasses.replace(self.retry, cap=cap).delay(failures)

    def _post_all(
        self, alerts: list[Alert], targets: list[tuple[str, str]], counters: dict[str, Counters]
    ) -> bool:
        """Post the set to every Alertmanager; True when all took it."""
        if not alerts:
            return True
        now = self._clock.wall()
        valid_for = 4 * self.resend_interval
        url, cluster, database = self.generator_url, self.cluster, self.database
        body = json.dumps(
            [postable(a, now, valid_for, url, cluster, database) for a in alerts]
        ).encode()
        ok = True
        for url, name in targets:
            ok = self._post(url, name, body, counters[name]) and ok
        return ok

    def _post(self, url: str, name: str, body: bytes, counted: Counters) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "cbmon"}
        attempt = post(url, body, headers, timeout=self.timeout, ca_file=self.ca_file)
        if attempt.delivered:
            counted.posts += 1
            return True
        counted.failed += 1
        log.warning("alertmanager %s: %s", name, attempt.error)
        return False
