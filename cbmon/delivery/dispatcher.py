"""Delivering notifications to webhook receivers, in the background, without losing any.

Each receiver has its own outbox and thread, so a receiver that hangs delays nobody else and
enqueueing never blocks the poll loop. A message's ``webhook-id`` is the notification's own,
derived from the alert and its transition: the same across retries, restarts and re-sends
(the receiver's idempotency key). A failed attempt is retried up to ``max_retries`` times
with exponential backoff and jitter, and never sooner than the receiver's ``Retry-After``
(:mod:`cbmon.delivery.retry`, one policy for every sender). A message that
exhausts its retries stays at the head of the outbox and is tried again every ``down_retry``
seconds, so it is delivered once the receiver comes back, in order. What waits in the
outboxes is saved with the alert state, so a restart delivers it too.

Only the replica that leads sends (:class:`~cbmon.delivery.leader.Leadership`). A replica
that takes over (or takes the role back after a blip) sends the last notification of every
alert firing or recently resolved: a predecessor's unsent ``resolved`` is not lost, and the
ids let receivers drop what they already have.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from cbmon.config import Config
from cbmon.delivery import payload
from cbmon.delivery.post import Attempt, BackgroundSender, post_signed
from cbmon.delivery.retry import WEBHOOKS, RetryPolicy
from cbmon.durations import format_duration
from cbmon.slo.notification import Notification

log = logging.getLogger(__name__)

DOWN_RETRY = 30.0
MAX_OUTBOX = 10_000


@dataclasses.dataclass(frozen=True)
class Message:
    id: str
    body: bytes


def message_of(
    note: Notification, external_url: str, database: str = "", identity: str | None = None
) -> Message:
    """The webhook message of ``note`` about ``database`` (its label). ``identity``, the
    database's configured name, is mixed into the id so that two databases' alerts never
    share one; without a name the id is the notification's own, as it always was."""
    return Message(
        id=payload.message_id(note, identity), body=payload.encode(note, external_url, database)
    )


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


class Outbox(BackgroundSender):
    """One receiver URL: the messages waiting for it and the thread that delivers them.

    Nothing runs until :meth:`start`.
    """

    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        timeout: float = 5.0,
        retry: RetryPolicy = WEBHOOKS,
        down_retry: float = DOWN_RETRY,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """``timeout``: for each attempt's whole exchange; ``ca_file``: the CAs trusted for
        an https URL instead of the default ones; ``retry``: how often and how far apart a
        failed attempt is tried again (its ``max_retries`` follows the configuration);
        ``clock``: the wall clock signatures are dated by."""
        self.url = url
        self.key = hashlib.sha256(url.encode()).hexdigest()[:16]  # names it in the state file
        self.name = display_name(url)
        self.secret = secret
        self.timeout = timeout
        self.retry = retry
        self.down_retry = down_retry
        self.ca_file = ca_file
        self.counters = Counters()
        self._clock = clock
        self._on_change = on_change or (lambda: None)
        self._messages: collections.deque[Message] = collections.deque()
        super().__init__(f"webhook {self.name}")

    def follow(self, config: Config) -> None:
        """Send as ``config`` says, from the next attempt on (at start, and at a reload). A
        change cuts short the wait before a retry: a trusted CA or a secret fixed by a reload
        is tried at once, not after the receiver's 30 s pause."""
        alerting = config.file.alerting
        settings = (config.webhook_secret, alerting.timeout, alerting.max_retries, alerting.ca_file)
        with self._cond:
            changed = settings != (self.secret, self.timeout, self.max_retries, self.ca_file)
            self.secret, self.timeout, retries, self.ca_file = settings
            self.retry = dataclasses.replace(self.retry, max_retries=retries)
            if changed:
                self._cond.notify()

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    def send(self, message: Message) -> None:
        with self._cond:
            if any(queued.id == message.id for queued in self._messages):
                return  # the same notification is already on its way
            if len(self._messages) >= MAX_OUTBOX:
                self._messages.popleft()
                self.counters.dropped += 1
                log.error("webhook outbox for %s full; dropped the oldest message", self.name)
            self._messages.append(message)
            self.counters.queued = len(self._messages)
            self._cond.notify()
        self._on_change()

    def waiting(self) -> list[Message]:
        with self._cond:
            return list(self._messages)

    def pending(self) -> int:
        with self._cond:
            return len(self._messages)

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
                self._on_change()
                attempt = 0
                continue
            attempt += 1
            if attempt > self.max_retries:
                self.counters.failed += 1
                log.warning(
                    "webhook %s: %s not delivered after %d retries (%s); trying again in %s",
                    self.name,
                    message.id,
                    self.max_retries,
                    result.error,
                    format_duration(self.down_retry),
                )
                attempt = 0
                delay = max(self.retry.honoured(result.retry_after) or 0.0, self.down_retry)
            else:
                self.counters.retries += 1
                delay = self.retry.delay(attempt, result.retry_after)
            if self._wait(delay):
                return

    def _attempt(self, message: Message) -> Attempt:
        try:
            result = post_signed(
                self.url,
                message.body,
                msg_id=message.id,
                secret=self.secret,
                timeout=self.timeout,
                ca_file=self.ca_file,
                clock=self._clock,
            )
        except Exception as exc:
            log.error("webhook %s: %s failed unexpectedly: %s", self.name, message.id, exc)
            return Attempt(False, error=type(exc).__name__)
        if not result.delivered:
            log.info("webhook %s: %s: %s", self.name, message.id, result.error)
        return result


def _outbox(url: str, config: Config) -> Outbox:
    outbox = Outbox(url, None)
    outbox.follow(config)
    return outbox


class Leader(Protocol):
    """Whether this replica sends; checked once per poll."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def foreign_holder(self) -> str | None: ...

    def check(self) -> bool: ...

    def close(self) -> None: ...


class Dispatcher:
    """Hands notifications to every outbox, when this replica leads."""

    def __init__(
        self,
        outboxes: Sequence[Outbox],
        leadership: Leader | None,
        external_url: str,
        *,
        on_leadership: Callable[[bool], None] | None = None,
        database: str = "",
        identity: str | None = None,
    ) -> None:
        """``database``: the label every payload carries; ``identity``: see :func:`message_of`."""
        self.leadership = leadership
        self.external_url = external_url
        self.database = database
        self.identity = identity
        self._on_leadership = on_leadership or (lambda leading: None)
        self._was_leader = False
        self._started = False
        self._retired: list[Outbox] = []  # removed by a reload, stopping
        self.dirty = threading.Event()  # an outbox changed since the state was last saved
        self.outboxes: list[Outbox] = []
        for outbox in outboxes:
            self._adopt(outbox, self.outboxes)
            self.outboxes.append(outbox)

    def _adopt(self, outbox: Outbox, others: Sequence[Outbox]) -> None:
        outbox._on_change = self.dirty.set
        taken, base, count = {other.name for other in others}, outbox.name, 1
        while outbox.name in taken:  # two receivers on one host stay apart in labels
            count += 1
            outbox.name = f"{base}#{count}"

    @classmethod
    def from_config(
        cls,
        config: Config,
        leadership: Leader | None,
        external_url: str,
        on_leadership: Callable[[bool], None] | None = None,
    ) -> Dispatcher:
        outboxes = [_outbox(url, config) for url in config.file.alerting.webhooks]
        return cls(
            outboxes,
            leadership,
            external_url,
            on_leadership=on_leadership,
            database=config.database,
            identity=config.file.database.name,
        )

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    def start(self) -> None:
        self._started = True
        for outbox in self.outboxes:
            outbox.start()

    def reconfigure(
        self, config: Config, current: Callable[[], list[Notification]] | None = None
    ) -> None:
        """Send to the receivers ``config`` names, as it says (a reload). A receiver kept keeps
        its queue; a new one is told, if this replica leads, of every alert firing now
        (``current``); one removed is stopped, and what waited for it is dropped, said."""
        by_url = {outbox.url: outbox for outbox in self.outboxes}
        outboxes: list[Outbox] = []
        added: list[Outbox] = []
        for url in config.file.alerting.webhooks:
            outbox = by_url.pop(url, None)
            if outbox is None:
                outbox = _outbox(url, config)
                self._adopt(outbox, [*self.outboxes, *outboxes])
                added.append(outbox)
            outbox.follow(config)
            outboxes.append(outbox)
        for gone in by_url.values():
            gone.ask_to_stop()
            self._retired.append(gone)
            if waiting := gone.pending():
                log.warning(
                    "webhook %s is no longer configured: %d notification(s) waiting for it are "
                    "dropped",
                    gone.name,
                    waiting,
                )
        self.outboxes = outboxes
        self.dirty.set()
        if self._started:
            for outbox in added:
                outbox.start()
        if self.is_leader and current is not None:
            firing = [note for note in current() if note.status == "firing"]
            for outbox in added:
                for note in firing:
                    outbox.send(self._message(note))
        if not outboxes and self.leadership is not None:
            self.leadership.close()  # another replica with receivers may lead
            self._was_leader = False

    def dispatch(
        self, notes: Sequence[Notification], current: Callable[[], list[Notification]]
    ) -> None:
        """Send ``notes`` if this replica leads. On taking the role, what ``current`` returns
        first: the last notification of every alert firing or recently resolved."""
        if not self.outboxes or self.leadership is None:
            return
        leader = self.leadership.check()
        if leader != self._was_leader:
            self._on_leadership(leader)
        if leader and not self._was_leader:
            sent = {note.id for note in notes}
            notes = [note for note in current() if note.id not in sent] + list(notes)
        self._was_leader = leader
        if not leader:
            return
        for note in notes:
            message = self._message(note)
            for outbox in self.outboxes:
                outbox.send(message)

    def _message(self, note: Notification) -> Message:
        return message_of(note, self.external_url, self.database, self.identity)

    # -- surviving a restart -----------------------------------------------------------------
    def snapshot(self) -> dict[str, list[dict[str, str]]]:
        """The messages waiting in each outbox, as plain JSON values."""
        self.dirty.clear()
        return {
            outbox.key: [{"id": m.id, "body": m.body.decode()} for m in outbox.waiting()]
            for outbox in self.outboxes
        }

    def restore(self, saved: dict[str, list[dict[str, str]]]) -> int:
        """Queue again what was waiting (for receivers still configured); returns how many."""
        restored = 0
        for outbox in self.outboxes:
            for item in saved.get(outbox.key, []):
                outbox.send(Message(id=item["id"], body=item["body"].encode()))
                restored += 1
        return restored

    def close(self, timeout: float = 5.0) -> None:
        """Stop every outbox within ``timeout`` in all (a hung receiver delays no shutdown)."""
        stopping = [*self.outboxes, *self._retired]
        for outbox in stopping:
            outbox.ask_to_stop()
        deadline = time.monotonic() + timeout
        for outbox in stopping:
            outbox.stop(max(0.0, deadline - time.monotonic()))
        if self.leadership is not None:
            self.leadership.close()
