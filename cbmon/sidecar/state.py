"""The totals cbmon holds in memory, fed by polls and read by scrapes.

The poller thread writes and scrape threads read, under one lock held only for dictionary
updates and copies. Nothing here touches the database.
"""

from __future__ import annotations

import array
import bisect
import dataclasses
import hashlib
import itertools
import threading
import time
from collections.abc import Callable

from cbmon.db.catalog import Assumption
from cbmon.sidecar.poller import BUCKETS, CallbackDelta, PollResult

UNKNOWN_EVENT_TYPE = "unknown"
OTHER_EVENT_TYPE = "other"
POLL_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclasses.dataclass
class CallbackTotals:
    attempts: int = 0
    failures: int = 0
    observed: int = 0
    sum_seconds: float = 0.0
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * len(BUCKETS))
    invalid: int = 0
    slow: int = 0
    errors: int = 0

    def add(self, delta: CallbackDelta) -> None:
        self.attempts += delta.attempts
        self.failures += delta.failures
        self.observed += delta.observed
        self.sum_seconds += delta.sum_seconds
        self.invalid += delta.invalid
        self.slow += delta.slow
        for index, count in enumerate(delta.buckets):
            self.buckets[index] += count

    def copy(self) -> CallbackTotals:
        return dataclasses.replace(self, buckets=list(self.buckets))


class DistinctCounter:
    """Counts distinct strings in 8 bytes each: their 64-bit BLAKE2b digests, kept sorted.

    Exact unless two different strings share a digest (about 1 in 10^8 for a million strings),
    and memory stays at 8 bytes per string however long the strings are.
    """

    _MERGE_EVERY = 4096

    def __init__(self) -> None:
        self._sorted = array.array("Q")
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def add(self, value: str) -> bool:
        """Remember ``value``; True when it was not seen before."""
        digest = int.from_bytes(_digest(value, 8), "big")
        if digest in self._recent:
            return False
        index = bisect.bisect_left(self._sorted, digest)
        if index < len(self._sorted) and self._sorted[index] == digest:
            return False
        self._recent.add(digest)
        if len(self._recent) >= self._MERGE_EVERY:
            self._sorted = array.array("Q", sorted(itertools.chain(self._sorted, self._recent)))
            self._recent.clear()
        return True


def _digest(value: str, size: int) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=size).digest()


def shorten(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, ending in ``~`` and 8 hex digits of its digest so
    that two long values sharing a beginning stay two labels."""
    if len(value) <= limit:
        return value
    return f"{value[: limit - 9]}~{_digest(value, 4).hex()}"


class EventTypeLabels:
    """Maps raw event types to label values: at most ``cap`` of them (the rest fold to other),
    none longer than ``max_length`` characters (longer ones are shortened)."""

    def __init__(self, cap: int, max_length: int = 128) -> None:
        self.cap = cap
        self.max_length = max_length
        self._known: set[str] = set()
        self._folded = DistinctCounter()
        self.truncated_total = 0

    def __len__(self) -> int:
        return len(self._known)

    @property
    def folded_total(self) -> int:
        return len(self._folded)

    def label(self, raw: str | None) -> str:
        value = shorten(raw, self.max_length) if raw else UNKNOWN_EVENT_TYPE
        if value in self._known:
            return value
        if len(self._known) < self.cap:
            self._known.add(value)
            if value != raw and raw:
                self.truncated_total += 1
            return value
        self._folded.add(raw or UNKNOWN_EVENT_TYPE)
        return OTHER_EVENT_TYPE


@dataclasses.dataclass(frozen=True)
class View:
    """A consistent copy of the state for one scrape."""

    callbacks: dict[str, CallbackTotals]
    backlog: int
    oldest_age_seconds: float
    database_up: bool
    last_poll_timestamp: float
    polls_total: int
    poll_errors_total: int
    poll_buckets: tuple[int, ...]
    poll_count: int
    poll_sum: float
    lag_rows: dict[str, int]
    open_gaps: dict[str, int]
    event_types: int
    folded_total: int
    truncated_total: int
    assumptions: tuple[Assumption, ...] = ()
    ahead_rows: dict[str, int] = dataclasses.field(default_factory=dict)


class State:
    def __init__(
        self,
        max_event_types: int,
        clock: Callable[[], float] = time.time,
        max_event_type_length: int = 128,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.labels = EventTypeLabels(max_event_types, max_event_type_length)
        self._callbacks: dict[str, CallbackTotals] = {}
        self._backlog = 0
        self._oldest_created: float | None = None
        self._clock_offset = 0.0  # database clock minus our clock, from the last poll
        self._database_up = False
        self._last_poll = 0.0
        self._polls = 0
        self._poll_errors = 0
        self._poll_buckets = [0] * len(POLL_BUCKETS)
        self._poll_count = 0
        self._poll_sum = 0.0
        self._lag: dict[str, int] = {}
        self._gaps: dict[str, int] = {}
        self._assumptions: tuple[Assumption, ...] = ()
        self._ahead: dict[str, int] = {}

    def label_deltas(self, result: PollResult) -> dict[str, tuple[CallbackDelta | None, int]]:
        """The poll's deltas keyed by label value (after folding): ``(callbacks, errors)``."""
        merged: dict[str, tuple[CallbackDelta | None, int]] = {}
        with self._lock:
            for raw, delta in result.callbacks.items():
                label = self.labels.label(raw)
                previous, errors = merged.get(label, (None, 0))
                merged[label] = (delta if previous is None else previous + delta, errors)
            for raw, count in result.errors.items():
                label = self.labels.label(raw)
                previous_delta, errors = merged.get(label, (None, 0))
                merged[label] = (previous_delta, errors + count)
        return merged

    def apply(
        self,
        result: PollResult,
        deltas: dict[str, tuple[CallbackDelta | None, int]],
        duration: float,
    ) -> None:
        """Add one successful poll (``deltas`` from :meth:`label_deltas`)."""
        with self._lock:
            for label, (delta, errors) in deltas.items():
                totals = self._callbacks.setdefault(label, CallbackTotals())
                if delta is not None:
                    totals.add(delta)
                totals.errors += errors
            self._backlog = result.queue.backlog
            self._oldest_created = result.queue.oldest_created
            self._clock_offset = result.queue.db_now - self._clock()
            self._database_up = True
            self._last_poll = self._clock()
            self._polls += 1
            self._poll_count += 1
            self._poll_sum += duration
            for index, bound in enumerate(POLL_BUCKETS):
                if duration <= bound:
                    self._poll_buckets[index] += 1
            self._lag = dict(result.lag_rows)
            self._gaps = dict(result.open_gaps)
            if result.assumptions:
                self._assumptions = result.assumptions
            if result.ahead_rows:
                self._ahead = dict(result.ahead_rows)

    def poll_failed(self) -> None:
        with self._lock:
            self._database_up = False
            self._polls += 1
            self._poll_errors += 1

    @property
    def database_up(self) -> bool:
        with self._lock:
            return self._database_up

    @property
    def last_poll_timestamp(self) -> float:
        with self._lock:
            return self._last_poll

    def oldest_age_seconds(self) -> float:
        with self._lock:
            return self._oldest_age()

    def _oldest_age(self) -> float:
        if self._oldest_created is None:
            return 0.0
        return max(0.0, self._clock() + self._clock_offset - self._oldest_created)

    def view(self) -> View:
        with self._lock:
            oldest_age = self._oldest_age()
            return View(
                callbacks={label: totals.copy() for label, totals in self._callbacks.items()},
                backlog=self._backlog,
                oldest_age_seconds=oldest_age,
                database_up=self._database_up,
                last_poll_timestamp=self._last_poll,
                polls_total=self._polls,
                poll_errors_total=self._poll_errors,
                poll_buckets=tuple(self._poll_buckets),
                poll_count=self._poll_count,
                poll_sum=self._poll_sum,
                lag_rows=dict(self._lag),
                open_gaps=dict(self._gaps),
                event_types=len(self.labels),
                folded_total=self.labels.folded_total,
                truncated_total=self.labels.truncated_total,
                assumptions=self._assumptions,
                ahead_rows=dict(self._ahead),
            )
