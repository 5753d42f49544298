"""The values a report is made of: figures from the database, and the verdicts judged on them.

Everything here is frozen and free of I/O, so renderers and tests work on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cbmon.domain import Figures, Level
from cbmon.slo.budget import Budget
from cbmon.slo.judge import Verdicts, judge_slo
from cbmon.slo.objectives import BACKLOG, Baseline

INDICATORS = ("success_rate", "avg_latency")


@dataclass(frozen=True)
class Latency:
    """Exact percentiles of the observed durations, from the database, in milliseconds; None
    when nothing was observed. The mean comes from the figures' sum."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


@dataclass(frozen=True)
class Row:
    """Figures and verdicts for one event type; ``event_type`` is None for the overall row."""

    event_type: str | None
    figures: Figures
    latency: Latency
    verdicts: Verdicts

    @property
    def avg_ms(self) -> float | None:
        avg = self.figures.avg_latency
        return None if avg is None else avg * 1000


@dataclass(frozen=True)
class Queue:
    """The queue at the moment of the report, not over the period.

    Only a report that ends now judges it: the queue of today says nothing of last March,
    so a historical report shows it with the verdict UNKNOWN (``current`` False).
    """

    backlog: int
    oldest_age_seconds: float
    verdict: Level
    current: bool = True

    @staticmethod
    def judged(
        backlog: int, oldest_age_seconds: float, baseline: Baseline, current: bool = True
    ) -> Queue:
        verdict = judge_slo(BACKLOG.slo, float(backlog), baseline) if current else Level.UNKNOWN
        return Queue(backlog, oldest_age_seconds, verdict, current)


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
    by: float | None = None  # seconds per bucket of the series

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Previous:
    """The same figures over the period of the same length just before (``--compare``)."""

    period: Period
    overall: Row
    event_types: tuple[Row, ...]

    def row(self, event_type: str | None) -> Row | None:
        if event_type is None:
            return self.overall
        return next((row for row in self.event_types if row.event_type == event_type), None)


@dataclass(frozen=True)
class Report:
    period: Period
    overall: Row
    event_types: tuple[Row, ...]
    queue: Queue
    top_errors: tuple[TopError, ...]
    series: tuple[Bucket, ...] | None
    baseline: Baseline
    generated_at: datetime
    previous: Previous | None = None
    # Each objective's error budget spent over this report's period.
    budgets: tuple[Budget, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing was logged or recorded as an error in the period."""
        return self.overall.figures.attempts == 0 and self.overall.figures.errors == 0

    @property
    def verdict(self) -> Level:
        """The worst verdict of the overall row, every event type and the queue (when the
        report ends now; a historical report leaves it unjudged)."""
        states = [self.overall.verdicts.worst, self.queue.verdict]
        states.extend(row.verdicts.worst for row in self.event_types)
        return max(states)
