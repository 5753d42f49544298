"""Judging figures against the operators' baseline: ok, warning, critical or unknown.

The one judge of cbmon: the sidecar, ``cbmon check`` and ``cbmon report`` all call it. The
boundaries are exact: a success rate is ok when above ``normal`` and critical when below
``alert`` (exactly 99.5 % and exactly 99 % are warnings); latency and backlog are ok when below
``normal`` and critical when above ``alert``; everything in between, boundaries included, is a
warning. An indicator is judged only when it rests on at least ``min_events`` samples: the
success rate on attempts, the average latency on observed durations. Fewer is UNKNOWN, so
three calls with one failure wake nobody.

Pure logic on plain values: no I/O, no clocks, no metrics.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from cbmon.config import Thresholds
from cbmon.domain import Figures, Level

OVERALL = ""  # the event_type label value of indicators over every event type
TRAFFIC = "last_attempt_age"  # seconds since the last attempt was logged, overall
SLOS = ("success_rate", "avg_latency", "p95_latency", "slow_share", "backlog", TRAFFIC)
ALERT_NAMES = {
    "success_rate": "CallbackSuccessRateLow",
    "avg_latency": "CallbackLatencyHigh",
    "backlog": "CallbackBacklogHigh",
    TRAFFIC: "CallbackTrafficAbsent",
}


def judge_higher_is_better(value: float | None, normal: float, alert: float) -> Level:
    if value is None or math.isnan(value):
        return Level.UNKNOWN
    if value > normal:
        return Level.OK
    if value < alert:
        return Level.CRITICAL
    return Level.WARNING


def judge_lower_is_better(value: float | None, normal: float, alert: float) -> Level:
    if value is None or math.isnan(value):
        return Level.UNKNOWN
    if value < normal:
        return Level.OK
    if value > alert:
        return Level.CRITICAL
    return Level.WARNING


def judge_success_rate(value: float | None, thresholds: Thresholds) -> Level:
    """``value`` is a ratio from 0 to 1."""
    limits = thresholds.success_rate
    return judge_higher_is_better(value, limits.normal, limits.alert)


def judge_avg_latency(value: float | None, thresholds: Thresholds) -> Level:
    """``value`` is in seconds."""
    limits = thresholds.avg_latency
    return judge_lower_is_better(value, limits.normal, limits.alert)


def judge_backlog(value: float | None, thresholds: Thresholds) -> Level:
    """``value`` counts waiting queue items."""
    limits = thresholds.backlog
    return judge_lower_is_better(value, limits.normal, limits.alert)


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """The judged indicators of one set of figures."""

    success_rate: Level = Level.UNKNOWN
    avg_latency: Level = Level.UNKNOWN

    def items(self) -> tuple[tuple[str, Level], ...]:
        return (("success_rate", self.success_rate), ("avg_latency", self.avg_latency))

    @property
    def worst(self) -> Level:
        return max(self.success_rate, self.avg_latency)


def judge(figures: Figures, thresholds: Thresholds, min_events: int) -> Verdicts:
    """Success rate and average latency of ``figures``, each judged once it rests on at least
    ``min_events`` samples (attempts, observed durations); UNKNOWN otherwise."""
    enough = max(min_events, 1)
    rate = figures.success_rate if figures.attempts >= enough else None
    latency = figures.avg_latency if figures.observed >= enough else None
    return Verdicts(
        success_rate=judge_success_rate(rate, thresholds),
        avg_latency=judge_avg_latency(latency, thresholds),
    )


@dataclasses.dataclass(frozen=True)
class Indicator:
    slo: str
    event_type: str  # OVERALL for every event type together
    value: float | None
    state: Level  # UNKNOWN for the extras, which the baseline does not judge
    events: int  # samples the value rests on: attempts, observed durations, queue items


def evaluate(
    overall: Figures,
    per_type: Mapping[str, Figures],
    backlog: int,
    thresholds: Thresholds,
    min_events: int,
    p95: Mapping[str, float | None] | None = None,
) -> list[Indicator]:
    """Every indicator, overall and per event type, and the backlog.

    ``p95``: exact 95th percentiles in seconds per event type (OVERALL included), when the
    caller read them from the database; otherwise they are estimated from the buckets.
    """
    indicators: list[Indicator] = []
    for event_type, figures in [(OVERALL, overall), *sorted(per_type.items())]:
        quantile = figures.quantile(0.95) if p95 is None else p95.get(event_type)
        verdicts = judge(figures, thresholds, min_events)
        indicators += [
            Indicator(
                "success_rate",
                event_type,
                figures.success_rate,
                verdicts.success_rate,
                figures.attempts,
            ),
            Indicator(
                "avg_latency",
                event_type,
                figures.avg_latency,
                verdicts.avg_latency,
                figures.observed,
            ),
            # Shown, not judged: the baseline has no rule for them.
            _shown("p95_latency", event_type, quantile, figures.observed),
            _shown("slow_share", event_type, figures.slow_share, figures.observed),
        ]
    indicators.append(
        Indicator("backlog", OVERALL, float(backlog), judge_backlog(backlog, thresholds), backlog)
    )
    return indicators


def judge_traffic(age: float | None, absent_after: float) -> Level:
    """No attempt logged for ``absent_after`` seconds or more is a warning: callbacks may have
    stopped. ``absent_after`` 0 leaves it unjudged (the rule is optional)."""
    if absent_after <= 0 or age is None or math.isnan(age):
        return Level.UNKNOWN
    return Level.WARNING if age >= absent_after else Level.OK


def traffic(age: float, absent_after: float) -> Indicator:
    """The time since the last attempt, overall, judged by :func:`judge_traffic`."""
    return Indicator(TRAFFIC, OVERALL, age, judge_traffic(age, absent_after), 0)


def _shown(slo: str, event_type: str, value: float | None, events: int) -> Indicator:
    return Indicator(slo, event_type, value, Level.UNKNOWN, events)
