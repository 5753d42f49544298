"""The SLO evaluator inside ``cbmon serve``: fed after every poll, it keeps the window, judges
the baseline and tracks alerts. It returns the notifications due; sending them is the
dispatcher's job, and the service hands them over."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from cbmon.clock import Clock, SystemClock
from cbmon.config import Config
from cbmon.domain import Mechanism, PollResult, total
from cbmon.ingest.periods import Periods
from cbmon.ingest.store import LabeledPoll
from cbmon.ingest.window import Window
from cbmon.slo import budget, mechanism, saved
from cbmon.slo.budget import Budget
from cbmon.slo.judge import Indicator, evaluate, traffic
from cbmon.slo.notification import Alert, Notification
from cbmon.slo.tracker import AlertTracker
from cbmon.slo.trend import Trend


class Evaluator:
    """The SLO side of ``cbmon serve``: owns the window of recent polls, the error budgets'
    periods, the trend (sparklines), the latest judged indicators and the
    :class:`~cbmon.slo.tracker.AlertTracker`.

    Threads: the poll thread feeds it (:meth:`observe`, :meth:`evaluate`) and reconfigures
    it at a reload; the HTTP threads read the indicators and budgets for the status page and
    the API, under a lock that guards those two lists (the tracker is read as its own
    docstring says).

    Invariants: it judges with the one judge (:mod:`cbmon.slo.judge`) that ``check`` and
    ``report`` use; every span is measured on the monotonic clock, the wall clock only dates
    what is sent and shown; it returns the notifications due and sends nothing itself (the
    dispatcher does); a reload changes thresholds, ``for`` and the window without dropping
    alerts pending or firing.
    """

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        slo = config.file.slo
        self.config = config
        self.window = Window(slo.window)
        self.tracker = AlertTracker(config.baseline, config.file.alerting.repeat_interval)
        self.trend = Trend(slo.window)
        self.reconfigure(config)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._indicators: list[Indicator] = []
        # Counts over the objectives' periods, and the budgets judged on them at each poll.
        baseline = config.baseline
        longest = budget.longest_period(baseline)
        self._thresholds = budget.thresholds_of(baseline)
        self.periods = Periods(longest, self._thresholds) if longest > 0 else None
        self._budgets: list[Budget] = []
        self._callbacks = False  # the tables have the lifecycle: callbacks are judged too
        # When the last attempt was logged, by our clock; before any, when we started
        # looking: the traffic rule never counts time cbmon did not watch.
        self._last_attempt: float | None = None
        self.mechanism: Mechanism | None = None  # the last probe of the mechanism, judged too

    def reconfigure(self, config: Config) -> None:
        """Judge by ``config`` from the next evaluation on (at start, and at a reload): alerts
        pending or firing carry on under the new thresholds, ``for`` and window."""
        slo = config.file.slo
        self.config = config
        self.baseline = config.baseline
        self.tracker.baseline = self.baseline
        self.tracker.repeat_interval = config.file.alerting.repeat_interval
        self.window.resize(slo.window)
        self.trend.resize(slo.window)

    def observe(self, result: PollResult, labeled: LabeledPoll) -> list[Notification]:
        """Add a poll to the window and judge it; the notifications that are due."""
        # Spans are decided on the clock that never steps; history slots are on the database's.
        now, wall = self._clock.monotonic(), self._clock.wall()
        offset = now - result.queue.db_now
        for end, figures in labeled.history:
            self.window.add(end + offset, figures)
            if any(counted.attempts for counted in figures.values()):
                self._saw_attempts(min(now, end + offset))
        self.window.add(now, labeled.figures)
        self._count_periods(result, labeled)
        if result.features is not None:
            self._callbacks = result.features.outcomes
        if any(counted.attempts for counted in labeled.figures.values()):
            self._saw_attempts(now)
        elif self._last_attempt is None:
            self._last_attempt = now
        return self.evaluate(result.queue.backlog, now, wall)

    def _count_periods(self, result: PollResult, labeled: LabeledPoll) -> None:
        """Add the poll to the periods (on the database's clock) and judge the budgets."""
        if self.periods is None:
            return
        for step, slots in labeled.periods:
            self.periods.backfill(step, slots)
        db_now = result.queue.db_now
        self.periods.add(db_now, labeled.figures, total(labeled.figures.values()))
        found = budget.budgets(
            self.baseline, self.periods.labels(), self.periods.counts, self._thresholds, db_now
        )
        with self._lock:
            self._budgets = found

    def budgets(self) -> list[Budget]:
        """Every objective's error budget as of the last poll."""
        with self._lock:
            return list(self._budgets)

    def _saw_attempts(self, at: float) -> None:
        if self._last_attempt is None or at > self._last_attempt:
            self._last_attempt = at

    def evaluate(self, backlog: int, now: float, wall: float | None = None) -> list[Notification]:
        overall, per_type = self.window.totals(now)
        baseline = self.baseline
        indicators = evaluate(overall, per_type, backlog, baseline, callbacks=self._callbacks)
        if baseline.traffic_absent_after > 0:
            idle = now - (now if self._last_attempt is None else self._last_attempt)
            indicators.append(traffic(max(0.0, idle), baseline))
        if self.mechanism is not None:
            missed = self.config.file.mechanism.missed_runs
            indicators += mechanism.indicators(self.mechanism, baseline, missed)
        notes = self.tracker.update(indicators, now, wall)
        self.trend.record(now, indicators)
        with self._lock:
            self._indicators = indicators
        return notes

    def current(self) -> list[Notification]:
        """The last notification of every alert firing or recently resolved (what a replica
        taking over sends again)."""
        retention = self.config.file.alerting.resolved_retention
        return self.tracker.current(self._clock.monotonic(), retention)

    def alerts(self) -> list[Alert]:
        """The alerts firing now and those resolved within the retention (for Alertmanager)."""
        retention = self.config.file.alerting.resolved_retention
        return self.tracker.alerts(self._clock.monotonic(), retention)

    # -- surviving a restart -----------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The alert tracks, their times on the wall clock."""
        return saved.snapshot(self.tracker)

    def restore(self, tracks: Iterable[dict[str, Any]]) -> int:
        """Tracks a :meth:`snapshot` saved; how many alerts fire again."""
        return saved.restore(self.tracker, tracks, self._clock.wall() - self._clock.monotonic())

    def indicators(self) -> list[Indicator]:
        with self._lock:
            return list(self._indicators)
