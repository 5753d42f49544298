"""A TCP proxy on 127.0.0.1 whose network path can be frozen: the faults a real network has.

``freeze()`` stops moving bytes in both directions while every socket stays open, as when a
route goes dark: the client's writes are not answered, nothing is closed, nothing errors.
``cut()`` closes every connection at once. ``thaw()`` resumes.
"""

from __future__ import annotations

import abc
import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Proxy(abc.ABC):
    """A listener on 127.0.0.1 that opens a connection to ``target`` for each client and hands
    the pair to :meth:`serve`; ``cut()`` closes every pair, ``stop()`` everything."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn(self._accept)

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        self._stopping.set()
        # Closing a listening socket does not wake a thread blocked in accept(); shutting it
        # down does, so the accept thread ends now rather than at the join's timeout.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)

    @abc.abstractmethod
    def serve(self, client: socket.socket, upstream: socket.socket) -> None:
        """Start moving bytes between a new client and its upstream connection."""

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            # Messages are relayed one by one: without this, Nagle's algorithm holds each
            # small write for the peer's delayed acknowledgement.
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            self.serve(client, upstream)


class FreezableProxy(Proxy):
    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(target)
        self._flowing = threading.Event()
        self._flowing.set()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def stop(self) -> None:
        self._flowing.set()
        super().stop()

    def serve(self, client: socket.socket, upstream: socket.socket) -> None:
        self._spawn(self._pump, client, upstream)
        self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([source], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            # Frozen: leave the bytes unread in the kernel, as a dark route would.
            while not self._flowing.wait(0.1):
                if self._stopping.is_set():
                    return
            try:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return


@contextmanager
def freezable_proxy(host: str = "127.0.0.1", port: int = 5432) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy((host, port))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
