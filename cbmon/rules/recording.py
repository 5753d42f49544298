"""Recording rules: every callback counter over each window, at two levels under one name.

Per event type (labels job, database, event_type) and overall (job and database only, the
rule saying ``event_type: ""``, which also keeps the two rules distinct). Replicas of cbmon
read the same tables, so a job's series are taken with ``max``, never summed. Ratios divide
``increase()``s, which promtool computes exactly where a window starts and ends on samples;
they exist only while their denominator is above 0, so no traffic means no ratio and no alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from cbmon.domain import BUCKETS
from cbmon.rules.model import Group, Rule
from cbmon.rules.promql import by, duration
from cbmon.slo.objectives import Baseline

# The windows every callback series is recorded over: the baseline's, the burn-rate pairs'.
STANDARD_WINDOWS: tuple[float, ...] = (300, 1800, 3600, 7200, 6 * 3600, 86400, 3 * 86400)
OVERALL_LABELS = {"event_type": ""}
# Recorded name -> exported counter; the failures and dead letters read 0, not nothing, while
# a job has attempts or deliveries but none of them yet.
RATES = {
    "callback_attempts": "cbmon_callback_attempts_total",
    "callback_failures": "cbmon_callback_failures_total",
    "callback_errors": "cbmon_callback_errors_total",
    "callback_duration_seconds_sum": "cbmon_callback_duration_seconds_sum",
    "callback_duration_seconds_count": "cbmon_callback_duration_seconds_count",
    "callback_duration_seconds_bucket": "cbmon_callback_duration_seconds_bucket",
}
INCREASES = {
    "callback_attempts": "cbmon_callback_attempts_total",
    "callback_failures": "cbmon_callback_failures_total",
    "callback_duration_seconds_sum": "cbmon_callback_duration_seconds_sum",
    "callback_duration_seconds_count": "cbmon_callback_duration_seconds_count",
    "callback_duration_seconds_bucket": "cbmon_callback_duration_seconds_bucket",
    "callbacks_delivered": "cbmon_callbacks_delivered_total",
    "callbacks_dead": "cbmon_callbacks_dead_total",
    "callback_end_to_end_seconds_count": "cbmon_callback_end_to_end_seconds_count",
    "callback_end_to_end_seconds_bucket": "cbmon_callback_end_to_end_seconds_bucket",
}
ZERO_UNLESS = {"callback_failures": "callback_attempts", "callbacks_dead": "callbacks_delivered"}


def windows(baseline: Baseline) -> tuple[float, ...]:
    return tuple(sorted({*STANDARD_WINDOWS, baseline.window}))


def groups(baseline: Baseline) -> tuple[Group, ...]:
    return (*(_window(w, baseline) for w in windows(baseline)), _queue())


def le(bound: float) -> str:
    """A bucket's ``le`` label as cbmon exports it."""
    return repr(float(bound))


def _counted(kind: str, w: str, source: dict[str, str]) -> Iterable[Rule]:
    """``kind`` (rate or increase) of each counter per event type, then overall as the sum
    of the event types."""
    for recorded, metric in source.items():
        name = f"cbmon:{recorded}:{kind}{w}"
        extra = ("le",) if recorded.endswith("_bucket") else ()
        expr = f"max by ({by('event_type', *extra)}) ({kind}({metric}[{w}]))"
        if recorded in ZERO_UNLESS:
            expr += f'\nor 0 * cbmon:{ZERO_UNLESS[recorded]}:{kind}{w}{{event_type!=""}}'
        yield Rule(record=name, expr=expr)
        yield Rule(
            record=name,
            expr=f'sum by ({by(*extra)}) ({name}{{event_type!=""}})',
            labels=OVERALL_LABELS,
        )


def _window(seconds: float, baseline: Baseline) -> Group:
    w = duration(seconds)
    inc = f":increase{w}"
    rules = [*_counted("rate", w, RATES), *_counted("increase", w, INCREASES)]
    rules += [
        Rule(
            record=f"cbmon:callback_error_ratio:rate{w}",
            expr=f"cbmon:callback_failures{inc} / (cbmon:callback_attempts{inc} > 0)",
        ),
        Rule(
            record=f"cbmon:callback_success_ratio:rate{w}",
            expr=(
                f"(cbmon:callback_attempts{inc} - cbmon:callback_failures{inc})\n"
                f"/ (cbmon:callback_attempts{inc} > 0)"
            ),
        ),
        Rule(
            record=f"cbmon:callback_duration_seconds:mean{w}",
            expr=(
                f"cbmon:callback_duration_seconds_sum{inc}\n"
                f"/ (cbmon:callback_duration_seconds_count{inc} > 0)"
            ),
        ),
        Rule(
            record=f"cbmon:callback_duration_seconds:p95_{w}",
            expr=(
                f"histogram_quantile(0.95, cbmon:callback_duration_seconds_bucket:rate{w})\n"
                f"and cbmon:callback_duration_seconds_count:rate{w} > 0"
            ),
        ),
    ]
    if baseline.slow_callback in BUCKETS:  # exact only on a bucket bound
        rules.append(
            Rule(
                record=f"cbmon:callback_slow_ratio:rate{w}",
                expr=(
                    f"(cbmon:callback_duration_seconds_count{inc}\n"
                    f"  - ignoring (le) cbmon:callback_duration_seconds_bucket{inc}"
                    f'{{le="{le(baseline.slow_callback)}"}})\n'
                    f"/ (cbmon:callback_duration_seconds_count{inc} > 0)"
                ),
            )
        )
    rules += [
        Rule(
            record=f"cbmon:callbacks_finished{inc}",
            expr=f"cbmon:callbacks_delivered{inc} + cbmon:callbacks_dead{inc}",
        ),
        Rule(
            record=f"cbmon:callback_delivery_ratio:rate{w}",
            expr=f"cbmon:callbacks_delivered{inc} / (cbmon:callbacks_finished{inc} > 0)",
        ),
        Rule(
            record=f"cbmon:callback_end_to_end_seconds:p95_{w}",
            expr=(
                f"histogram_quantile(0.95, cbmon:callback_end_to_end_seconds_bucket{inc})\n"
                f"and cbmon:callback_end_to_end_seconds_count{inc} > 0"
            ),
        ),
        Rule(
            record=f"cbmon:queue_backlog:avg_over_time{w}",
            expr=f"max by ({by()}) (avg_over_time(cbmon_queue_backlog[{w}]))",
        ),
        Rule(
            record=f"cbmon:queue_backlog:max_over_time{w}",
            expr=f"max by ({by()}) (max_over_time(cbmon_queue_backlog[{w}]))",
        ),
    ]
    return Group(f"cbmon-callbacks-{w}", tuple(rules))


def _queue() -> Group:
    return Group(
        "cbmon-queue",
        (
            Rule(record="cbmon:queue_backlog:max", expr=f"max by ({by()}) (cbmon_queue_backlog)"),
            Rule(
                record="cbmon:queue_oldest_age_seconds:max",
                expr=f"max by ({by()}) (cbmon_queue_oldest_age_seconds)",
            ),
        ),
    )
