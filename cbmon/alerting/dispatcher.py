"""Delivering notifications to webhook receivers, in the background, without losing any.

Each receiver has its own thread and outbox, so a receiver that hangs delays nobody else and
enqueueing never blocks the poll loop. A message keeps its ``webhook-id`` across retries (the
receiver's idempotency key). A failed attempt is retried up to ``max_retries`` times with
exponential backoff and jitter, or after the receiver's ``Retry-After``. A message that
exhausts its retries stays at the head of the outbox and is tried again every
``DOWN_RETRY`` seconds, so it is delivered once the receiver comes back, in order.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable

import requests

from cbmon import signing
from cbmon.retry_after import parse_retry_after

log = logging.getLogger(__name__)

DOWN_RETRY = 30.0
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0
MAX_OUTBOX = 10_000


@dataclasses.dataclass(frozen=True)
class Message:
    id: str
    body: bytes


def new_message(body: bytes) -> Message:
    return Message(id=f"msg_{uuid.uuid4().hex}", body=body)


@dataclasses.dataclass
class Counters:
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0
    queued: int = 0


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, capped at MAX_RETRY_AFTER."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def display_name(url: str) -> str:
    """How a receiver is named in logs and labels: scheme, host and port only, since webhook
    URLs often carry a token in their path or credentials in their authority."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def backoff(attempt: int, base: float = 1.0) -> float:
    """Exponential backoff with full jitter: up to base * 2^(attempt-1), capped."""
    ceiling = min(MAX_BACKOFF, base * 2 ** (attempt - 1))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


class Receiver:
    """One webhook URL: an outbox and the thread that empties it."""

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        down_retry: float = DOWN_RETRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.name = display_name(url)
        self.secret = secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.down_retry = down_retry
        self.counters = Counters()
        self._clock = clock
        self._outbox: collections.deque[Message] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name=f"webhook {self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, message: Message) -> None:
        with self._cond:
            if len(self._outbox) >= MAX_OUTBOX:
                self._outbox.popleft()
                self.counters.dropped += 1
                log.error("webhook outbox for %s full; dropped the oldest message", self.name)
            self._outbox.append(message)
            self.counters.queued = len(self._outbox)
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._session.close()

    def pending(self) -> int:
        with self._cond:
            return len(self._outbox)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when stopping."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)
            return self._stopping

    def _run(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                while not self._outbox and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                message = self._outbox[0]
            ok, wait = self._attempt(message)
            if ok:
                with self._cond:
                    if self._outbox and self._outbox[0] is message:
                        self._outbox.popleft()
                    self.counters.delivered += 1
                    self.counters.queued = len(self._outbox)
                attempt = 0
                continue
            attempt += 1
            if attempt > self.max_retries:
                self.counters.failed += 1
                log.warning(
                    "webhook %s: %s not delivered after %d retries; trying again in %.0fs",
                    self.name,
                    message.id,
                    self.max_retries,
                    self.down_retry,
                )
                attempt = 0
                delay = max(wait or 0.0, self.down_retry)
            else:
                self.counters.retries += 1
                delay = wait if wait is not None else backoff(attempt, self.backoff_base)
            if self._wait(delay):
                return

    def _attempt(self, message: Message) -> tuple[bool, float | None]:
        """One POST. Returns (delivered, Retry-After seconds if the receiver gave one)."""
        headers = {"Content-Type": "application/json", "User-Agent": "cbmon"}
        if self.secret:
            headers.update(signing.sign(self.secret, message.id, None, message.body))
        else:
            headers["webhook-id"] = message.id
        try:
            response = self._session.post(
                self.url, data=message.body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            log.info("webhook %s: %s: %s", self.name, message.id, type(exc).__name__)
            return False, None
        if 200 <= response.status_code < 300:
            return True, None
        log.info("webhook %s: %s: HTTP %d", self.name, message.id, response.status_code)
        wait = None
        if response.status_code in (429, 503):
            wait = retry_after(response.headers.get("Retry-After"), self._clock())
        return False, wait


class Notifier:
    """Fans each message out to every receiver."""

    def __init__(self, receivers: list[Receiver]) -> None:
        self.receivers = receivers
        seen: dict[str, int] = {}
        for receiver in receivers:
            count = seen[receiver.name] = seen.get(receiver.name, 0) + 1
            if count > 1:  # two receivers on one host stay apart in labels
                receiver.name = f"{receiver.name}#{count}"
            receiver.start()

    def send(self, body: bytes) -> None:
        message = new_message(body)
        for receiver in self.receivers:
            receiver.send(message)

    def close(self) -> None:
        for receiver in self.receivers:
            receiver.stop()
