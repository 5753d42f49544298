"""The values a report is made of: figures from the database, and the verdicts judged on them.

Everything here is frozen and free of I/O, so renderers and tests work on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cbmon.domain import TRIES, Callbacks, Figures, Level
from cbmon.slo.budget import Budget
from cbmon.slo.judge import Indicator, Verdicts, judge_slo
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


# The tries a finished callback used, as the report lists them: 1, 2, 3, 4, then more.
TRIES_LABELS: tuple[str, ...] = (*(str(bound) for bound in TRIES), f"{TRIES[-1] + 1}+")


def tries_counts(callbacks: Callbacks) -> tuple[int, ...]:
    """Finished callbacks by the tries they used (as :data:`TRIES_LABELS`), from the
    cumulative counts serve exports."""
    cumulative = (*callbacks.tries, callbacks.finished)
    return tuple(n - (cumulative[i - 1] if i else 0) for i, n in enumerate(cumulative))


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


@dataclass(frozen=True)
class Lifecycle:
    """What happened to callbacks (queue rows), beside the attempts' figures: delivered, dead,
    duplicates and tries are the figures' :class:`~cbmon.domain.Callbacks`, counted as serve
    counts them; these are the rest, exact from the database.

    ``wait`` is queued to first attempt, ``end`` queued to delivered (retries included), both
    in milliseconds. A failed first attempt is ``recovered`` when a retry delivered it."""

    callbacks: int = 0  # callbacks with an attempt in the period
    first_attempts: int = 0
    first_try: int = 0  # first attempts that delivered their callback
    first_failed: int = 0
    recovered: int = 0
    wait: Latency = Latency()
    end: Latency = Latency()
    indicators: tuple[Indicator, ...] = ()  # callback_success_rate, dead_letters, end_to_end_p95

    @property
    def first_try_rate(self) -> float | None:
        return _share(self.first_try, self.first_attempts)

    @property
    def recovered_share(self) -> float | None:
        """The share of failed first attempts a retry delivered: exceptions handled
        without anyone stepping in."""
        return _share(self.recovered, self.first_failed)

    @property
    def worst(self) -> Level:
        return max((i.state for i in self.indicators), default=Level.UNKNOWN)

    def state(self, slo: str) -> Level:
        return next((i.state for i in self.indicators if i.slo == slo), Level.UNKNOWN)


@dataclass(frozen=True)
class Row:
    """Figures and verdicts for one event type; ``event_type`` is None for the overall row.
    ``lifecycle`` is None when the tables do not let callbacks be told apart."""

    event_type: str | None
    figures: Figures
    latency: Latency
    verdicts: Verdicts
    lifecycle: Lifecycle | None = None

    @property
    def worst(self) -> Level:
        own = self.verdicts.worst
        return own if self.lifecycle is None else max(own, self.lifecycle.worst)

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
    # Whether callbacks are told apart (the lifecycle columns are mapped), and what is off and
    # why, in one line each.
    lifecycle: bool = False
    lifecycle_notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing was logged or recorded as an error in the period."""
        return self.overall.figures.attempts == 0 and self.overall.figures.errors == 0

    @property
    def verdict(self) -> Level:
        """The worst verdict of the overall row, every event type and the queue (when the
        report ends now; a historical report leaves it unjudged)."""
        states = [self.overall.worst, self.queue.verdict]
        states.extend(row.worst for row in self.event_types)
        return max(states)
