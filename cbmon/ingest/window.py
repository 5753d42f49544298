"""The sliding window the baseline is judged over, kept in memory from the polls' figures.

Each poll adds a slice (its time and per-event-type figures); slices older than the window
fall out. Running totals are kept as slices come and go, so judging costs in proportion to the
number of event types, not to the slices times the event types. On start the window is
backfilled from the database, inside the first poll's transaction, so the backfill and the
first poll see the same rows exactly once.
"""

from __future__ import annotations

import array
import bisect
import threading
from collections.abc import Iterator, Mapping

from cbmon.domain import BUCKETS, TRIES, WAIT_BUCKETS, Callbacks, Figures

_CALLBACK_COUNTS = 6 + len(TRIES) + 2 * len(WAIT_BUCKETS)
_COUNTS = 6 + len(BUCKETS) + _CALLBACK_COUNTS  # the counts of one Figures, flat
_SUMS = 3  # durations, queue waits, ends
_MAX_PACKED = 2**32 - 1  # what an unsigned 32-bit slot holds; larger counts stay unpacked


class _Slice:
    """One slice's figures per event type. The newest slice takes additions as Figures; once a
    newer one opens, it is packed into two flat arrays, 4 bytes per count and 8 for each sum
    (durations, queue waits, ends): a fifth of the memory of the objects (500 event types x
    120 slices)."""

    __slots__ = ("counts", "labels", "open", "sums")

    def __init__(self) -> None:
        self.open: dict[str, Figures] | None = {}
        self.labels: tuple[str, ...] = ()
        self.counts = array.array("I")
        self.sums = array.array("d")

    def add(self, label: str, counted: Figures) -> None:
        if self.open is None:  # an older slot of the backfill arriving late: unpack it
            self.open = dict(self.items())
            self.labels, self.counts, self.sums = (), array.array("I"), array.array("d")
        _add(self.open, label, counted)

    def pack(self) -> None:
        if self.open is None:
            return
        counts = [_counts(counted) for counted in self.open.values()]
        if any(value > _MAX_PACKED for row in counts for value in row):
            return  # never in practice; exact either way
        self.labels = tuple(self.open)
        for row in counts:
            self.counts.extend(row)
        for counted in self.open.values():
            self.sums.extend(_sums(counted))
        self.open = None

    def items(self) -> Iterator[tuple[str, Figures]]:
        if self.open is not None:
            yield from self.open.items()
            return
        for index, label in enumerate(self.labels):
            row = self.counts[index * _COUNTS : (index + 1) * _COUNTS]
            yield label, _figures(row, self.sums[index * _SUMS : (index + 1) * _SUMS])


def _counts(c: Figures) -> tuple[int, ...]:
    b = c.callbacks
    return (
        c.attempts, c.failures, c.observed, c.invalid, c.slow, c.errors, *c.buckets,
        b.delivered, b.dead, b.duplicates, b.tries_sum, b.waited, b.ended,
        *b.tries, *b.waits, *b.ends,
    )  # fmt: skip


def _sums(c: Figures) -> tuple[float, float, float]:
    return c.sum_seconds, c.callbacks.wait_sum, c.callbacks.end_sum


def _figures(row: array.array[int], sums: array.array[float]) -> Figures:
    attempts, failures, observed, invalid, slow, errors = row[:6]
    at = 6 + len(BUCKETS)
    buckets = tuple(row[6:at])
    delivered, dead, duplicates, tries_sum, waited, ended = row[at : at + 6]
    at += 6
    tries = tuple(row[at : at + len(TRIES)])
    at += len(TRIES)
    waits = tuple(row[at : at + len(WAIT_BUCKETS)])
    ends = tuple(row[at + len(WAIT_BUCKETS) : at + 2 * len(WAIT_BUCKETS)])
    callbacks = Callbacks(
        delivered, dead, duplicates, tries, tries_sum, waited, sums[1], waits, ended, sums[2], ends
    )
    return Figures(attempts, failures, observed, sums[0], buckets, invalid, slow, errors, callbacks)


class Window:
    """Slices of figures by time; thread-safe, since scrapes read while the poller writes.

    Figures closer than ``length / SLICES`` to the newest slice are merged into it, so memory
    stays bounded whatever the window and poll interval; the window's edge moves in steps of
    that size.
    """

    SLICES = 120

    def __init__(self, length: float) -> None:
        self.length = length
        self.step = length / self.SLICES
        self._times: list[float] = []
        self._slices: list[_Slice] = []
        self._totals: dict[str, Figures] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slices)

    def resize(self, length: float) -> None:
        """A new length (a reload): a shorter window lets its oldest slices go at the next
        judgement; a longer one holds what it has and fills as polls come."""
        with self._lock:
            self.length = length
            self.step = length / self.SLICES

    def add(self, at: float, figures: Mapping[str, Figures]) -> None:
        if not figures:
            return
        with self._lock:
            if self._times and 0 <= at - self._times[-1] < self.step:
                target = self._slices[-1]
            else:
                # Backfilled slots may arrive out of time order; keep the slices sorted.
                index = bisect.bisect_right(self._times, at)
                target = _Slice()
                for older in self._slices:
                    older.pack()
                self._times.insert(index, at)
                self._slices.insert(index, target)
            for label, counted in figures.items():
                target.add(label, counted)
                _add(self._totals, label, counted)

    def totals(self, now: float) -> tuple[Figures, dict[str, Figures]]:
        """Overall and per-event-type figures of the slices within ``(now - length, now]``."""
        with self._lock:
            self._expire(now - self.length)
            per_type = dict(self._totals)
        overall = Figures()
        for counted in per_type.values():
            overall = overall + counted
        return overall, per_type

    def _expire(self, start: float) -> None:
        expired = bisect.bisect_right(self._times, start)
        for old in self._slices[:expired]:
            for label, counted in old.items():
                remaining = self._totals[label] - counted
                if remaining.empty and remaining.observed == 0:
                    del self._totals[label]  # an event type with no traffic left in the window
                else:
                    self._totals[label] = remaining
        del self._times[:expired]
        del self._slices[:expired]


def _add(into: dict[str, Figures], label: str, counted: Figures) -> None:
    previous = into.get(label)
    into[label] = counted if previous is None else previous + counted
