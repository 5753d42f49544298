"""Counts over the objectives' periods (30 days by default), for error budgets and burn rates.

Two rings of time slots on the database's clock, per event type label and overall: one slot a
minute for the last six hours (the short burn windows: 5m, 1h, 6h) and one an hour for the
longest period (the budget, and the 3d window). Each poll adds its new rows to the slot of the
moment it read them in both rings; on start both are filled from the database by creation
time, inside the first poll's transaction, so no row is counted twice. A window's count is the
sum of the slots it spans, aligned to the ring's step: exact for those slots.

Only what budgets need is kept per slot: attempts and failures, and when a latency objective
is set, the attempts with a valid duration and, per latency threshold, those at or below it:
16 bytes a slot, about 17 KiB an event type for the default 30-day success objective.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence

from cbmon.domain import Figures
from cbmon.slo.budget import counts_of

MINUTE = 60.0
HOUR = 3600.0
SHORT = 6 * HOUR  # the minute ring's span: the burn windows up to 6h


class _Ring:
    """``size`` slots of ``step`` seconds, ``columns`` counts each, per label; slot ``s`` holds
    the times ``[s * step, (s + 1) * step)``."""

    def __init__(self, step: float, size: int, columns: int) -> None:
        self.step = step
        self.size = size
        self.columns = columns
        self.last: int | None = None  # the newest slot written
        self.data: dict[str, list[array[int]]] = {}

    def slot(self, at: float) -> int:
        return math.floor(at / self.step)

    def advance(self, newest: int) -> None:
        """Move the ring on to slot ``newest``, clearing the slots it wraps over."""
        if self.last is not None and newest <= self.last:
            return
        start = newest - self.size + 1 if self.last is None else self.last + 1
        stale = range(max(start, newest - self.size + 1), newest + 1)
        for columns in self.data.values():
            for column in columns:
                for slot in stale:
                    column[slot % self.size] = 0
        self.last = newest

    def add(self, slot: int, label: str, counts: Sequence[int]) -> None:
        if self.last is None or slot > self.last:
            self.advance(slot)
        assert self.last is not None
        if slot <= self.last - self.size:
            return  # older than the ring holds
        columns = self.data.get(label)
        if columns is None:
            columns = self.data[label] = [array("q", bytes(8 * self.size)) for _ in counts]
        position = slot % self.size
        for column, value in zip(columns, counts, strict=True):
            column[position] += value

    def total(self, label: str, column: int, since: int, until: int) -> int:
        """The sum of ``column`` over slots ``since..until`` (clipped to what is held)."""
        columns = self.data.get(label)
        if columns is None or self.last is None:
            return 0
        since, until = max(since, self.last - self.size + 1), min(until, self.last)
        if since > until:
            return 0
        values = columns[column]
        low, high = since % self.size, until % self.size
        if low <= high:
            return sum(values[low : high + 1])
        return sum(values[low:]) + sum(values[: high + 1])


class Periods:
    """Per-label counts over the periods; one poll thread writes, any thread reads totals."""

    def __init__(self, longest: float, thresholds: Iterable[float] = ()) -> None:
        """``longest``: the longest objective period (seconds); ``thresholds``: the latency
        objectives' bounds (bucket bounds of :data:`BUCKETS`)."""
        self.thresholds = tuple(sorted(set(thresholds)))
        columns = 3 + len(self.thresholds)
        self.minutes = _Ring(MINUTE, int(SHORT // MINUTE), columns)
        self.hours = _Ring(HOUR, max(1, math.ceil(longest / HOUR)) + 1, columns)
        self._lock = threading.Lock()

    def _counts(self, figures: Figures) -> list[int]:
        attempts, failures, latency = counts_of(figures, self.thresholds)
        return [attempts, failures, *latency]

    def add(self, at: float, figures: Mapping[str, Figures], total: Figures) -> None:
        """One poll's new rows at ``at`` (the database's clock), per label, and overall."""
        with self._lock:
            for ring in (self.minutes, self.hours):
                slot = ring.slot(at)
                ring.add(slot, "", self._counts(total))
                for label, counted in figures.items():
                    ring.add(slot, label, self._counts(counted))

    def backfill(self, step: float, slots: Iterable[tuple[float, Mapping[str, Figures]]]) -> None:
        """History read on start, by creation time: ``(slot end, figures per label)`` for the
        ring of ``step`` seconds."""
        ring = self.minutes if step == MINUTE else self.hours
        with self._lock:
            for end, figures in sorted(slots, key=lambda item: item[0]):
                slot = math.ceil(end / step) - 1
                overall = Figures()
                for label, counted in figures.items():
                    ring.add(slot, label, self._counts(counted))
                    overall = overall + counted
                ring.add(slot, "", self._counts(overall))

    def labels(self) -> list[str]:
        with self._lock:
            return sorted(set(self.hours.data) | set(self.minutes.data))

    def counts(self, label: str, span: float, now: float) -> tuple[int, int, tuple[int, ...]]:
        """Attempts, failures, and (observed, at or below each threshold...) over the last
        ``span`` seconds before ``now``: from the minute ring up to 6h, the hour ring beyond."""
        ring = self.minutes if span <= SHORT else self.hours
        until = ring.slot(now)
        since = until - max(1, round(span / ring.step)) + 1
        with self._lock:
            values = tuple(ring.total(label, c, since, until) for c in range(ring.columns))
        return values[0], values[1], values[2:]
