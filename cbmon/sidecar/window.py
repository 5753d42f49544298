"""The sliding window the baseline is judged over, kept in memory from the poller's deltas.

Each poll adds a slice (its time and per-event-type deltas); slices older than the window
fall out. On start the window is backfilled from the database, inside the first poll's
transaction, so the backfill and the first poll see the same rows exactly once.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Iterable, Mapping

from cbmon.sidecar.poller import BUCKETS, CallbackDelta

Deltas = Mapping[str, tuple[CallbackDelta | None, int]]
EMPTY = CallbackDelta(0, 0, 0, 0.0, (0,) * len(BUCKETS), 0, 0)


@dataclasses.dataclass(frozen=True)
class Totals:
    """What the window holds for one event type (or for all of them)."""

    attempts: int
    failures: int
    observed: int
    sum_seconds: float
    buckets: tuple[int, ...]
    slow: int
    errors: int

    @classmethod
    def of(cls, delta: CallbackDelta | None, errors: int) -> Totals:
        d = delta or EMPTY
        return cls(d.attempts, d.failures, d.observed, d.sum_seconds, d.buckets, d.slow, errors)

    @property
    def success_rate(self) -> float | None:
        return None if self.attempts == 0 else 1 - self.failures / self.attempts

    @property
    def avg_latency(self) -> float | None:
        return None if self.observed == 0 else self.sum_seconds / self.observed

    @property
    def slow_share(self) -> float | None:
        return None if self.observed == 0 else self.slow / self.observed

    @property
    def p95_latency(self) -> float | None:
        return quantile(0.95, BUCKETS, self.buckets, self.observed)


def quantile(
    q: float, bounds: Iterable[float], cumulative: Iterable[int], total: int
) -> float | None:
    """The q-quantile from cumulative bucket counts, interpolated as ``histogram_quantile`` does.

    Observations above the last bound report the last bound, as Prometheus does for +Inf.
    """
    if total == 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    bound = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return bound


def _merge(into: dict[str, tuple[CallbackDelta | None, int]], deltas: Deltas) -> None:
    for label, (delta, errors) in deltas.items():
        old, old_errors = into.get(label, (None, 0))
        merged = delta if old is None else old if delta is None else old + delta
        into[label] = (merged, old_errors + errors)


class Window:
    """Slices of deltas by time; thread-safe, since scrapes read while the poller writes.

    Deltas closer than ``length / SLICES`` to the newest slice are merged into it, so memory
    stays bounded whatever the window and poll interval; the window's edge moves in steps of
    that size.
    """

    SLICES = 120

    def __init__(self, length: float) -> None:
        self.length = length
        self.step = length / self.SLICES
        self._slices: collections.deque[tuple[float, dict[str, tuple[CallbackDelta | None, int]]]]
        self._slices = collections.deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slices)

    def add(self, at: float, deltas: Deltas) -> None:
        if not deltas:
            return
        with self._lock:
            if self._slices and 0 <= at - self._slices[-1][0] < self.step:
                _merge(self._slices[-1][1], deltas)
                return
            self._slices.append((at, dict(deltas)))
            if len(self._slices) > 1 and self._slices[-2][0] > at:
                # Backfilled slices may arrive out of time order; keep the deque sorted.
                self._slices = collections.deque(sorted(self._slices, key=lambda s: s[0]))

    def totals(self, now: float) -> tuple[Totals, dict[str, Totals]]:
        """Overall and per-event-type totals of the slices within ``(now - length, now]``."""
        start = now - self.length
        with self._lock:
            while self._slices and self._slices[0][0] <= start:
                self._slices.popleft()
            slices = list(self._slices)
        per_type: dict[str, tuple[CallbackDelta | None, int]] = {}
        for at, deltas in slices:
            if at <= now:
                _merge(per_type, deltas)
        overall: dict[str, tuple[CallbackDelta | None, int]] = {}
        for pair in per_type.values():
            _merge(overall, {"": pair})
        return (
            Totals.of(*overall.get("", (None, 0))),
            {label: Totals.of(*pair) for label, pair in per_type.items()},
        )
