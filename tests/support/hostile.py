"""Receivers that misbehave the way real ones do, on 127.0.0.1, over plain TCP or TLS: one
that drip-feeds its status line or its body a byte at a time, one that answers 200 MB, one
that never answers. Each counts its connections and the bytes it managed to send."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HUGE = 200 * 1024 * 1024
_CHUNK = b"x" * 65536
DRIP_STATUS = "drip status"  # the status line and headers, a byte each `interval`
DRIP_BODY = "drip body"  # a 200 at once, then the body a byte each `interval`
HUGE_BODY = "huge body"  # a 200 and 200 MB as fast as the sender reads
SILENT = "silent"  # reads the request, says nothing
OK = "ok"  # a plain 200, no body


class Hostile:
    def __init__(self, behaviour: str, interval: float = 1.0, tls: ssl.SSLContext | None = None):
        self.behaviour = behaviour
        self.interval = interval
        self.tls = tls
        self.connections = 0
        self.sent = 0  # bytes of answers that left for the sender
        self.closed = 0  # connections the sender cut before the answer was whole
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/hook/t0ken-in-the-path"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                conn.settimeout(30)
                _read_request(conn)
                self._answer(conn)
        except (OSError, ssl.SSLError):
            with self.lock:
                self.closed += 1

    def _answer(self, conn: socket.socket) -> None:
        if self.behaviour == SILENT:
            self._stop.wait(60)
        elif self.behaviour == OK:
            self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif self.behaviour == DRIP_STATUS:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                self._send(conn, bytes([byte]))
                if self._stop.wait(self.interval):
                    return
        elif self.behaviour == DRIP_BODY:
            self._send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(100_000):
                self._send(conn, b"x")
                if self._stop.wait(self.interval):
                    return
        elif self.behaviour == HUGE_BODY:
            self._send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n".encode())
            for _ in range(HUGE // len(_CHUNK)):
                self._send(conn, _CHUNK)

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self.lock:
            self.sent += len(data)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


def _read_request(conn: socket.socket) -> None:
    """The request line, headers and body, so the sender's request is whole before answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@contextmanager
def hostile(
    behaviour: str, interval: float = 1.0, tls: ssl.SSLContext | None = None
) -> Iterator[Hostile]:
    server = Hostile(behaviour, interval, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context presenting ``cert``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context
