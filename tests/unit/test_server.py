"""The HTTP endpoints as a scraper, a probe and a browser meet them, on a real socket."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from cbmon.ingest.store import Store
from cbmon.web.collector import CallbackCollector, QueueAgeCollector
from cbmon.web.exposition import Exposition
from cbmon.web.server import MetricsServer
from tests.support.sidecar import ManualClock, callbacks, feed, poll_result

TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Readiness:
    """What /readyz answers, set by the test."""

    ready: bool = True
    reason: str = "ready"

    def __call__(self) -> tuple[bool, str]:
        return self.ready, self.reason


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@dataclass
class Served:
    server: MetricsServer
    exposition: Exposition
    readiness: Readiness

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers)

    def raw(self, request: bytes) -> bytes:
        """Everything the server sends back to ``request``, up to its closing the connection:
        http.client would not read a body after HEAD even if one came."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    # One server for the module: stopping one waits out serve_forever's half-second poll.
    clock = ManualClock()  # a still clock, so two renders of one state are byte for byte equal
    store = Store(max_event_types=10, clock=clock)
    feed(store, poll_result({"pay": callbacks([0.1] * 3)}, backlog=2, oldest_created=clock.now))
    polled, live = CollectorRegistry(), CollectorRegistry()
    polled.register(CallbackCollector(store))
    live.register(QueueAgeCollector(store))
    server = MetricsServer(("127.0.0.1", 0), Exposition(polled, live), Readiness())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(server: MetricsServer) -> Served:
    readiness = Readiness()  # each test starts ready
    server.readiness = readiness
    return Served(server, server.exposition, readiness)


def test_metrics_are_prometheus_text_by_default(served: Served) -> None:
    reply = served.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == TEXT
    assert reply.headers["Content-Encoding"] is None
    assert reply.body == served.exposition.render("")[0]
    assert b'cbmon_callback_attempts_total{event_type="pay"} 3.0' in reply.body
    assert int(reply.headers["Content-Length"]) == len(reply.body)


def test_metrics_are_openmetrics_when_the_scraper_asks(served: Served) -> None:
    accept = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
    reply = served.get("/metrics", {"Accept": accept})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert reply.body.endswith(b"# EOF\n")


def test_metrics_are_gzipped_when_the_scraper_accepts_it(served: Served) -> None:
    plain = served.get("/metrics").body
    reply = served.get("/metrics", {"Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.headers["Content-Encoding"] == "gzip"
    assert reply.headers["Content-Type"] == TEXT
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert gzip.decompress(reply.body) == plain


def test_healthz_answers_while_the_process_lives(served: Served) -> None:
    served.readiness.ready = False  # alive even when not ready
    reply = served.get("/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")


def test_readyz_is_503_with_the_reason_until_ready(served: Served) -> None:
    served.readiness.ready, served.readiness.reason = False, "database unreachable"
    reply = served.get("/readyz")
    assert (reply.status, reply.body) == (503, b"database unreachable\n")
    served.readiness.ready, served.readiness.reason = True, "ready"
    reply = served.get("/readyz")
    assert (reply.status, reply.body) == (200, b"ready\n")


def test_index_links_every_endpoint(served: Served) -> None:
    reply = served.get("/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    for path in (b"/metrics", b"/healthz", b"/readyz"):
        assert b'href="' + path + b'"' in reply.body


def test_unknown_paths_are_404(served: Served) -> None:
    for path in ("/metric", "/metrics/", "/favicon.ico"):
        assert served.get(path).status == 404, path


def test_query_strings_are_ignored(served: Served) -> None:
    assert served.get("/metrics?name[]=cbmon_up").body == served.get("/metrics").body
    assert served.get("/healthz?verbose=1").status == 200
    served.readiness.ready, served.readiness.reason = False, "not polled yet"
    assert served.get("/readyz?x").status == 503


def test_head_has_the_headers_and_no_body(served: Served) -> None:
    length = len(served.get("/metrics").body)
    answer = served.raw(b"HEAD /metrics HTTP/1.0\r\n\r\n")
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert f"Content-Length: {length}".encode() in head
    assert rest == b""


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_methods_other_than_get_head_post_and_put_are_501(served: Served, method: str) -> None:
    assert served.request(method, "/metrics").status == 501


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_post_and_put_are_for_reloading_only(served: Served, method: str) -> None:
    answer = served.request(method, "/metrics")
    assert (answer.status, answer.headers["Allow"]) == (405, "GET, HEAD")


# -- the lifecycle API -----------------------------------------------------------------------


@pytest.fixture
def reloads(server: MetricsServer) -> Iterator[list[bool]]:
    """The lifecycle API enabled, with a reload that succeeds or fails as the test says
    (the first value left in the list)."""
    outcomes = [True]

    def reload() -> tuple[bool, str]:
        ok = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        return ok, "slo.for changed" if ok else "c.yml: slo.for: 'soon' is not a duration"

    server.reload = reload
    try:
        yield outcomes
    finally:
        server.reload = None


def test_reload_without_the_lifecycle_api_is_forbidden(served: Served) -> None:
    answer = served.request("POST", "/-/reload")
    assert (answer.status, answer.body) == (403, b"Lifecycle API is not enabled.\n")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_reload_answers_what_it_did(served: Served, reloads: list[bool], method: str) -> None:
    reloads[:] = [True, False]
    done = served.request(method, "/-/reload")
    assert (done.status, done.body) == (200, b"slo.for changed\n")
    failed = served.request(method, "/-/reload")
    assert (failed.status, failed.body) == (500, b"c.yml: slo.for: 'soon' is not a duration\n")


def test_reload_is_never_a_get(served: Served, reloads: list[bool]) -> None:
    answer = served.get("/-/reload")
    assert (answer.status, answer.headers["Allow"]) == (405, "POST, PUT")


def test_a_reload_request_body_is_dropped_up_to_64_kib(served: Served, reloads: list[bool]) -> None:
    small = b"POST /-/reload HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"
    assert served.raw(small).startswith(b"HTTP/1.0 200 ")
    large = b"POST /-/reload HTTP/1.0\r\nContent-Length: 70000\r\n\r\n"
    assert served.raw(large).startswith(b"HTTP/1.0 413 ")
