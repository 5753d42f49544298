"""The HTTP endpoints: ``/metrics`` from memory, ``/healthz`` (alive) and ``/readyz``, and
the status page and JSON API when given them (see :mod:`cbmon.web.pages`).

Built to stay up whoever connects: at most ``MAX_CONNECTIONS`` are served at once (more are
answered 503 and closed at once), a client must send its request within
``REQUEST_TIMEOUT`` seconds and read the answer within as long (a reaper thread cuts off
slow and idle ones), request lines and headers are bounded, and a client that goes away
mid-answer is a debug line, not a traceback. With a web configuration file it speaks TLS and
asks for basic authentication (see :mod:`cbmon.web.webconfig`).

``POST /-/reload`` (or ``PUT``) reloads the configuration when the lifecycle API is enabled
(``--web.enable-lifecycle``, as in Prometheus), and is refused with 403 otherwise.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cbmon.web.exposition import Exposition
from cbmon.web.pages import Pages
from cbmon.web.webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]
Reload = Callable[[], tuple[bool, str]]  # whether it worked, and what it did, in one line

MAX_CONNECTIONS = 512
MAX_REQUEST_BODY = 64 * 1024  # bytes a POST may carry (read and dropped): /-/reload needs none
RELOAD_PATH = "/-/reload"
REQUEST_TIMEOUT = 10.0  # seconds to send a request, and again to read the answer

_INDEX = b"""<html><head><title>cbmon</title></head><body><h1>cbmon</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/healthz">/healthz</a>
&middot; <a href="/readyz">/readyz</a></p></body></html>
"""
# Status answers change at every poll: no cache may keep one.
_FRESH = {"Cache-Control": "no-store"}
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles between them

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # each read and write

    def handle(self) -> None:
        with contextlib.suppress(*_DISCONNECTS, ssl.SSLError):
            super().handle()

    def do_GET(self) -> None:
        self.server.reaper.extend(self.connection)  # the request is in: time to answer
        path = self.path.split("?", 1)[0]
        if not self._authorized(path):
            return
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._reply(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready, reason = self.server.readiness()
            self._reply(200 if ready else 503, f"{reason}\n".encode(), "text/plain; charset=utf-8")
        elif self.server.pages and (page := self.server.pages.answer(path)):
            self._reply(200, page.body, page.content_type, _FRESH)
        elif path == "/":
            self._reply(200, _INDEX, "text/html; charset=utf-8")
        elif path == RELOAD_PATH:
            self._text(405, "Only POST or PUT requests allowed", {"Allow": "POST, PUT"})
        else:
            self._text(404, "not found")

    def do_POST(self) -> None:
        self.server.reaper.extend(self.connection)
        if not self._authorized(self.path.split("?", 1)[0]) or not self._drop_body():
            return
        if self.path.split("?", 1)[0] != RELOAD_PATH:
            self._text(405, "Only GET or HEAD requests allowed", {"Allow": "GET, HEAD"})
        elif self.server.reload is None:
            self._text(403, "Lifecycle API is not enabled.")
        else:
            ok, said = self.server.reload()
            self._text(200 if ok else 500, said)

    do_PUT = do_POST

    def _authorized(self, path: str) -> bool:
        """True, or answered 401 (paths the web configuration leaves open need nothing)."""
        if self.server.auth.allows(self.headers.get("Authorization"), path):
            return True
        self._text(401, "unauthorized", {"WWW-Authenticate": 'Basic realm="cbmon"'})
        return False

    def _drop_body(self) -> bool:
        """Read what the request carries and drop it; False (answered) when it cannot be."""
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isascii() or not length.isdigit():
            self._text(400, "Content-Length is not a number")
            return False
        if int(length) > MAX_REQUEST_BODY:
            self._text(413, f"a request body is {MAX_REQUEST_BODY // 1024} KiB at most")
            return False
        self.rfile.read(int(length))
        return True

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._reply(status, f"{text}\n".encode(), "text/plain; charset=utf-8", headers)

    def _metrics(self) -> None:
        body, content_type = self.server.exposition.render(self.headers.get("Accept", ""))
        headers = {}
        if _accepts_gzip(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._reply(200, body, content_type, headers)

    def _reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self.server.extra_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _accepts_gzip(header: str) -> bool:
    """``gzip`` listed and not refused with ``q=0``."""
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            quality = params.replace(" ", "").lower()
            return quality not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class Reaper:
    """Cuts off connections that overstay: one thread and a heap of deadlines, not a timer
    per connection. A slow client (one byte every few seconds) is cut off as an idle one is."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._deadlines: dict[int, float] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="http reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, sock: socket.socket) -> None:
        self._set(sock, time.monotonic() + self.seconds)

    def extend(self, sock: socket.socket) -> None:
        """A new period for the answer, once the request has been read."""
        self._set(sock, time.monotonic() + self.seconds)

    def forget(self, sock: socket.socket) -> None:
        with self._cond:
            self._deadlines.pop(id(sock), None)

    def _set(self, sock: socket.socket, deadline: float) -> None:
        with self._cond:
            self._deadlines[id(sock)] = deadline
            idle = not self._heap
            heapq.heappush(self._heap, (deadline, id(sock), sock))
            if idle:  # deadlines only grow: a busy reaper already waits for an earlier one
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, key, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                due = self._deadlines.get(key) == deadline
                if due:
                    del self._deadlines[key]
            if due:
                log.debug("closing a connection that overstayed %.0fs", self.seconds)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    # How often the serving loop looks whether it is asked to stop: how long stop() can
    # wait for it. Only a shutdown pays it, so serving stays free of wake-ups.
    poll_interval = 0.5

    def __init__(
        self,
        address: tuple[str, int],
        exposition: Exposition,
        readiness: Readiness,
        web: WebConfig | None = None,
        tls: ssl.SSLContext | None = None,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        pages: Pages | None = None,
        reload: Reload | None = None,
    ) -> None:
        self.exposition = exposition
        self.reload = reload
        self.pages = pages
        self.request_timeout = request_timeout
        self.readiness = readiness
        self.web = web or WebConfig()
        self.auth = BasicAuth(self.web.basic_auth_users, self.web.basic_auth_excluded_paths)
        self.extra_headers = dict(self.web.http_server_config.headers)
        self.tls = tls
        self.reaper = Reaper(request_timeout)
        self._slots = threading.BoundedSemaphore(max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``HOST:PORT`` as bound: ``0.0.0.0:9863`` for every interface."""
        host, port = self.server_address[:2]
        shown = host if isinstance(host, str) else host.decode()
        return f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"

    @property
    def url(self) -> str:
        """Where this host reaches the server: every interface includes 127.0.0.1."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.address.replace('0.0.0.0:', '127.0.0.1:', 1)}"

    def start(self) -> None:
        self.reaper.start()
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name="http",
            daemon=True,
        )
        self._thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        self.reaper.watch(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                request = self._handshake(request)
                if request is None:
                    return
            super().process_request_thread(request, client_address)
        finally:
            self.reaper.forget(request)
            self._slots.release()

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        """TLS in the connection's own thread, bounded by the reaper like the request."""
        assert self.tls is not None
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            self.shutdown_request(request)
            return None
        self.reaper.forget(request)
        self.reaper.watch(wrapped)
        return wrapped

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failure in one connection is one line, never a traceback on stderr."""
        log.warning("error answering %s", client_address[0], exc_info=log.isEnabledFor(10))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.reaper.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
