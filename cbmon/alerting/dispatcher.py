"""Delivering notifications to webhook receivers, in the background, without losing any.

Each receiver has its own outbox and thread, so a receiver that hangs delays nobody else and
enqueueing never blocks the poll loop. A message keeps its ``webhook-id`` across retries (the
receiver's idempotency key). A failed attempt is retried up to ``max_retries`` times with
exponential backoff and jitter, or after the receiver's ``Retry-After``. A message that
exhausts its retries stays at the head of the outbox and is tried again every
``down_retry`` seconds, so it is delivered once the receiver comes back, in order.

Only the replica that leads sends (:class:`~cbmon.alerting.leader.Leadership`); a replica
taking over re-sends what fires, rather than risk it being lost.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from cbmon.alerting import payload
from cbmon.config import Config
from cbmon.delivery import Attempt, backoff, post_signed
from cbmon.slo.alerts import Notification

if TYPE_CHECKING:
    import requests

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


def display_name(url: str) -> str:
    """How a receiver is named in logs and labels: scheme, host and port only, since webhook
    URLs often carry a token in their path or credentials in their authority."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


class Outbox:
    """One receiver URL: the messages waiting for it and the thread that delivers them.

    Nothing runs until :meth:`start`.
    """

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
        self._messages: collections.deque[Message] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._session: requests.Session | None = None
        self._thread = threading.Thread(target=self._run, name=f"webhook {self.name}", daemon=True)

    def start(self) -> None:
        import requests

        self._session = requests.Session()
        self._thread.start()

    def send(self, message: Message) -> None:
        with self._cond:
            if len(self._messages) >= MAX_OUTBOX:
                self._messages.popleft()
                self.counters.dropped += 1
                log.error("webhook outbox for %s full; dropped the oldest message", self.name)
            self._messages.append(message)
            self.counters.queued = len(self._messages)
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._session is not None:
            self._session.close()

    def pending(self) -> int:
        with self._cond:
            return len(self._messages)

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
                while not self._messages and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                message = self._messages[0]
            result = self._attempt(message)
            if result.delivered:
                with self._cond:
                    if self._messages and self._messages[0] is message:
                        self._messages.popleft()
                    self.counters.delivered += 1
                    self.counters.queued = len(self._messages)
                attempt = 0
                continue
            wait = None if result.retry_after is None else min(result.retry_after, MAX_RETRY_AFTER)
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
                delay = (
                    wait
                    if wait is not None
                    else backoff(attempt, base=self.backoff_base, cap=MAX_BACKOFF)
                )
            if self._wait(delay):
                return

    def _attempt(self, message: Message) -> Attempt:
        assert self._session is not None, "start() the outbox first"
        result = post_signed(
            self._session,
            self.url,
            message.body,
            msg_id=message.id,
            secret=self.secret,
            timeout=self.timeout,
            clock=self._clock,
        )
        if not result.delivered:
            log.info("webhook %s: %s: %s", self.name, message.id, result.error)
        return result


class Leader(Protocol):
    """Whether this replica sends; checked once per poll."""

    @property
    def is_leader(self) -> bool: ...

    def check(self) -> bool: ...

    def close(self) -> None: ...


class Dispatcher:
    """Hands notifications to every outbox, when this replica leads."""

    def __init__(
        self, outboxes: Sequence[Outbox], leadership: Leader | None, external_url: str
    ) -> None:
        self.outboxes = list(outboxes)
        self.leadership = leadership
        self.external_url = external_url
        self._was_leader = False
        seen: dict[str, int] = {}
        for outbox in self.outboxes:
            count = seen[outbox.name] = seen.get(outbox.name, 0) + 1
            if count > 1:  # two receivers on one host stay apart in labels
                outbox.name = f"{outbox.name}#{count}"

    @classmethod
    def from_config(
        cls, config: Config, leadership: Leader | None, external_url: str
    ) -> Dispatcher:
        alerting = config.file.alerting
        outboxes = [
            Outbox(
                url,
                config.webhook_secret,
                timeout=alerting.timeout,
                max_retries=alerting.max_retries,
            )
            for url in alerting.webhooks
        ]
        return cls(outboxes, leadership, external_url)

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    def start(self) -> None:
        for outbox in self.outboxes:
            outbox.start()

    def dispatch(
        self, notes: Sequence[Notification], firing: Callable[[], list[Notification]]
    ) -> None:
        """Send ``notes`` if this replica leads; on taking over, what ``firing`` returns too."""
        if not self.outboxes or self.leadership is None:
            return
        leader = self.leadership.check()
        if leader and not self._was_leader:
            notes = [n for n in notes if n.status == "resolved"] + firing()
        self._was_leader = leader
        if not leader:
            return
        for note in notes:
            message = new_message(payload.encode(note, self.external_url))
            for outbox in self.outboxes:
                outbox.send(message)
            log.info(
                "alert %s %s: %s",
                note.status,
                ",".join(f"{k}={v}" for k, v in note.group.items()),
                note.alerts[-1].summary,
            )

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.stop()
        if self.leadership is not None:
            self.leadership.close()
