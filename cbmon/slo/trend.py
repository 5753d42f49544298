"""A short history of the judged indicators, for the status page's sparklines.

One sample per ``window / POINTS`` seconds, the newest value of that step; ``POINTS`` samples
at most, so a series spans the SLO window. A series whose indicator has had no value for the
whole span is dropped, so memory is bounded by the event types in the window: a few hundred
bytes per indicator.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterable

from cbmon.domain import Level
from cbmon.slo.judge import Indicator

POINTS = 60
# The judged indicators: the ones a sparkline next to a threshold means something for.
TRENDED = ("success_rate", "avg_latency", "backlog")
_NONE = math.nan  # no value at that step


class Trend:
    """Thread-safe: the poll thread records, page renders read."""

    def __init__(self, window: float, points: int = POINTS) -> None:
        self.step = window / points
        self.points = points
        self._times: collections.deque[float] = collections.deque(maxlen=points)
        self._series: dict[tuple[str, str], collections.deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, now: float, indicators: Iterable[Indicator]) -> None:
        # A value that rests on too few events to be judged is noise: a gap, like no value.
        values = {
            (i.slo, i.event_type): _NONE if i.value is None or i.state is Level.UNKNOWN else i.value
            for i in indicators
            if i.slo in TRENDED
        }
        with self._lock:
            if self._times and 0 <= now - self._times[-1] < self.step:
                for key, series in self._series.items():  # the same step: newest value wins
                    series[-1] = values.get(key, _NONE)
                for key in values.keys() - self._series.keys():
                    self._new(key).append(values[key])
                return
            self._times.append(now)
            for key in values.keys() - self._series.keys():
                self._new(key)
            for key, series in list(self._series.items()):
                series.append(values.get(key, _NONE))
                if all(math.isnan(value) for value in series):
                    del self._series[key]  # gone from the window for the whole span

    def resize(self, window: float) -> None:
        """A new SLO window (a reload): samples are taken a new step apart from now on."""
        with self._lock:
            self.step = window / self.points

    def _new(self, key: tuple[str, str]) -> collections.deque[float]:
        # Padded to the samples already taken, so every series lines up with the times.
        padding = [_NONE] * (len(self._times) - 1)
        series = self._series[key] = collections.deque(padding, maxlen=self.points)
        return series

    def series(self, slo: str, event_type: str) -> tuple[float | None, ...]:
        """The samples of one indicator, oldest first; None where it had no value."""
        with self._lock:
            values = tuple(self._series.get((slo, event_type), ()))
        return tuple(None if math.isnan(value) else value for value in values)

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)
