"""Signed HTTP delivery, shared by the alert dispatcher and the reference worker: one POST with
Standard Webhooks headers, one reading of ``Retry-After``, one backoff.

A POST never raises for HTTP trouble: it returns an :class:`Attempt` saying what happened, with
no URL or credential in its text (webhook URLs often carry a token).
"""

from __future__ import annotations

import abc
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from cbmon import signing

if TYPE_CHECKING:
    import requests


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.5,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``base * 2^(attempt-1)`` capped at
    ``cap``, less up to ``jitter`` of it at random so that many clients spread out."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return float(ceiling * (1 - jitter * rng()))


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


def post_signed(
    session: requests.Session,
    url: str,
    body: bytes,
    *,
    msg_id: str,
    secret: str | None,
    timeout: float,
    user_agent: str = "cbmon",
    clock: Callable[[], float] = time.time,
) -> Attempt:
    """POST ``body`` (JSON) to ``url``, signed with ``secret`` when there is one.

    ``msg_id`` is the receiver's idempotency key (``webhook-id``): the same across retries of
    one message. A redirect is not an acknowledgement, so redirects are not followed.
    """
    import requests  # here, so that a sidecar with no receiver never loads it

    headers: Mapping[str, str] = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        **(signing.sign(secret, msg_id, None, body) if secret else {"webhook-id": msg_id}),
    }
    started = time.perf_counter()
    try:
        response = session.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        elapsed = time.perf_counter() - started
        error = f"no response within {timeout:g}s"
        return Attempt(False, error=error, timed_out=True, elapsed=elapsed)
    except requests.RequestException as exc:
        # the exception's text can hold the URL and its credentials: keep only the kind
        return Attempt(False, error=type(exc).__name__, elapsed=time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    code = response.status_code
    wait = None
    if code in (429, 503):
        wait = parse_retry_after(response.headers.get("Retry-After"), clock())
    response.close()
    if 200 <= code < 300:
        return Attempt(True, status=code, elapsed=elapsed)
    return Attempt(False, status=code, error=f"HTTP {code}", retry_after=wait, elapsed=elapsed)


class BackgroundSender(abc.ABC):
    """A thread that sends over HTTP, with its session, a condition to wake it and a way to
    stop it. Subclasses implement :meth:`_run`, waiting with :meth:`_wait`. Nothing runs until
    :meth:`start`; :meth:`stop` asks and waits a bounded time."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._session: requests.Session | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        import requests  # here, so that a sidecar with no receiver never loads it

        self._session = requests.Session()
        self._thread.start()

    def ask_to_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        self.ask_to_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._session is not None:
            self._session.close()

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, or until woken; True when stopping."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)
            return self._stopping

    @abc.abstractmethod
    def _run(self) -> None:
        """Send until :meth:`ask_to_stop`."""
