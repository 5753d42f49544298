"""What the generated alerts say: cbmon's own wording (the objectives table's ``measured``,
``explained`` and ``advice``, :mod:`cbmon.slo.wording`) with Prometheus templates where the
value and the event type go.

Each text is built by one function from its fields, once with the templates (the rule) and
once with the values Prometheus will put there (the promtool test that expects it), so a test
and its rule cannot drift apart. :func:`humanize` writes numbers exactly as Prometheus' template
functions do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from cbmon import present
from cbmon.domain import Level
from cbmon.rules.promql import duration
from cbmon.slo import wording
from cbmon.slo.objectives import OVERALL, Baseline, Limits, Objective, Unit

SCOPE = "{{ with $labels.event_type }}event type {{ . }}{{ else }}all event types{{ end }}"
TEMPLATE = {
    "ratio": "{{ $value | humanizePercentage }}",
    "seconds": "{{ $value | humanizeDuration }}",
    "items": '{{ $value | printf "%.0f" }}',
    "age": "{{ $value | humanizeDuration }}",
}


@dataclasses.dataclass(frozen=True)
class Filled:
    """What goes into a text: the templates, or what Prometheus makes of them."""

    value: str
    scope: str

    @classmethod
    def templates(cls, unit: Unit) -> Filled:
        return cls(TEMPLATE[unit], SCOPE)

    @classmethod
    def of(cls, unit: Unit, value: float, event_type: str = OVERALL) -> Filled:
        return cls(humanize(unit, value), wording.scope(event_type))


def shown(objective: Objective, value: float | None, limits: Limits | None) -> str:
    """A threshold as cbmon shows it everywhere else."""
    if objective.unit == "age":
        return present.age(value)
    return present.in_unit(objective.unit, value, present.boundaries(limits))


def baseline_text(
    objective: Objective, level: Level, baseline: Baseline, filled: Filled
) -> Mapping[str, str]:
    """The summary and description of a baseline alert at ``level``, as cbmon's own alert
    says them."""
    limits = baseline.limit(objective.slo)
    assert limits is not None
    fields = {
        "value": filled.value,
        "normal": shown(objective, limits.normal, limits),
        "alert": "-" if limits.alert is None else shown(objective, limits.alert, limits),
        "scope": filled.scope,
        "span": duration(baseline.window),
        "events": f"at least {max(baseline.min_events, 1)}",
        "slow": present.millis(baseline.slow_callback),
    }
    phrase = objective.measured.format(**fields)
    threshold = wording.threshold(objective, level, limits)
    return {
        "summary": wording.summary(phrase, threshold, level, "firing", None),
        "description": f"{objective.explained.format(**fields)} {objective.advice}",
    }


# Prometheus' template functions (template/template.go), for what a test expects.
def humanize(unit: Unit, value: float) -> str:
    if unit == "ratio":
        return humanize_percentage(value)
    if unit in ("seconds", "age"):
        return humanize_duration(value)
    return f"{value:.0f}"


def humanize_percentage(value: float) -> str:
    return f"{_g4(value * 100)}%"


def humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return f"{_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        whole = int(abs(value))
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(abs(value))}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def _g4(value: float) -> str:
    """Go's ``%.4g``: as C's, but an exponent has at least two digits, as in Python."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"
