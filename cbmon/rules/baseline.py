"""The baseline alerts: every judged indicator of the objectives table against the configured
limits, on the same side of each boundary as :func:`cbmon.slo.judge.judge_value`, over the
configured window, held for ``for``, and only where the value rests on ``min_events``.

A warning fires from the ``normal`` boundary on (itself included) and keeps firing while the
critical one does, as cbmon's own alerts escalate; inhibit it in Alertmanager.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cbmon.domain import Level
from cbmon.rules.model import Group, Rule
from cbmon.rules.promql import duration, number
from cbmon.rules.wording import Filled, baseline_text
from cbmon.slo.objectives import JUDGED, Baseline, Objective

# How the judge's boundaries read in PromQL, by which way is better: the warning includes its
# boundary (exactly 99.5 % is a warning), the critical one excludes it.
OPERATORS = {
    ("higher", Level.WARNING): "<=",
    ("higher", Level.CRITICAL): "<",
    ("lower", Level.WARNING): ">=",
    ("lower", Level.CRITICAL): ">",
}


@dataclasses.dataclass(frozen=True)
class Check:
    """One baseline alert: an indicator beyond one of its thresholds."""

    objective: Objective
    level: Level  # WARNING (the normal threshold) or CRITICAL (the alert threshold)
    threshold: float
    series: str  # the recorded series judged, at the configured window
    events: str | None  # the recorded count the min_events guard reads

    @property
    def operator(self) -> str:
        assert self.objective.better is not None
        return OPERATORS[(self.objective.better, self.level)]

    @property
    def severity(self) -> str:
        return "critical" if self.level is Level.CRITICAL else "warning"


def alerted(objective: Objective, baseline: Baseline, recorded: set[str]) -> bool:
    """Whether the rules can judge ``objective``: the baseline has limits for it and its
    series is recorded (the traffic rule is the optional file's)."""
    if objective.unit == "age" or objective.alertname is None or objective.series is None:
        return False
    if baseline.limit(objective.slo) is None:
        return False
    return objective.series.format(w=duration(baseline.window)) in recorded


def checks(baseline: Baseline, recorded: set[str]) -> Iterable[Check]:
    w = duration(baseline.window)
    for objective in JUDGED:
        limits = baseline.limit(objective.slo)
        if limits is None or objective.series is None or not alerted(objective, baseline, recorded):
            continue
        series = objective.series.format(w=w)
        events = None if objective.events is None else objective.events.format(w=w)
        yield Check(objective, Level.WARNING, limits.normal, series, events)
        if limits.alert is not None:
            yield Check(objective, Level.CRITICAL, limits.alert, series, events)


def rule(check: Check, baseline: Baseline) -> Rule:
    expr = f"{check.series} {check.operator} {number(check.threshold)}"
    if check.events is not None:
        expr += f"\nand {check.events} >= {max(baseline.min_events, 1)}"
    objective = check.objective
    assert objective.alertname is not None
    return Rule(
        alert=objective.alertname,
        expr=expr,
        for_=duration(baseline.for_),
        labels={"severity": check.severity, "slo": objective.slo},
        annotations=baseline_text(
            objective, check.level, baseline, Filled.templates(objective.unit)
        ),
    )


def group(baseline: Baseline, recorded: set[str]) -> Group:
    found = list(checks(baseline, recorded))
    unrecorded = [
        o.slo
        for o in JUDGED
        if o.unit != "age" and o.alertname and o.series and not alerted(o, baseline, recorded)
    ]
    elsewhere = [o.slo for o in JUDGED if o.alertname and o.series is None and o.unit != "age"]
    comment = (
        "The operators' baseline with cbmon's boundaries: a warning from the normal threshold "
        "on (itself included),\ncritical beyond the alert threshold; over "
        f"{duration(baseline.window)}, for {duration(baseline.for_)}, and only on at least "
        f"{max(baseline.min_events, 1)} events (slo.window,\nslo.for, slo.min_events), so "
        'low traffic pages nobody, as cbmon serve says "no traffic". A warning keeps\n'
        "firing while its critical one does: inhibit it in Alertmanager (docs/prometheus.md)."
    )
    if unrecorded:
        comment += (
            f"\nNot judged here, their series cannot be recorded exactly: {', '.join(unrecorded)}"
            "\n(slow_share needs thresholds.slow_callback on a bound of the duration histogram)."
        )
    if elsewhere:
        comment += (
            f"\nNot generated yet, no recorded series in the objectives table: "
            f"{', '.join(elsewhere)} (the mechanism's are in alerts-mechanism.yml)."
        )
    return Group("cbmon-baseline", tuple(rule(c, baseline) for c in found), comment)
