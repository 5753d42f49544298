"""The sliding window the baseline is judged over, kept in memory from the polls' figures.

Each poll adds a slice (its time and per-event-type figures); slices older than the window
fall out. Running totals are kept as slices come and go, so judging costs in proportion to the
number of event types, not to the slices times the event types. On start the window is
backfilled from the database, inside the first poll's transaction, so the backfill and the
first poll see the same rows exactly once.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping

from cbmon.domain import Figures


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
        self._slices: list[dict[str, Figures]] = []
        self._totals: dict[str, Figures] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slices)

    def add(self, at: float, figures: Mapping[str, Figures]) -> None:
        if not figures:
            return
        with self._lock:
            if self._times and 0 <= at - self._times[-1] < self.step:
                target = self._slices[-1]
            else:
                # Backfilled slots may arrive out of time order; keep the slices sorted.
                index = bisect.bisect_right(self._times, at)
                self._times.insert(index, at)
                self._slices.insert(index, {})
                target = self._slices[index]
            for label, counted in figures.items():
                _add(target, label, counted)
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
