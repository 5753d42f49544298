"""What an alert says, in words read at 3 a.m.: what is measured, against which threshold,
and what to look at first; all from the objectives table and the baseline's limits.

Pure: values in, text out.
"""

from __future__ import annotations

from cbmon import present
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo.judge import Indicator
from cbmon.slo.objectives import (
    AVG_LATENCY,
    BACKLOG,
    OVERALL,
    SUCCESS_RATE,
    Baseline,
    Limits,
    Objective,
)


def scope(event_type: str) -> str:
    return "all event types" if event_type == OVERALL else f"event type {event_type}"


def _shown(objective: Objective, value: float | None, limits: Limits | None) -> str:
    if objective.unit == "age":
        return present.age(value)
    return present.in_unit(objective.unit, value, present.boundaries(limits))


def bound(objective: Objective, limits: Limits, which: str) -> str:
    """One threshold as people read it: ``ok > 99.50%`` (``normal``), ``critical < 99.00%``
    (``alert``)."""
    higher = objective.better == "higher"
    if which == "normal":
        return f"ok {'>' if higher else '<'} {_shown(objective, limits.normal, limits)}"
    return f"critical {'<' if higher else '>'} {_shown(objective, limits.alert, limits)}"


def bounds(objective: Objective, limits: Limits | None) -> str:
    """An indicator's thresholds in one phrase: ``ok > 99.50%, critical < 99.00%``."""
    if limits is None:
        return "not judged"
    text = bound(objective, limits, "normal")
    if limits.alert is not None:
        text += ", " + bound(objective, limits, "alert")
    return text


def baseline_line(baseline: Baseline, unknown: str) -> str:
    """The whole baseline in one line, for the foot of a report or a check."""
    parts = [
        f"{objective.label} {bounds(objective, baseline.limit(objective.slo))}"
        for objective in (SUCCESS_RATE, AVG_LATENCY, BACKLOG)
    ]
    slow = present.millis(baseline.slow_callback)
    return (
        f"Baseline: {'; '.join(parts)}; slow = above {slow}; fewer than "
        f"{baseline.min_events} events: {unknown}"
    )


def threshold(objective: Objective, level: Level, limits: Limits | None) -> str:
    """The threshold crossed at ``level``: ``below 99.00%``, ``at or above 150 ms``."""
    if limits is None:
        return "-"
    if objective.unit == "age":
        return f"none for {present.age(limits.normal)} or more"
    if level is Level.CRITICAL and limits.alert is not None:
        word = "below" if objective.better == "higher" else "above"
        return f"{word} {_shown(objective, limits.alert, limits)}"
    word = "at or below" if objective.better == "higher" else "at or above"
    return f"{word} {_shown(objective, limits.normal, limits)}"


def describe(indicator: Indicator, level: Level, baseline: Baseline) -> tuple[str, str, str]:
    """What is measured, the description and the threshold, in words read at 3 a.m."""
    objective = indicator.objective
    limits = baseline.limit(indicator.slo)
    normal = "-" if limits is None else _shown(objective, limits.normal, limits)
    alert = (
        "-" if limits is None or limits.alert is None else _shown(objective, limits.alert, limits)
    )
    fields = {
        "value": _shown(objective, indicator.value, limits),
        "normal": normal,
        "alert": alert,
        "scope": scope(indicator.event_type),
        "span": format_duration(baseline.window),
        "events": indicator.events,
        "slow": present.millis(baseline.slow_callback),
    }
    phrase = objective.measured.format(**fields)
    description = f"{objective.explained.format(**fields)} {objective.advice}"
    return phrase, description, threshold(objective, level, limits)


def summary(phrase: str, threshold: str, level: Level, change: str, successor: Level | None) -> str:
    """An alert's one line: firing, escalated, eased or resolved."""
    if change == "firing":
        return f"{phrase} ({threshold})"
    if successor is not None and successor > level:
        return f"Escalated to {successor.label}: {phrase} (was {level.label}: {threshold})"
    if successor is not None:
        return f"Eased to {successor.label}: {phrase} (was {level.label}: {threshold})"
    return f"Resolved: {phrase} (was {level.label}: {threshold})"


def no_data_reason(indicator: Indicator, min_events: int, window: float) -> str:
    """Why an indicator is not judged, in words: its events in the window and what it needs."""
    objective = indicator.objective
    if objective.unit == "age":
        return "the traffic rule is switched off (slo.traffic_absent_after is 0s)"
    return (
        f"no traffic: {indicator.events} {objective.samples} for {scope(indicator.event_type)} "
        f"in the last {format_duration(window)}, fewer than the {max(min_events, 1)} needed "
        "to judge"
    )


def resolved_for_lack_of_data(
    reason: str, level: Level, threshold: str, lasted: float
) -> tuple[str, str]:
    """The summary and description of an alert resolved because its data ran out."""
    return (
        f"Resolved for lack of data: {reason} (was {level.label}: {threshold})",
        f"{reason[0].upper()}{reason[1:]}, for {format_duration(lasted)}. Without enough "
        "traffic to judge, an alert resolves; it fires again if the state comes back once "
        "there is. Check that callbacks are still being made (the queue, the workers, the "
        "triggers that enqueue them).",
    )
