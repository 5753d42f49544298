"""Input series for the generated promtool tests: for each alerted indicator, counters whose
increases over a window give it a chosen value, and what Prometheus computes from them.

Every counter grows by whole numbers, so each increase over a window that starts and ends on a
sample is exact, and each value below is the one float Prometheus computes: the expectations
are cbmon's judge applied to it, not numbers written by hand.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from fractions import Fraction

from cbmon.domain import BUCKETS, WAIT_BUCKETS
from cbmon.rules.recording import le
from cbmon.slo.objectives import Baseline

# A series (metric name and its own labels, "" for none) -> its increase over one window.
Totals = dict[tuple[str, str], int]
WORST = Fraction(10**6)  # beyond every threshold, clamped per indicator


@dataclasses.dataclass(frozen=True)
class Feed:
    """How to make an indicator's value, and what Prometheus computes from the totals."""

    unit_step: Callable[[Fraction], Fraction]  # the smallest visible change near a value
    totals: Callable[[Fraction, int, Baseline], Totals]  # value, at least these events
    value: Callable[[Totals, Baseline], float]
    events: Callable[[Totals], int] | None  # what the min_events guard counts
    per_event_type: bool = True
    gauge: bool = False  # a gauge, not a counter: its value, not its increase

    def worst(self, higher_is_better: bool) -> Fraction:
        return Fraction(0) if higher_is_better else WORST


def decimal_step(value: Fraction) -> Fraction:
    """One unit of the next decimal place after ``value``'s last: 0.995 -> 0.0001."""
    places = 0
    while (value * 10**places).denominator != 1 and places < 12:
        places += 1
    return Fraction(1, 10 ** (places + 1))


def _whole(_: Fraction) -> Fraction:
    return Fraction(1)


def _scaled(value: Fraction, events: int) -> int:
    """The smallest total of events at least ``events`` on which ``value`` is a whole share."""
    base = value.denominator
    return base * max(1, math.ceil(events / base))


def _ratio_totals(total: str, bad: str, good_is_value: bool) -> Callable[..., Totals]:
    def make(value: Fraction, events: int, _: Baseline) -> Totals:
        value = min(max(value, Fraction(0)), Fraction(1))
        n = _scaled(value, events)
        good = value * n if good_is_value else (1 - value) * n
        return {(total, ""): n, (bad, ""): int(n - good)}

    return make


def _success_value(t: Totals, _: Baseline) -> float:
    attempts = float(t[("cbmon_callback_attempts_total", "")])
    return (attempts - t[("cbmon_callback_failures_total", "")]) / attempts


def _mean_totals(value: Fraction, events: int, _: Baseline) -> Totals:
    value = min(value, Fraction(10))
    n = _scaled(value, events)
    return {
        ("cbmon_callback_duration_seconds_count", ""): n,
        ("cbmon_callback_duration_seconds_sum", ""): int(value * n),
    }


def _mean_value(t: Totals, _: Baseline) -> float:
    return float(t[("cbmon_callback_duration_seconds_sum", "")]) / float(
        t[("cbmon_callback_duration_seconds_count", "")]
    )


def _slow_totals(value: Fraction, events: int, baseline: Baseline) -> Totals:
    value = min(max(value, Fraction(0)), Fraction(1))
    n = _scaled(value, events)
    bucket = f'le="{le(baseline.slow_callback)}"'
    return {
        ("cbmon_callback_duration_seconds_count", ""): n,
        ("cbmon_callback_duration_seconds_bucket", bucket): int((1 - value) * n),
    }


def _slow_value(t: Totals, baseline: Baseline) -> float:
    count = float(t[("cbmon_callback_duration_seconds_count", "")])
    bucket = float(
        t[("cbmon_callback_duration_seconds_bucket", f'le="{le(baseline.slow_callback)}"')]
    )
    return (count - bucket) / count


def _delivery_totals(value: Fraction, events: int, _: Baseline) -> Totals:
    value = min(max(value, Fraction(0)), Fraction(1))
    n = _scaled(value, events)
    delivered = int(value * n)
    return {
        ("cbmon_callbacks_delivered_total", ""): delivered,
        ("cbmon_callbacks_dead_total", ""): n - delivered,
    }


def _delivery_value(t: Totals, _: Baseline) -> float:
    delivered = float(t[("cbmon_callbacks_delivered_total", "")])
    return delivered / (delivered + t[("cbmon_callbacks_dead_total", "")])


def _dead_totals(value: Fraction, _events: int, _b: Baseline) -> Totals:
    return {("cbmon_callbacks_dead_total", ""): int(min(max(value, Fraction(0)), Fraction(1000)))}


def _backlog_totals(value: Fraction, _events: int, _b: Baseline) -> Totals:
    return {("cbmon_queue_backlog", ""): int(min(max(value, Fraction(0)), Fraction(10**7)))}


# The end-to-end p95 from its histogram: 95 % of the callbacks at or below a bucket's lower
# bound but ``k``, ``m`` in the bucket, so the quantile lands ``k/m`` of the way through it.
E2E = "cbmon_callback_end_to_end_seconds"


def _e2e_totals(value: Fraction, events: int, _: Baseline) -> Totals:
    bounds = [Fraction(repr(b)) for b in WAIT_BUCKETS]
    if value > bounds[-1]:
        n = max(events, 1)
        totals = {(f"{E2E}_bucket", f'le="{le(b)}"'): 0 for b in WAIT_BUCKETS}
        return {**totals, (f"{E2E}_bucket", 'le="+Inf"'): n, (f"{E2E}_count", ""): n}
    index = next(i for i, b in enumerate(bounds) if value <= b)
    lower = bounds[index - 1] if index else Fraction(0)
    share = (value - lower) / (bounds[index] - lower)  # k/m
    k, m = share.numerator, share.denominator
    scale = max(1, math.ceil(events / (20 * m)))
    k, m = k * scale, m * scale
    n = 20 * m
    totals = {}
    for i, bound in enumerate(WAIT_BUCKETS):
        cumulative = 19 * m - k if i < index else 20 * m - k
        totals[(f"{E2E}_bucket", f'le="{le(bound)}"')] = cumulative
    totals[(f"{E2E}_bucket", 'le="+Inf"')] = n
    totals[(f"{E2E}_count", "")] = n
    return totals


def _e2e_value(t: Totals, _: Baseline) -> float:
    """``histogram_quantile(0.95, ...)`` as Prometheus 2 computes it (promql/quantile.go)."""
    buckets = [(b, float(t[(f"{E2E}_bucket", f'le="{le(b)}"')])) for b in WAIT_BUCKETS]
    buckets.append((math.inf, float(t[(f"{E2E}_bucket", 'le="+Inf"')])))
    observations = buckets[-1][1]
    rank = 0.95 * observations
    b = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


def _count(name: str) -> Callable[[Totals], int]:
    return lambda t: t[(name, "")]


def _finished(t: Totals) -> int:
    return t[("cbmon_callbacks_delivered_total", "")] + t[("cbmon_callbacks_dead_total", "")]


FEEDS: Mapping[str, Feed] = {
    "success_rate": Feed(
        decimal_step,
        _ratio_totals("cbmon_callback_attempts_total", "cbmon_callback_failures_total", True),
        _success_value,
        _count("cbmon_callback_attempts_total"),
    ),
    "avg_latency": Feed(
        decimal_step, _mean_totals, _mean_value, _count("cbmon_callback_duration_seconds_count")
    ),
    "slow_share": Feed(
        decimal_step, _slow_totals, _slow_value, _count("cbmon_callback_duration_seconds_count")
    ),
    "callback_success_rate": Feed(decimal_step, _delivery_totals, _delivery_value, _finished),
    "dead_letters": Feed(
        _whole,
        _dead_totals,
        lambda t, _: float(t[("cbmon_callbacks_dead_total", "")]),
        None,
    ),
    "end_to_end_p95": Feed(decimal_step, _e2e_totals, _e2e_value, _count(f"{E2E}_count")),
    "backlog": Feed(
        _whole,
        _backlog_totals,
        lambda t, _: float(t[("cbmon_queue_backlog", "")]),
        None,
        per_event_type=False,
        gauge=True,
    ),
}


def slow_share_recorded(baseline: Baseline) -> bool:
    return baseline.slow_callback in BUCKETS
