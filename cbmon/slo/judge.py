"""Judging figures against the operators' baseline: ok, warning, critical or unknown.

The one judge of cbmon: the sidecar, ``cbmon check`` and ``cbmon report`` all call it, with the
indicators and their directions from :mod:`cbmon.slo.objectives`. The boundaries are exact: an
indicator where higher is better (the success rate) is ok above ``normal`` and critical below
``alert`` (exactly 99.5 % and exactly 99 % are warnings); one where lower is better (latency,
backlog) is ok below ``normal`` and critical above ``alert``; everything in between, boundaries
included, is a warning. An indicator is judged only when it rests on at least ``min_events``
samples: the success rate on attempts, the average latency on observed durations. Fewer is
UNKNOWN, so three calls with one failure wake nobody.

Pure logic on plain values: no I/O, no clocks, no metrics, no configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from cbmon.domain import Figures, Level
from cbmon.slo.objectives import (
    ALERT_NAMES,
    AVG_LATENCY,
    BACKLOG,
    BY_SLO,
    CALLBACK_SUCCESS_RATE,
    DEAD_LETTERS,
    END_TO_END_P95,
    OBJECTIVES,
    OVERALL,
    P95_LATENCY,
    SLOW_SHARE,
    SUCCESS_RATE,
    Baseline,
    Limits,
    Objective,
)
from cbmon.slo.objectives import TRAFFIC as _TRAFFIC

TRAFFIC = _TRAFFIC.slo  # seconds since the last attempt was logged, overall
SLOS = tuple(objective.slo for objective in OBJECTIVES)
__all__ = ["ALERT_NAMES", "OVERALL", "SLOS", "TRAFFIC", "Indicator", "Verdicts"]


def judge_value(objective: Objective, value: float | None, limits: Limits | None) -> Level:
    """``value`` (in the objective's unit) against ``limits``, the objective's way round."""
    if objective.better is None or limits is None or value is None or math.isnan(value):
        return Level.UNKNOWN
    if objective.unit == "age" and limits.normal <= 0:
        return Level.UNKNOWN  # the traffic rule is switched off
    if objective.better == "higher":
        if value > limits.normal:
            return Level.OK
        if limits.alert is not None and value < limits.alert:
            return Level.CRITICAL
        return Level.WARNING
    if value < limits.normal:
        return Level.OK
    if limits.alert is not None and value > limits.alert:
        return Level.CRITICAL
    return Level.WARNING


def judge_slo(slo: str, value: float | None, baseline: Baseline) -> Level:
    return judge_value(BY_SLO[slo], value, baseline.limit(slo))


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """The judged indicators of one set of figures."""

    success_rate: Level = Level.UNKNOWN
    avg_latency: Level = Level.UNKNOWN

    def items(self) -> tuple[tuple[str, Level], ...]:
        return ((SUCCESS_RATE.slo, self.success_rate), (AVG_LATENCY.slo, self.avg_latency))

    @property
    def worst(self) -> Level:
        return max(self.success_rate, self.avg_latency)


def judge(figures: Figures, baseline: Baseline) -> Verdicts:
    """Success rate and average latency of ``figures``, each judged once it rests on at least
    ``min_events`` samples (attempts, observed durations); UNKNOWN otherwise."""
    enough = max(baseline.min_events, 1)
    rate = figures.success_rate if figures.attempts >= enough else None
    latency = figures.avg_latency if figures.observed >= enough else None
    return Verdicts(
        success_rate=judge_slo(SUCCESS_RATE.slo, rate, baseline),
        avg_latency=judge_slo(AVG_LATENCY.slo, latency, baseline),
    )


@dataclasses.dataclass(frozen=True)
class Indicator:
    slo: str
    event_type: str  # OVERALL for every event type together
    value: float | None
    state: Level  # UNKNOWN for the extras, which the baseline does not judge
    events: int  # samples the value rests on: attempts, observed durations, queue items

    @property
    def objective(self) -> Objective:
        return BY_SLO[self.slo]


def evaluate(
    overall: Figures,
    per_type: Mapping[str, Figures],
    backlog: int,
    baseline: Baseline,
    p95: Mapping[str, float | None] | None = None,
    *,
    callbacks: bool = False,
    end_p95: Mapping[str, float | None] | None = None,
) -> list[Indicator]:
    """Every indicator, overall and per event type, and the backlog.

    ``p95``: exact 95th percentiles in seconds per event type (OVERALL included), when the
    caller read them from the database; otherwise they are estimated from the buckets (the
    same for ``end_p95``, the queued-to-delivered times). ``callbacks``: the tables have the
    lifecycle columns, so callbacks (not only attempts) are judged.
    """
    indicators: list[Indicator] = []
    enough = max(baseline.min_events, 1)
    for event_type, figures in [(OVERALL, overall), *sorted(per_type.items())]:
        quantile = figures.quantile(0.95) if p95 is None else p95.get(event_type)
        verdicts = judge(figures, baseline)
        indicators += [
            Indicator(
                SUCCESS_RATE.slo,
                event_type,
                figures.success_rate,
                verdicts.success_rate,
                figures.attempts,
            ),
            Indicator(
                AVG_LATENCY.slo,
                event_type,
                figures.avg_latency,
                verdicts.avg_latency,
                figures.observed,
            ),
            # Shown, not judged: the baseline has no rule for it.
            _shown(P95_LATENCY.slo, event_type, quantile, figures.observed),
            _judged(SLOW_SHARE.slo, event_type, figures.slow_share, figures.observed, baseline),
        ]
        if callbacks:  # after the attempts' indicators: success_rate comes first, as ever
            indicators += _callbacks(event_type, figures, baseline, enough, end_p95)
    state = judge_slo(BACKLOG.slo, float(backlog), baseline)
    indicators.append(Indicator(BACKLOG.slo, OVERALL, float(backlog), state, backlog))
    return indicators


def traffic(age: float, baseline: Baseline) -> Indicator:
    """The time since the last attempt, overall: no attempt for ``slo.traffic_absent_after``
    or more is a warning (callbacks may have stopped); 0s leaves it unjudged."""
    return Indicator(TRAFFIC, OVERALL, age, judge_slo(TRAFFIC, age, baseline), 0)


def callback_indicators(
    event_type: str,
    figures: Figures,
    baseline: Baseline,
    end_p95: Mapping[str, float | None] | None = None,
) -> list[Indicator]:
    """The callbacks' indicators of one set of figures, as :func:`evaluate` judges them."""
    return _callbacks(event_type, figures, baseline, max(baseline.min_events, 1), end_p95)


def _callbacks(
    event_type: str,
    figures: Figures,
    baseline: Baseline,
    enough: int,
    end_p95: Mapping[str, float | None] | None,
) -> list[Indicator]:
    """The callbacks' indicators: delivered over finished, dead letters (any is at least a
    warning, whatever their number), and the queued-to-delivered p95."""
    c = figures.callbacks
    rate = c.success_rate
    end = c.end_quantile(0.95) if end_p95 is None else end_p95.get(event_type)
    return [
        _judged(CALLBACK_SUCCESS_RATE.slo, event_type, rate, c.finished, baseline, enough),
        Indicator(
            DEAD_LETTERS.slo,
            event_type,
            float(c.dead),
            judge_slo(DEAD_LETTERS.slo, float(c.dead), baseline),
            c.finished,
        ),
        _judged(END_TO_END_P95.slo, event_type, end, c.ended, baseline, enough),
    ]


def _judged(
    slo: str,
    event_type: str,
    value: float | None,
    events: int,
    baseline: Baseline,
    enough: int | None = None,
) -> Indicator:
    """Judged once it rests on ``enough`` events (``min_events`` unless told)."""
    enough = max(baseline.min_events, 1) if enough is None else enough
    state = judge_slo(slo, value, baseline) if events >= enough else Level.UNKNOWN
    return Indicator(slo, event_type, value, state, events)


def _shown(slo: str, event_type: str, value: float | None, events: int) -> Indicator:
    return Indicator(slo, event_type, value, Level.UNKNOWN, events)
