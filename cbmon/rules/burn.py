"""Multiwindow, multi-burn-rate alerts per objective, as the SRE workbook (and Sloth, Pyrra)
give them: a pair fires when the share of bad events over both its long and its short window
is above ``factor x budget``. The long window proves the burn is real, the short one that it
is still going on.

The factor is the share of the budget a pair stands for, spent over its long window, as a
multiple of the steady pace (14.4, 6, 3 and 1 over 30 days), never below 1. A pair whose long
window is longer than the objective's period is left out, as is one whose threshold reaches
100 % (it could never fire). An event type with an objective of its own gets its own alerts and
is left out of the default ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from fractions import Fraction

from cbmon import present
from cbmon.domain import BUCKETS
from cbmon.rules.model import Group, Rule
from cbmon.rules.promql import duration, exact, number
from cbmon.rules.recording import le
from cbmon.rules.wording import SCOPE, humanize_percentage
from cbmon.slo.objectives import Baseline, Target


@dataclasses.dataclass(frozen=True)
class Pair:
    long: float  # seconds
    short: float
    share: Fraction  # of the budget, spent over ``long`` at the alerting pace
    severity: str
    for_: float


PAIRS: tuple[Pair, ...] = (
    Pair(3600, 300, Fraction(2, 100), "page", 120),
    Pair(6 * 3600, 1800, Fraction(5, 100), "page", 900),
    Pair(86400, 7200, Fraction(10, 100), "ticket", 3600),
    Pair(3 * 86400, 6 * 3600, Fraction(10, 100), "ticket", 3 * 3600),
)
ALERT_NAMES: Mapping[str, str] = {
    "success_rate": "CallbackErrorBudgetBurn",
    "latency": "CallbackLatencyBudgetBurn",
}
LABELS: Mapping[str, str] = {"success_rate": "success rate", "latency": "latency"}
# What a bad event is, per objective, in words.
BAD: Mapping[str, str] = {
    "success_rate": "callback attempts failed",
    "latency": "callback attempts took longer than {threshold}",
}
ADVICE: Mapping[str, str] = {
    "success_rate": (
        "Look at the failing receivers and the newest rows of the callback error table "
        "(cbmon report --since {long})."
    ),
    "latency": (
        "Look at which receivers are slow (cbmon report --since {long}) and at the p95 "
        "latency; a slow receiver holds a worker and grows the queue."
    ),
}
GOOD: Mapping[str, str] = {
    "success_rate": "{target} of callback attempts succeed",
    "latency": "{target} of callback attempts take at most {threshold}",
}


@dataclasses.dataclass(frozen=True)
class Burn:
    """One pair of one objective, for the default (``event_type`` None) or one event type."""

    slo: str
    target: Target
    pair: Pair
    event_type: str | None  # None: every event type without an objective of its own
    excluded: tuple[str, ...]  # event types the default leaves out

    @property
    def factor(self) -> Fraction:
        return max(Fraction(1), self.pair.share * exact(self.target.period) / exact(self.pair.long))

    @property
    def threshold(self) -> Fraction:
        return self.factor * (1 - exact(self.target.target))

    def selector(self) -> str:
        if self.event_type is not None:
            return f'{{event_type="{_quoted(self.event_type)}"}}'
        if not self.excluded:
            return ""
        return "{" + ",".join(f'event_type!="{_quoted(e)}"' for e in self.excluded) + "}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def bad_ratio(slo: str, target: Target, w: str, selector: str) -> str:
    """The share of bad events over ``w``, as PromQL."""
    if slo == "success_rate":
        return f"cbmon:callback_error_ratio:rate{w}{selector}"
    count = f"cbmon:callback_duration_seconds_count:increase{w}{selector}"
    bound = le(target.threshold or 0.0)
    inner = selector[1:-1] + "," if selector else ""
    bucket = f'cbmon:callback_duration_seconds_bucket:increase{w}{{{inner}le="{bound}"}}'
    return f"({count} - ignoring (le) {bucket}) / ({count} > 0)"


def burns(baseline: Baseline) -> Iterable[Burn]:
    owners: dict[str, list[str]] = {}
    for event_type, own in sorted(baseline.event_targets.items()):
        for slo in own:
            owners.setdefault(slo, []).append(event_type)
    for slo in ALERT_NAMES:
        default = baseline.targets.get(slo)
        scopes: list[tuple[str | None, Target | None]] = [(None, default)]
        scopes += [(e, baseline.event_targets[e][slo]) for e in owners.get(slo, [])]
        for scope, target in scopes:
            if target is None or not _exact(slo, target):
                continue
            for pair in PAIRS:
                burn = Burn(slo, target, pair, scope, tuple(owners.get(slo, [])))
                if pair.long <= target.period and burn.threshold < 1:
                    yield burn


def _exact(slo: str, target: Target) -> bool:
    return slo != "latency" or target.threshold in BUCKETS


def rule(burn: Burn) -> Rule:
    long, short = duration(burn.pair.long), duration(burn.pair.short)
    threshold = number(burn.threshold)
    selector = burn.selector()
    expr = (
        f"{bad_ratio(burn.slo, burn.target, long, selector)} > {threshold}\n"
        f"and {bad_ratio(burn.slo, burn.target, short, selector)} > {threshold}"
    )
    labels = {
        "severity": burn.pair.severity,
        "slo": burn.slo,
        "long_window": long,
        "short_window": short,
    }
    if burn.event_type is not None:  # its own objective: the series' label, and a distinct rule
        labels["event_type"] = burn.event_type
    return Rule(
        alert=ALERT_NAMES[burn.slo],
        expr=expr,
        for_=duration(burn.pair.for_),
        labels=labels,
        annotations=text(burn, "{{ $value | humanizePercentage }}", SCOPE),
    )


def text(burn: Burn, value: str, scope: str) -> Mapping[str, str]:
    """The summary and description, with the templates or with what Prometheus puts there."""
    threshold = present.millis(burn.target.threshold) if burn.target.threshold else ""
    long, short = duration(burn.pair.long), duration(burn.pair.short)
    factor = number(burn.factor)
    good = GOOD[burn.slo].format(target=present.percent(burn.target.target), threshold=threshold)
    bad = BAD[burn.slo].format(threshold=threshold)
    period = present.period(burn.target.period)
    gone = present.period(float(exact(burn.target.period) / burn.factor))
    return {
        "summary": (
            f"Error budget of the {LABELS[burn.slo]} objective burning {factor}x too fast "
            f"for {scope}"
        ),
        "description": (
            f"{value} of {bad} over the last {long}, and more than "
            f"{humanize_percentage(float(burn.threshold))} over the last {short}, for {scope}. "
            f"The objective is that {good} over {period}; at this pace the whole budget is "
            f"gone in {gone}. {ADVICE[burn.slo].format(long=long)}"
        ),
    }


def group(baseline: Baseline) -> Group | None:
    found = list(burns(baseline))
    if not found:
        return None
    comment = (
        "Multiwindow, multi-burn-rate alerts per objective (objectives: in the configuration),\n"
        "as the SRE workbook, Sloth and Pyrra do it: the long window proves the burn is real,\n"
        "the short one that it is still going on. Each threshold is factor x budget, the factor\n"
        "being the share of the budget a pair stands for (2 %, 5 %, 10 %, 10 %) spent over its\n"
        "long window, as a multiple of the steady pace; never below 1."
    )
    return Group("cbmon-error-budget", tuple(rule(b) for b in found), comment)
