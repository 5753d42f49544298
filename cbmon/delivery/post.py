"""Signed HTTP delivery, shared by the alert dispatcher, the Alertmanager poster and the
reference worker: one POST under one deadline (:mod:`cbmon.delivery.exchange`), with
Standard Webhooks headers and one reading of ``Retry-After``; how long to wait before trying
again is :mod:`cbmon.delivery.retry`'s.

A POST never raises for HTTP trouble: it returns an :class:`Attempt` saying what happened, with
no URL or credential in its text (webhook URLs often carry a token).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path

from cbmon.delivery import signing


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if any."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    delivered: bool
    status: int | None = None  # the HTTP status, None when no response came
    error: str | None = None  # why it was not delivered, in a few words
    retry_after: float | None = None  # seconds the receiver asked to wait (429 and 503)
    timed_out: bool = False
    elapsed: float = 0.0  # seconds


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    ca_file: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> Attempt:
    """POST ``body`` to ``url`` within ``timeout`` for the whole exchange (see
    :mod:`cbmon.delivery.exchange`); never raises for HTTP trouble. ``clock`` is the wall clock an
    HTTP date in ``Retry-After`` is read against."""
    # Here, so that a sidecar with no receiver never loads requests.
    from cbmon.delivery import exchange

    try:
        answer = exchange.post(url, body, headers, timeout=timeout, ca_file=ca_file)
    except exchange.Failed as failed:
        return Attempt(
            False, error=failed.reason, timed_out=failed.timed_out, elapsed=failed.elapsed
        )
    code, elapsed = answer.status, answer.elapsed
    if 200 <= code < 300:
        return Attempt(True, status=code, elapsed=elapsed)
    wait = parse_retry_after(answer.retry_after, clock()) if code in (429, 503) else None
    return Attempt(False, status=code, error=f"HTTP {code}", retry_after=wait, elapsed=elapsed)


def post_signed(
    url: str,
    body: bytes,
    *,
    msg_id: str,
    secret: str | None,
    timeout: float,
    ca_file: Path | None = None,
    user_agent: str = "cbmon",
    clock: Callable[[], float] = time.time,
) -> Attempt:
    """POST ``body`` (JSON) to ``url``, signed with ``secret`` when there is one.

    ``msg_id`` is the receiver's idempotency key (``webhook-id``): the same across retries of
    one message. ``clock`` is the wall clock: the signature's timestamp is checked by the
    receiver against its own.
    """
    signed = signing.sign(secret, msg_id, int(clock()), body) if secret else {"webhook-id": msg_id}
    headers = {"Content-Type": "application/json", "User-Agent": user_agent, **signed}
    return post(url, body, headers, timeout=timeout, ca_file=ca_file, clock=clock)


class BackgroundSender(abc.ABC):
    """A thread that sends over HTTP, with a condition to wake it and a way to stop it.
    Subclasses implement :meth:`_run`, waiting with :meth:`_wait`. Nothing runs until
    :meth:`start`; :meth:`stop` asks and waits a bounded time."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def ask_to_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        self.ask_to_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, or until woken; True when stopping."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)
            return self._stopping

    @abc.abstractmethod
    def _run(self) -> None:
        """Send until :meth:`ask_to_stop`."""
