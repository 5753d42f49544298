"""The HTTP server, on real sockets and real time, stays up whoever connects: idle and slow
clients are cut off, connections are capped, a client leaving mid-answer is no traceback,
and a scrape is answered meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry

from cbmon.web.exposition import Exposition
from cbmon.web.server import MetricsServer


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    made = MetricsServer(
        ("127.0.0.1", 0),
        exposition,
        lambda: (True, "ready"),
        request_timeout=0.5,
        max_connections=250,
    )
    made.start()
    try:
        yield made
    finally:
        made.stop()


def connect(server: MetricsServer) -> socket.socket:
    host, port = server.server_address[:2]
    return socket.create_connection((str(host), int(port)), timeout=10)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (the read sees the end, or a reset)."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    return True


@pytest.mark.slow  # 200 sockets held open
def test_a_scrape_is_answered_while_200_idle_clients_are_connected(server: MetricsServer) -> None:
    idle = [connect(server) for _ in range(200)]
    try:
        response = requests.get(server.url + "/metrics", timeout=5)
        assert response.status_code == 200
        # ...and the idle ones are let go: none keeps a thread for as long as it likes.
        assert all(closed_by_server(sock) for sock in idle)
    finally:
        for sock in idle:
            sock.close()


def dribble(sock: socket.socket, most: int) -> int:
    """Send one byte every 50 ms, never a whole request line; the bytes sent when the server
    cut the connection (a reset or a broken pipe), or ``most`` if it never did."""
    for sent in range(most):
        try:
            sock.sendall(b"x")
        except OSError:
            return sent
        time.sleep(0.05)  # the fault itself: a client that is slow on purpose
    return most


@pytest.mark.slow
def test_a_client_dribbling_bytes_is_cut_off(server: MetricsServer) -> None:
    with connect(server) as sock:
        assert dribble(sock, most=400) < 400  # 20 s: far past the 0.5 s the server allows


def test_connections_beyond_the_cap_are_refused_at_once() -> None:
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    capped = MetricsServer(
        ("127.0.0.1", 0), exposition, lambda: (True, "ready"), request_timeout=30, max_connections=3
    )
    capped.start()
    held = [connect(capped) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n")  # half a request: each holds a slot
        # The server accepts in order: these three hold the slots before the next arrives.
        response = requests.get(capped.url + "/healthz", timeout=5)
        assert response.status_code == 503
        for sock in held:
            sock.sendall(b"\r\n")
        for sock in held:
            assert b"200 OK" in sock.recv(4096)
        assert requests.get(capped.url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()
        capped.stop()


def test_a_client_leaving_mid_answer_is_no_traceback(
    server: MetricsServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(20):
        sock = connect(server)
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, before the answer is read
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_gzip_refused_with_q0_is_not_sent(server: MetricsServer) -> None:
    response = requests.get(
        server.url + "/metrics", headers={"Accept-Encoding": "gzip;q=0"}, timeout=5
    )
    assert "Content-Encoding" not in response.headers
