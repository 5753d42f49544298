"""One HTTP POST under one deadline for the whole exchange, whatever the receiver does.

``requests`` bounds each wait on a socket, not the exchange: a receiver that drip-feeds its
status line or its body a byte a second never trips a 5 s timeout, and a 200 MB answer is
read whole into memory. Here the exchange (name lookup, connecting, TLS, sending, the status
line and the answer) runs in a thread of its own, and the caller waits for it until the
deadline and no longer. Every socket the exchange opens is also watched through a duplicate
of its descriptor: at the deadline the caller shuts the connection down, so the exchange ends
at once instead of lingering (only a name lookup, which no socket holds, runs on until the
resolver gives up, in that thread alone). Of the answer's body at most :data:`MAX_ANSWER`
bytes are read, then dropped: memory does not grow with what a receiver sends.

Failures are described in a few words that never hold the URL (webhook URLs carry tokens):
a TLS failure says what failed and how to trust a private CA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cbmon import scope
from cbmon.durations import format_duration

MAX_ANSWER = 64 * 1024  # bytes of an answer's body read (and dropped)
TRUST_HINT = "to trust a private CA, set alerting.ca_file or REQUESTS_CA_BUNDLE"
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a receiver answered: its status and the headers a sender needs."""

    status: int
    retry_after: str | None
    elapsed: float  # seconds, the whole exchange
    cut: bool = False  # the body did not end by the deadline, and was cut off


class Failed(Exception):
    """No answer: why, in a few words, and whether the deadline ran out."""

    def __init__(self, reason: str, *, timed_out: bool = False, elapsed: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timed_out = timed_out
        self.elapsed = elapsed


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    ca_file: Path | None = None,
) -> Answer:
    """POST ``body`` to ``url``, the whole exchange within ``timeout`` seconds; raises
    :class:`Failed`. Redirects are not followed: a redirect is not an acknowledgement."""
    exchange = _Exchange(url, body, dict(headers), timeout, ca_file)
    worker = scope.Thread(target=exchange.run, name="http exchange", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout)
    elapsed = time.monotonic() - started
    late = f"no complete answer within {format_duration(timeout)}"
    if worker.is_alive():
        exchange.cut()
        if exchange.status is not None:  # answered in time, only its body dragged on
            return Answer(exchange.status, exchange.retry_after, elapsed, cut=True)
        raise Failed(late, timed_out=True, elapsed=elapsed)
    if exchange.failure is not None:
        if _timed_out(exchange.failure):
            # The socket's own timeout, the same deadline, ran out a moment before ours did.
            raise Failed(late, timed_out=True, elapsed=elapsed)
        raise Failed(explain(exchange.failure), elapsed=elapsed)
    assert exchange.status is not None
    return Answer(exchange.status, exchange.retry_after, elapsed)


class _Exchange:
    """The POST, run by :meth:`run` in its own thread; :meth:`cut` ends it from another."""

    def __init__(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float, ca_file: Path | None
    ) -> None:
        self.url, self.body, self.headers = url, body, headers
        self.timeout = timeout
        self.verify: bool | str = True if ca_file is None else str(ca_file)
        self.status: int | None = None
        self.retry_after: str | None = None
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._cut = False

    def run(self) -> None:
        _local.exchange = self
        try:
            with requests.Session() as session:
                adapter = _Adapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                response = session.post(
                    self.url,
                    data=self.body,
                    headers=self.headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                    verify=self.verify,
                )
                with response:
                    self.retry_after = response.headers.get("Retry-After")
                    self.status = response.status_code
                    response.raw.read(MAX_ANSWER, decode_content=False)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if self.status is None:  # an answer whose body broke off is still an answer
                self.failure = exc
        finally:
            _local.exchange = None
            self._forget()

    def watch(self, sock: socket.socket) -> None:
        """Called as each connection is made: a duplicate descriptor to shut it down by, which
        stays valid whatever the connection does with its own (TLS wraps and detaches it)."""
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self._cut:
                _shut(duplicate)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for sock in self._watched:
                _shut(sock)

    def _forget(self) -> None:
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the receiver: nothing to cut
        sock.shutdown(socket.SHUT_RDWR)


_local = threading.local()


class _WatchedHTTP(HTTPConnection):
    """A connection whose socket the exchange of this thread watches, before TLS if any."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        exchange: _Exchange | None = getattr(_local, "exchange", None)
        if exchange is not None:
            exchange.watch(sock)
        return sock


class _WatchedHTTPS(_WatchedHTTP, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _Pool, "https": _TLSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter, with connections (direct, or through an HTTP proxy) watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS proxies have pools of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


# -- failures, in words ---------------------------------------------------------------------------


def explain(exc: BaseException) -> str:
    """Why no answer came, in a few words, never the URL (which the exceptions' texts hold)."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = str(cause.verify_message or cause.reason or "unknown reason")
            if cause.verify_code in _NAME_MISMATCH:
                return (
                    f"TLS: the receiver's certificate is not valid for the URL's host ({detail}); "
                    "use a URL with a name the certificate holds"
                )
            return f"TLS: certificate verify failed ({detail}); {TRUST_HINT}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            reason = (cause.reason or str(cause)).lower().replace("_", " ")
            return f"TLS handshake failed ({reason}); is the receiver speaking TLS on that port?"
    words = {
        ConnectionRefusedError: "connection refused",
        ConnectionResetError: "connection reset by the receiver",
        socket.gaierror: "host name not found",
        TimeoutError: "no answer in time",
        requests.exceptions.Timeout: "no answer in time",
        urllib3.exceptions.ProtocolError: "the receiver closed the connection without an answer",
    }
    for cause in causes:
        for kind, text in words.items():
            if isinstance(cause, kind):
                return text
    return type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    # Not urllib3's TimeoutError: its NewConnectionError (a refusal) derives from it.
    timeouts = (TimeoutError, requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError)
    return any(isinstance(cause, timeouts) for cause in _causes(exc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 wrap the real failure two deep."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += list(current.args)
        pending += [item for item in nested if isinstance(item, BaseException)]
