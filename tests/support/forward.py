"""A database that is down, then comes up, without restarting anything: a port on 127.0.0.1
that refuses connections until :meth:`Forwarder.open`, then relays each one to PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import conninfo


class Forwarder:
    def __init__(self, dsn: str) -> None:
        params = conninfo.conninfo_to_dict(dsn)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        if host.startswith("/"):  # a socket directory, as the embedded server uses
            self._target: tuple[socket.AddressFamily, str | tuple[str, int]] = (
                socket.AF_UNIX,
                f"{host}/.s.PGSQL.{port}",
            )
        else:
            self._target = (socket.AF_INET, (host, port))
        # Bound but not listening: the kernel refuses connections, as with a server that is down.
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.dsn = conninfo.make_conninfo(
            dsn, host="127.0.0.1", port=str(self._listener.getsockname()[1])
        )
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        self._listener.listen()
        threading.Thread(target=self._accept, name="forwarder", daemon=True).start()

    def close(self) -> None:
        for sock in [self._listener, *self._open]:
            with contextlib.suppress(OSError):  # never connected, or already shut
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            family, address = self._target
            upstream = socket.socket(family)
            try:
                upstream.connect(address)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_relay, args=(source, sink), daemon=True).start()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # either side closed: the other thread or close() tidies up


@contextmanager
def forwarder(dsn: str) -> Iterator[Forwarder]:
    made = Forwarder(dsn)
    try:
        yield made
    finally:
        made.close()
