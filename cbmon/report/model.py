"""The values a report is made of: figures from the database, and the verdicts judged on them.

Everything here is frozen and free of I/O, so renderers and tests work on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cbmon.config import Thresholds
from cbmon.slo.judge import State, judge_avg_latency, judge_backlog, judge_success_rate

INDICATORS = ("success_rate", "avg_latency")


@dataclass(frozen=True)
class Figures:
    """What the database counted for one event type (or all of them) in one period or bucket.

    ``observed`` counts attempts with a valid duration: latency figures cover only those.
    Latencies are milliseconds; None when nothing was observed.
    """

    calls: int = 0
    failures: int = 0
    observed: int = 0
    avg_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    slow: int = 0
    errors: int = 0

    @property
    def success_rate(self) -> float | None:
        """Successful attempts over attempts, 0..1; None without attempts."""
        return (self.calls - self.failures) / self.calls if self.calls else None

    @property
    def slow_share(self) -> float | None:
        """Observed durations above the slow-callback threshold over observed durations."""
        return self.slow / self.observed if self.observed else None


@dataclass(frozen=True)
class Verdicts:
    success_rate: State = State.UNKNOWN
    avg_latency: State = State.UNKNOWN

    def items(self) -> tuple[tuple[str, State], ...]:
        return (("success_rate", self.success_rate), ("avg_latency", self.avg_latency))

    @property
    def worst(self) -> State:
        return max(self.success_rate, self.avg_latency)


def judge(figures: Figures, thresholds: Thresholds, min_events: int) -> Verdicts:
    """The sidecar's rules: too few attempts (or durations) to judge gives UNKNOWN."""
    rate = figures.success_rate if figures.calls >= max(min_events, 1) else None
    avg_seconds = (
        figures.avg_ms / 1000
        if figures.avg_ms is not None and figures.observed >= max(min_events, 1)
        else None
    )
    return Verdicts(
        success_rate=judge_success_rate(rate, thresholds),
        avg_latency=judge_avg_latency(avg_seconds, thresholds),
    )


@dataclass(frozen=True)
class Row:
    """Figures and verdicts for one event type; ``event_type`` is None for the overall row."""

    event_type: str | None
    figures: Figures
    verdicts: Verdicts


@dataclass(frozen=True)
class Queue:
    """The queue at the moment of the report, not over the period."""

    backlog: int
    oldest_age_seconds: float
    verdict: State

    @staticmethod
    def judged(backlog: int, oldest_age_seconds: float, thresholds: Thresholds) -> Queue:
        return Queue(backlog, oldest_age_seconds, judge_backlog(backlog, thresholds))


@dataclass(frozen=True)
class TopError:
    message: str
    count: int
    last_seen: datetime
    event_types: int


@dataclass(frozen=True)
class Bucket:
    """One step of the time series: the bucket's start (UTC) and its rows."""

    start: datetime
    overall: Row
    event_types: tuple[Row, ...]


@dataclass(frozen=True)
class Period:
    """The half-open interval ``[start, end)`` the report covers, and how it was asked for."""

    start: datetime
    end: datetime
    event_types: tuple[str, ...] | None = None
    by: str | None = None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Report:
    period: Period
    overall: Row
    event_types: tuple[Row, ...]
    queue: Queue
    top_errors: tuple[TopError, ...]
    series: tuple[Bucket, ...] | None
    thresholds: Thresholds
    min_events: int
    generated_at: datetime

    @property
    def empty(self) -> bool:
        """Nothing was logged or recorded as an error in the period."""
        return self.overall.figures.calls == 0 and self.overall.figures.errors == 0

    @property
    def verdict(self) -> State:
        """The worst verdict of the overall row, every event type and the queue."""
        states = [self.overall.verdicts.worst, self.queue.verdict]
        states.extend(row.verdicts.worst for row in self.event_types)
        return max(states)
