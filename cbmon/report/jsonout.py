"""The JSON report: the stable machine format, documented in docs/report.md.

Ratios are 0..1, latencies milliseconds, ages seconds, times ISO 8601 in UTC. A figure that
cannot be computed (no attempts, no valid durations) is ``null``, never NaN.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from cbmon.report.model import (
    TRIES_LABELS,
    Bucket,
    Latency,
    Period,
    Previous,
    Report,
    Row,
    tries_counts,
)
from cbmon.report.period import step_name
from cbmon.slo.objectives import Limits

FORMAT_VERSION = 1


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def row_dict(row: Row) -> dict[str, Any]:
    figures, latency = row.figures, row.latency
    data: dict[str, Any] = {} if row.event_type is None else {"event_type": row.event_type}
    data.update(
        calls=figures.attempts,
        failures=figures.failures,
        success_rate=figures.success_rate,
        avg_ms=row.avg_ms,
        p50_ms=latency.p50_ms,
        p95_ms=latency.p95_ms,
        p99_ms=latency.p99_ms,
        max_ms=latency.max_ms,
        slow_share=figures.slow_share,
        errors=figures.errors,
        observed=figures.observed,
        verdicts={name: state.label for name, state in row.verdicts.items()},
        callbacks=_callbacks(row),
    )
    if row.lifecycle is not None:
        data["verdicts"].update({i.slo: i.state.label for i in row.lifecycle.indicators})
    return data


def _percentiles(latency: Latency) -> dict[str, float | None]:
    found = {"p50_ms": latency.p50_ms, "p95_ms": latency.p95_ms, "p99_ms": latency.p99_ms}
    return {name: None if value is None else float(value) for name, value in found.items()}


def _callbacks(row: Row) -> dict[str, Any] | None:
    """What happened to callbacks (not attempts); None when the tables do not tell them apart."""
    own = row.lifecycle
    if own is None:
        return None
    c = row.figures.callbacks
    end = _percentiles(own.end)
    end["max_ms"] = None if own.end.max_ms is None else float(own.end.max_ms)
    return {
        "callbacks": own.callbacks,
        "delivered": c.delivered,
        "dead": c.dead,
        "success_rate": c.success_rate,
        "duplicates": c.duplicates,
        "first_attempts": own.first_attempts,
        "first_try": own.first_try,
        "first_try_rate": own.first_try_rate,
        "first_failed": own.first_failed,
        "recovered": own.recovered,
        "recovered_share": own.recovered_share,
        "tries": dict(zip(TRIES_LABELS, tries_counts(c), strict=True)),
        "queue_wait": _percentiles(own.wait),
        "end_to_end": end,
    }


def _bucket(bucket: Bucket) -> dict[str, Any]:
    return {
        "start": _time(bucket.start),
        "overall": row_dict(bucket.overall),
        "event_types": [row_dict(row) for row in bucket.event_types],
    }


def _previous(previous: Previous | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    return {
        "period": _span(previous.period),
        "overall": row_dict(previous.overall),
        "event_types": [row_dict(row) for row in previous.event_types],
    }


def _span(period: Period) -> dict[str, Any]:
    return {"from": _time(period.start), "to": _time(period.end), "seconds": period.seconds}


def _callback_thresholds(report: Report) -> dict[str, Any]:
    baseline = report.baseline
    rate, dead, end = (
        baseline.limit(slo) or Limits(0.0)
        for slo in ("callback_success_rate", "dead_letters", "end_to_end_p95")
    )
    return {
        "callback_success_rate": {"normal": rate.normal, "alert": rate.alert},
        "dead_letters": {
            "normal": int(dead.normal),
            "alert": None if dead.alert is None else int(dead.alert),
        },
        "end_to_end_p95_ms": {
            "normal": round(end.normal * 1000, 6),
            "alert": None if end.alert is None else round(end.alert * 1000, 6),
        },
    }


def to_dict(report: Report) -> dict[str, Any]:
    baseline = report.baseline
    rate, latency, backlog = (
        baseline.limit(slo) or Limits(0.0) for slo in ("success_rate", "avg_latency", "backlog")
    )
    period = report.period
    overall = row_dict(report.overall)
    # The backlog belongs to the whole queue, so the overall row carries its verdict too.
    overall["verdicts"]["backlog"] = report.queue.verdict.label
    return {
        "version": FORMAT_VERSION,
        "generated_at": _time(report.generated_at),
        "period": {
            **_span(period),
            "event_types": list(period.event_types) if period.event_types else None,
            "by": None if period.by is None else step_name(period.by),
            "empty": report.empty,
        },
        "verdict": report.verdict.label,
        "callbacks": {"enabled": report.lifecycle, "notes": list(report.lifecycle_notes)},
        "overall": overall,
        "event_types": [row_dict(row) for row in report.event_types],
        "queue": {
            "backlog": report.queue.backlog,
            "oldest_age_seconds": report.queue.oldest_age_seconds,
            "verdicts": {"backlog": report.queue.verdict.label},
        },
        "top_errors": [
            {
                "message": item.message,
                "count": item.count,
                "last_seen": _time(item.last_seen),
                "event_types": item.event_types,
            }
            for item in report.top_errors
        ],
        "series": None if report.series is None else [_bucket(b) for b in report.series],
        "budgets": [
            {
                "slo": item.slo,
                "event_type": item.event_type or None,
                "target": item.target.target,
                "period_seconds": item.target.period,
                "threshold_seconds": item.target.threshold,
                "events": item.events,
                "bad": item.bad,
                "spent": None if item.spent is None or math.isinf(item.spent) else item.spent,
            }
            for item in report.budgets
        ],
        "previous": _previous(report.previous),
        "thresholds": {
            "success_rate": {"normal": rate.normal, "alert": rate.alert},
            "avg_latency_ms": {
                "normal": round(latency.normal * 1000, 6),
                "alert": None if latency.alert is None else round(latency.alert * 1000, 6),
            },
            "backlog": {
                "normal": int(backlog.normal),
                "alert": None if backlog.alert is None else int(backlog.alert),
            },
            **_callback_thresholds(report),
            "slow_callback_ms": round(baseline.slow_callback * 1000, 6),
            "min_events": baseline.min_events,
        },
    }


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, allow_nan=False) + "\n"
