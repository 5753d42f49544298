"""The baseline alerts: every judged indicator of the objectives table against the configured
limits, on the same side of each boundary as :func:`cbmon.slo.judge.judge_value`, over the
configured window, held for ``for``, and only where the value rests on ``min_events``.

A warning fires from the ``normal`` boundary on (itself included) and keeps firing while the
critical one does, as cbmon's own alerts escalate; inhibit it in Alertmanager.

The mechanism's indicators (``instant`` in the objectives table) are judged the same way, in
their own group and without ``for``: cbmon judges them at once, at each probe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cbmon.domain import Level
from cbmon.rules.model import Group, Rule
from cbmon.rules.promql import duration, number
from cbmon.rules.wording import Filled, baseline_text
from cbmon.slo.objectives import JUDGED, Baseline, Limits, Objective

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

    def condition(self, limits: Limits) -> str:
        """The value's side of the boundary, as the judge decides it."""
        threshold = self.threshold
        operator = self.operator
        if self.level is Level.CRITICAL and not warns(self.objective, limits):
            # Critical beyond an alert threshold on the ok side of normal: the judge calls
            # ok whatever is within normal, so critical starts at normal (a failing
            # scheduler job: ok below 1, critical above 0, so from 1 on).
            assert self.objective.better is not None
            threshold, operator = limits.normal, OPERATORS[(self.objective.better, Level.WARNING)]
        return f"{self.series} {operator} {number(threshold)}"

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


def warns(objective: Objective, limits: Limits) -> bool:
    """Whether the judge can call a value a warning: some value lies on or between the two
    thresholds (none when the alert threshold is on the ok side of normal)."""
    if limits.alert is None:
        return True
    if objective.better == "higher":
        return limits.alert <= limits.normal
    return limits.alert >= limits.normal


def levels(objective: Objective, limits: Limits) -> list[Level]:
    """The levels that have a rule: the warning where the judge can give it, the critical
    one where there is an alert threshold."""
    found = [Level.WARNING] if warns(objective, limits) else []
    return found + ([Level.CRITICAL] if limits.alert is not None else [])


def checks(
    baseline: Baseline, recorded: set[str], *, instant: bool | None = None
) -> Iterable[Check]:
    """The baseline alerts; ``instant`` True or False: the mechanism's only, or the others."""
    w = duration(baseline.window)
    for objective in JUDGED:
        if instant is not None and objective.instant != instant:
            continue
        limits = baseline.limit(objective.slo)
        if limits is None or objective.series is None or not alerted(objective, baseline, recorded):
            continue
        series = objective.series.format(w=w)
        events = None if objective.events is None else objective.events.format(w=w)
        for level in levels(objective, limits):
            threshold = limits.normal if level is Level.WARNING else limits.alert
            assert threshold is not None
            yield Check(objective, level, threshold, series, events)


def rule(check: Check, baseline: Baseline) -> Rule:
    objective = check.objective
    limits = baseline.limit(objective.slo)
    assert limits is not None
    expr = check.condition(limits)
    if check.events is not None:
        expr += f"\nand {check.events} >= {max(baseline.min_events, 1)}"
    assert objective.alertname is not None
    return Rule(
        alert=objective.alertname,
        expr=expr,
        for_=None if objective.instant else duration(baseline.for_),
        labels={"severity": check.severity, "slo": objective.slo},
        annotations=baseline_text(
            objective, check.level, baseline, Filled.templates(objective.unit)
        ),
    )


def group(baseline: Baseline, recorded: set[str]) -> Group:
    found = list(checks(baseline, recorded, instant=False))
    unrecorded = [
        o.slo
        for o in JUDGED
        if o.unit != "age" and o.alertname and o.series and not alerted(o, baseline, recorded)
    ]
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
    return Group("cbmon-baseline", tuple(rule(c, baseline) for c in found), comment)


def mechanism(baseline: Baseline, recorded: set[str]) -> Group | None:
    """The mechanism's alerts, with the judge's boundaries and no ``for``."""
    found = list(checks(baseline, recorded, instant=True))
    if not found:
        return None
    comment = (
        "The callback mechanism inside the database, with cbmon's boundaries (the NOTIFY "
        "queue's from\nmechanism.notify_queue_usage). No for: cbmon judges these at once, at "
        "each probe (mechanism.interval),\nand holds the probe's values until the next one, "
        "so a for would only delay the page, never\nsmooth a value. Prometheus sees a probe "
        "one scrape later and alerts at its next evaluation:\nat most a scrape interval and "
        "an evaluation interval after cbmon's own webhook. Their series\nare absent while a "
        "source is absent or unreadable (cbmon_mechanism_source_state), and so are\nthe "
        "alerts, as cbmon's are."
    )
    return Group("cbmon-mechanism", tuple(rule(c, baseline) for c in found), comment)
