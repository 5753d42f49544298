"""When a failed send is tried again: one policy for every sender.

The webhook outboxes, the Alertmanager poster and the reference worker each hold a
:class:`RetryPolicy` and ask it how long to wait; none computes a backoff or caps a
``Retry-After`` of its own. The reconnect waits of the poll loop and of the wake listener
use the same rule.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

RETRY_AFTER_CAP = 300.0
"""The longest ``Retry-After`` honoured, in seconds: a receiver asking for an hour must not
hold an alert back for an hour."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a failed send is tried again.

    After failed attempt *n* (1-based) the wait is ``initial * factor^(n-1)``, at most
    ``cap``, less up to ``jitter`` of it at random so that many senders spread out. A
    receiver's ``Retry-After`` (429 and 503) is honoured up to ``retry_after_cap``: the wait
    is then the longer of the two, never sooner than the receiver asked nor than the backoff.
    """

    initial: float = 1.0  # seconds after the first failure
    factor: float = 2.0  # each further failure multiplies the wait; 1 keeps it fixed
    cap: float = 30.0  # the longest backoff
    retry_after_cap: float = RETRY_AFTER_CAP
    jitter: float = 0.5  # the share of a wait taken off at random, in [0, 1]
    max_retries: int = 3  # tries after the first, where the sender counts them

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed ``attempt`` (1-based; 0 and below count as 1)."""
        try:
            ceiling = min(self.cap, self.initial * self.factor ** max(0, attempt - 1))
        except OverflowError:  # a receiver down for thousands of attempts
            ceiling = self.cap
        return float(ceiling * (1 - self.jitter * rng()))

    def honoured(self, retry_after: float | None) -> float | None:
        """The part of a receiver's ``Retry-After`` that is honoured, in seconds."""
        if retry_after is None:
            return None
        return min(max(0.0, retry_after), self.retry_after_cap)

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after failed ``attempt``, given the receiver's ``Retry-After``."""
        seconds = self.backoff(attempt, rng)
        asked = self.honoured(retry_after)
        return seconds if asked is None else max(seconds, asked)


WEBHOOKS = RetryPolicy()
"""Alert webhooks: 1 s doubling up to 30 s, three retries (``alerting.max_retries``)."""

ALERTMANAGER = RetryPolicy()
"""Alertmanager posts; the cap is further bounded by the resend interval."""

RECONNECT = RetryPolicy(jitter=0.2)
"""The poll loop and the wake listener reconnecting to the database."""

WORKER = RetryPolicy(cap=RETRY_AFTER_CAP)
"""The reference worker's callbacks, for event types without a router policy."""
