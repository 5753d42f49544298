"""A PostgreSQL wire-protocol proxy that answers for openGauss where PostgreSQL cannot.

It reads every simple-query message the client sends (cbmon sends parameterless statements
that way) and:

* answers ``LISTEN`` with the error openGauss and GaussDB give (SQLSTATE 0A000);
* answers ``SET session_timeout`` (an openGauss setting PostgreSQL lacks) with success and
  remembers the value;
* passes ``CREATE ROLE ... PASSWORD DISABLE`` on as ``PASSWORD NULL``, PostgreSQL's words;
* records every statement, so a test can run the dialect check over what really ran.

Clients must connect with ``sslmode=disable``: an encrypted stream cannot be read.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading

from tests.support.proxy import Proxy

_LISTEN = re.compile(r"^\s*LISTEN\b", re.IGNORECASE)
_SESSION_TIMEOUT = re.compile(r"^\s*SET\s+session_timeout\s*=\s*'?(\d+)'?\s*;?\s*$", re.IGNORECASE)


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def error(sqlstate: str, text: str) -> bytes:
    fields = b"".join(
        code + value.encode() + b"\0"
        for code, value in ((b"S", "ERROR"), (b"V", "ERROR"), (b"C", sqlstate), (b"M", text))
    )
    return _message(b"E", fields + b"\0")


class OpenGaussProxy(Proxy):
    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(target)
        self.statements: list[str] = []
        self.session_timeouts: list[int] = []
        self.refused_listens = 0

    def serve(self, client: socket.socket, upstream: socket.socket) -> None:
        state = _Connection(client, upstream)
        self._spawn(self._from_client, state)
        self._spawn(self._from_server, state)

    def _from_server(self, conn: _Connection) -> None:
        try:
            while True:
                kind, payload = _read(conn.upstream)
                if kind == b"Z":
                    conn.status = payload[:1]
                conn.send_client(_message(kind, payload))
        except OSError:
            conn.close()

    def _from_client(self, conn: _Connection) -> None:
        try:
            length = struct.unpack("!I", _exactly(conn.client, 4))[0]
            conn.upstream.sendall(struct.pack("!I", length) + _exactly(conn.client, length - 4))
            while True:
                kind, payload = _read(conn.client)
                if kind == b"Q":
                    text = payload.rstrip(b"\0").decode()
                    with self._lock:
                        self.statements.append(text)
                    if self._answer(conn, text):
                        continue
                    text = text.replace("PASSWORD DISABLE", "PASSWORD NULL")
                    payload = text.encode() + b"\0"
                elif kind == b"P":
                    query = payload.split(b"\0", 2)[1].decode()
                    with self._lock:
                        self.statements.append(query)
                conn.upstream.sendall(_message(kind, payload))
        except (OSError, ValueError):
            conn.close()

    def _answer(self, conn: _Connection, text: str) -> bool:
        """Answer the statements PostgreSQL and openGauss disagree on; True if answered."""
        in_block = conn.status in (b"T", b"E")
        if _LISTEN.match(text):
            with self._lock:
                self.refused_listens += 1
            reply = error("0A000", "LISTEN statement is not yet supported.")
            conn.send_client(reply + _message(b"Z", b"E" if in_block else b"I"))
            return True
        timeout = _SESSION_TIMEOUT.match(text)
        if timeout:
            with self._lock:
                self.session_timeouts.append(int(timeout.group(1)))
            done = _message(b"C", b"SET\0")
            conn.send_client(done + _message(b"Z", conn.status or b"I"))
            return True
        return False


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.status = b"I"
        self._write = threading.Lock()

    def send_client(self, data: bytes) -> None:
        with self._write:
            self.client.sendall(data)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    header = _exactly(sock, 5)
    length = struct.unpack("!I", header[1:])[0]
    return header[:1], _exactly(sock, length - 4)
