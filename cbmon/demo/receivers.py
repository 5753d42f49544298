"""Local HTTP endpoints for the demo: the callback receivers and the alert receiver.

Both are real ``http.server`` servers on 127.0.0.1 with ports the system picks. The callback
receivers answer as the scenario says (latency, failures, stalls) and check every request's
Standard Webhooks signature; the alert receiver checks the signature on cbmon's alert webhooks
and counts the alerts that fire and resolve.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cbmon.delivery import signing
from cbmon.demo.scenario import Phase

log = logging.getLogger(__name__)

# path -> event type delivered there (the router's target_url points each type at its path)
PATHS = {"/billing": "order_created", "/supply-chain": "order_shipped"}
MAX_BODY = 1 << 20


@dataclass
class EndpointCounts:
    requests: int = 0
    failed: int = 0  # answered 500 on purpose
    rejected: int = 0  # signature missing or wrong: answered 401


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, name=type(self).__name__)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the workers reuse their connections

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are counted, not logged: the demo's screen is the live view."""

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413)
            return None
        return self.rfile.read(length)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class CallbackReceivers(_Server):
    """Where the workers deliver; answers follow ``phase()`` at the moment of each request."""

    def __init__(self, secret: str, phase: Callable[[], Phase], stop: threading.Event) -> None:
        super().__init__(_CallbackHandler)
        self.secret = secret
        self.phase = phase
        self.stop = stop  # set on shutdown: stalled requests answer at once
        self.counts = {path: EndpointCounts() for path in PATHS}
        self._lock = threading.Lock()
        self._owed_failures = 0.5  # rounds the share to the nearest request, not down

    def url(self, event_type: str) -> str:
        path = next(p for p, e in PATHS.items() if e == event_type)
        return self.base_url + path

    def should_fail(self, rate: float) -> bool:
        """Exactly ``rate`` of the requests fail, spread evenly, so short windows see the rate
        the scenario asks for rather than a random draw's luck."""
        with self._lock:
            self._owed_failures += rate
            if self._owed_failures >= 1.0:
                self._owed_failures -= 1.0
                return True
            return False

    def count(self, path: str, *, failed: bool = False, rejected: bool = False) -> None:
        with self._lock:
            counts = self.counts[path]
            counts.requests += 1
            counts.failed += failed
            counts.rejected += rejected


class _CallbackHandler(_Quiet):
    server: CallbackReceivers

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        if body is None:
            return
        if path not in PATHS:
            self._answer(404)
            return
        server = self.server
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            signing.verify(server.secret, body, headers)
        except signing.SignatureError:
            server.count(path, rejected=True)
            self._answer(401)
            return
        phase = server.phase()
        if server.stop.wait(phase.latency * random.uniform(0.7, 1.3)):
            self._answer(503)  # shutting down: hand the row back for a later retry
            return
        failed = server.should_fail(phase.failure_rate)
        server.count(path, failed=failed)
        self._answer(500 if failed else 200)


@dataclass(frozen=True)
class AlertEvent:
    """One alert in a notification, as the receiver saw it."""

    status: str  # firing or resolved
    alertname: str
    severity: str
    event_type: str  # "" for every event type together
    summary: str
    previous: str = ""  # the severity it had, when one notification changed it (escalation)

    @property
    def key(self) -> str:
        scope = f"[{self.event_type}]" if self.event_type else ""
        return f"{self.alertname}/{self.severity}{scope}"


@dataclass
class AlertCounts:
    notifications: int = 0
    fired: int = 0
    resolved: int = 0
    rejected: int = 0
    firing: list[str] = field(default_factory=list)  # "alertname/severity[event type]" now


class AlertReceiver(_Server):
    """Receives cbmon's alert webhooks (Alertmanager's payload), verifying each signature."""

    def __init__(self, secret: str, on_event: Callable[[AlertEvent], None]) -> None:
        super().__init__(_AlertHandler)
        self.secret = secret
        self.on_event = on_event
        self.counts = AlertCounts()
        self._seen: set[str] = set()  # webhook-ids: a retried delivery counts once
        self._firing: set[str] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url + "/alerts"

    def snapshot(self) -> AlertCounts:
        with self._lock:
            c = self.counts
            firing = sorted(self._firing)
            return AlertCounts(c.notifications, c.fired, c.resolved, c.rejected, firing)

    def accept(self, msg_id: str, payload: Any) -> None:
        events = [_event(alert) for alert in payload.get("alerts", [])]
        with self._lock:
            if msg_id in self._seen:
                return
            self._seen.add(msg_id)
            self.counts.notifications += 1
            for event in events:
                if event.status == "firing":
                    self.counts.fired += 1
                    self._firing.add(event.key)
                else:
                    self.counts.resolved += 1
                    self._firing.discard(event.key)
        for event in changes(events):
            self.on_event(event)

    def reject(self) -> None:
        with self._lock:
            self.counts.rejected += 1


def changes(events: list[AlertEvent]) -> list[AlertEvent]:
    """The events of one notification as a person reads them: an alert resolved at one
    severity and firing at another (an escalation, or easing off) is one change, not a
    "resolved" that reads as if things got better."""
    firing = {(e.alertname, e.event_type): e for e in events if e.status == "firing"}
    merged: list[AlertEvent] = []
    for event in events:
        successor = firing.get((event.alertname, event.event_type))
        if event.status == "resolved" and successor is not None:
            merged.append(dataclasses.replace(successor, previous=event.severity))
            firing.pop((event.alertname, event.event_type))
        elif event.status == "resolved" or event in firing.values():
            merged.append(event)
    return merged


def _event(alert: dict[str, Any]) -> AlertEvent:
    labels = alert.get("labels", {})
    return AlertEvent(
        status=str(alert.get("status", "")),
        alertname=str(labels.get("alertname", "")),
        severity=str(labels.get("severity", "")),
        event_type=str(labels.get("event_type", "")),
        summary=str(alert.get("annotations", {}).get("summary", "")),
    )


class _AlertHandler(_Quiet):
    server: AlertReceiver

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = signing.verify(self.server.secret, body, headers)
        except signing.SignatureError as exc:
            log.warning("alert receiver: %s", exc)
            self.server.reject()
            self._answer(401)
            return
        if not isinstance(payload, dict):
            self._answer(400)
            return
        self.server.accept(headers.get("webhook-id", ""), payload)
        self._answer(200)
