"""Error budgets: how much of an objective's allowance of bad events is left over its period,
how fast it burns, and when it runs out at that pace.

An objective says ``target`` of the events are good over ``period``: the success rate's events
are attempts (bad: failed), the latency's are attempts with a valid duration (bad: above its
threshold). The budget is ``1 - target`` of the events. Spent is the share of it used:
``(bad / events) / (1 - target)``; remaining is ``1 - spent`` (below 0 when overspent). A burn
rate is the same ratio over a shorter window: 1 spends the budget exactly over the period, 14.4
spends 2 % of a 30-day budget in an hour (the SRE workbook's page).

Pure: counts in, values out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from cbmon.domain import BUCKETS, Figures, Level
from cbmon.slo.objectives import OVERALL, Baseline, Target

# The windows burn rates are exported for, as Prometheus writes durations.
BURN_WINDOWS: tuple[tuple[str, float], ...] = (
    ("5m", 300.0),
    ("1h", 3600.0),
    ("6h", 6 * 3600.0),
    ("3d", 3 * 86400.0),
)
BUDGETED = ("success_rate", "latency")
# Less than this share of a budget left is a warning; none left is critical.
BUDGET_WARNING = 0.25
# Attempts, failures, and (observed, at or below each latency threshold...) for a label over
# the last ``span`` seconds before ``now``.
Counts = tuple[int, int, tuple[int, ...]]
Counter = Callable[[str, float, float], Counts]


@dataclasses.dataclass(frozen=True)
class Budget:
    slo: str  # success_rate or latency
    event_type: str  # OVERALL over every event type
    target: Target
    events: int  # over the period
    bad: int
    burn: Mapping[str, float | None]  # per window of BURN_WINDOWS; None without events

    @property
    def spent(self) -> float | None:
        """The share of the budget used over the period (above 1 when overspent)."""
        return _ratio(self.bad, self.events, self.target)

    @property
    def remaining(self) -> float | None:
        spent = self.spent
        return None if spent is None else 1.0 - spent

    def exhausted_in(self, window: str = "1h") -> float | None:
        """Seconds until the budget is gone if it keeps burning as over ``window``: 0 when it
        is gone already, None when it is not burning (or nothing is known)."""
        remaining, burn = self.remaining, self.burn.get(window)
        if remaining is None or burn is None:
            return None
        if remaining <= 0:
            return 0.0
        if burn <= 0:
            return None
        return remaining * self.target.period / burn


def judge_remaining(remaining: float | None) -> Level:
    """A budget judged: critical when spent, a warning below :data:`BUDGET_WARNING` left."""
    if remaining is None:
        return Level.UNKNOWN
    if remaining <= 0:
        return Level.CRITICAL
    return Level.WARNING if remaining < BUDGET_WARNING else Level.OK


def counts_of(figures: Figures, thresholds: tuple[float, ...]) -> Counts:
    """What a budget needs of ``figures``: attempts, failures, and observed durations with
    those at or below each latency threshold."""
    fast = tuple(figures.buckets[BUCKETS.index(bound)] for bound in thresholds)
    return figures.attempts, figures.failures, (figures.observed, *fast)


def from_figures(
    baseline: Baseline, per_type: Mapping[str, Figures], overall: Figures
) -> list[Budget]:
    """Every objective's budget spent over the span ``per_type`` and ``overall`` cover (a
    report's period): no burn rates."""
    thresholds = thresholds_of(baseline)
    found: list[Budget] = []
    for event_type, figures in (
        (OVERALL, overall),
        *sorted((k, v) for k, v in per_type.items() if k != OVERALL),
    ):
        for slo in BUDGETED:
            target = baseline.target(slo, event_type)
            if target is not None:
                counted = good_and_bad(slo, target, counts_of(figures, thresholds), thresholds)
                found.append(Budget(slo, event_type, target, counted[0], counted[1], {}))
    return found


def _ratio(bad: int, events: int, target: Target) -> float | None:
    if events <= 0:
        return None
    if target.budget <= 0:  # a 100 % objective: any bad event overspends it
        return 0.0 if bad == 0 else float("inf")
    return (bad / events) / target.budget


def good_and_bad(
    slo: str,
    target: Target,
    counts: tuple[int, int, tuple[int, ...]],
    thresholds: tuple[float, ...],
) -> tuple[int, int]:
    """The events and the bad ones among ``counts`` for the objective ``slo``."""
    attempts, failures, latency = counts
    if slo == "success_rate":
        return attempts, failures
    observed = latency[0]
    fast = latency[1 + thresholds.index(target.threshold)] if target.threshold else observed
    return observed, observed - fast


def budgets(
    baseline: Baseline,
    event_types: Iterable[str],
    count: Counter,
    thresholds: tuple[float, ...],
    now: float,
) -> list[Budget]:
    """Every objective's budget, overall and per event type, at ``now``."""
    found: list[Budget] = []
    for event_type in (OVERALL, *sorted(set(event_types) - {OVERALL})):
        for slo in BUDGETED:
            target = baseline.target(slo, event_type)
            if target is None:
                continue
            events, bad = good_and_bad(
                slo, target, count(event_type, target.period, now), thresholds
            )
            burn: dict[str, float | None] = {}
            for name, span in BURN_WINDOWS:
                w_events, w_bad = good_and_bad(
                    slo, target, count(event_type, span, now), thresholds
                )
                burn[name] = _ratio(w_bad, w_events, target)
            found.append(Budget(slo, event_type, target, events, bad, burn))
    return found


def thresholds_of(baseline: Baseline) -> tuple[float, ...]:
    """The latency thresholds of every latency objective: the counts the periods keep."""
    targets = [baseline.targets.get("latency")]
    targets += [own.get("latency") for own in baseline.event_targets.values()]
    return tuple(sorted({t.threshold for t in targets if t is not None and t.threshold}))


def longest_period(baseline: Baseline) -> float:
    periods = [t.period for t in baseline.targets.values()]
    periods += [t.period for own in baseline.event_targets.values() for t in own.values()]
    return max(periods, default=0.0)
