"""Shaping a report into pandas frames: the summary table and the gap-free time series.

The figures are already computed by the database; these frames only lay them out for the
table, CSV and HTML renderers. Overall rows have an empty ``event_type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from cbmon.report.model import TRIES_LABELS, Bucket, Report, Row, tries_counts

FIGURES = (
    "calls",
    "failures",
    "success_rate",
    "avg_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "slow_share",
    "errors",
    "observed",
)
VERDICTS = ("verdict_success_rate", "verdict_avg_latency")
# Callbacks, not attempts (empty where the tables do not tell callbacks apart).
TRIES_COLUMNS = tuple(f"tries_{label}" for label in TRIES_LABELS)
CALLBACK_FIGURES = (
    "callbacks",
    "delivered",
    "dead",
    "callback_success_rate",
    "duplicates",
    "first_attempts",
    "first_try",
    "first_try_rate",
    "first_failed",
    "recovered",
    "recovered_share",
    *TRIES_COLUMNS,
    "wait_p50_ms",
    "wait_p95_ms",
    "wait_p99_ms",
    "end_p50_ms",
    "end_p95_ms",
    "end_p99_ms",
    "end_max_ms",
)
CALLBACK_VERDICTS = (
    "verdict_callback_success_rate",
    "verdict_dead_letters",
    "verdict_end_to_end_p95",
)
CALLBACK_COUNTS = (
    "callbacks",
    "delivered",
    "dead",
    "duplicates",
    "first_attempts",
    "first_try",
    "first_failed",
    "recovered",
    *TRIES_COLUMNS,
)
COLUMNS = ("event_type", *FIGURES, *VERDICTS, *CALLBACK_FIGURES, *CALLBACK_VERDICTS)


def _callback_record(row: Row) -> dict[str, Any]:
    own = row.lifecycle
    if own is None:
        return {}
    c = row.figures.callbacks
    return {
        "callbacks": own.callbacks,
        "delivered": c.delivered,
        "dead": c.dead,
        "callback_success_rate": c.success_rate,
        "duplicates": c.duplicates,
        "first_attempts": own.first_attempts,
        "first_try": own.first_try,
        "first_try_rate": own.first_try_rate,
        "first_failed": own.first_failed,
        "recovered": own.recovered,
        "recovered_share": own.recovered_share,
        **dict(zip(TRIES_COLUMNS, tries_counts(c), strict=True)),
        "wait_p50_ms": own.wait.p50_ms,
        "wait_p95_ms": own.wait.p95_ms,
        "wait_p99_ms": own.wait.p99_ms,
        "end_p50_ms": own.end.p50_ms,
        "end_p95_ms": own.end.p95_ms,
        "end_p99_ms": own.end.p99_ms,
        "end_max_ms": own.end.max_ms,
        **{f"verdict_{i.slo}": i.state.label for i in own.indicators},
    }


def _record(row: Row) -> dict[str, Any]:
    figures, latency = row.figures, row.latency
    return {
        "event_type": row.event_type or "",
        "calls": figures.attempts,
        "failures": figures.failures,
        "success_rate": figures.success_rate,
        "avg_ms": row.avg_ms,
        "p50_ms": latency.p50_ms,
        "p95_ms": latency.p95_ms,
        "p99_ms": latency.p99_ms,
        "max_ms": latency.max_ms,
        "slow_share": figures.slow_share,
        "errors": figures.errors,
        "observed": figures.observed,
        "verdict_success_rate": row.verdicts.success_rate.label,
        "verdict_avg_latency": row.verdicts.avg_latency.label,
        **_callback_record(row),
    }


def rows_frame(rows: Sequence[Row]) -> pd.DataFrame:
    return pd.DataFrame([_record(row) for row in rows], columns=list(COLUMNS))


def summary_frame(report: Report) -> pd.DataFrame:
    """The overall row first, then one row per event type."""
    return rows_frame([report.overall, *report.event_types])


def _bucket_records(bucket: Bucket) -> list[dict[str, Any]]:
    return [
        {"bucket": bucket.start, **_record(row)} for row in (bucket.overall, *bucket.event_types)
    ]


def series_frame(report: Report, *, overall_only: bool = False) -> pd.DataFrame:
    """One row per bucket (and event type), every bucket of the period present.

    Buckets with no attempts get 0 calls and empty rates, so charts show the gap as a gap.
    """
    columns = ["bucket", *COLUMNS]
    if report.series is None or report.period.by is None:
        return pd.DataFrame(columns=columns)
    by: float = report.period.by
    records = [
        record
        for bucket in report.series
        for record in _bucket_records(bucket)
        if not overall_only or record["event_type"] == ""
    ]
    frame = pd.DataFrame(records, columns=columns)
    period = report.period
    # Buckets start at whole steps since the epoch, as the database counted them.
    step = pd.Timedelta(seconds=by)
    first = pd.Timestamp(period.start).floor(step)
    last = pd.Timestamp(period.end - pd.Timedelta(microseconds=1)).floor(step)
    every = pd.date_range(first, last, freq=step, tz="UTC")
    if overall_only:
        full = pd.DataFrame({"bucket": every, "event_type": ""})
    else:
        kinds = ["", *(row.event_type or "" for row in report.event_types)]
        index = pd.MultiIndex.from_product([every, kinds], names=["bucket", "event_type"])
        full = index.to_frame(index=False)
    if frame.empty:
        frame = full.reindex(columns=columns)
    else:
        frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
        frame = full.merge(frame, on=["bucket", "event_type"], how="left")
    counts = ["calls", "failures", "errors", "observed"]
    if report.lifecycle:
        counts += CALLBACK_COUNTS
    frame[counts] = frame[counts].fillna(0).astype("int64")
    for name in (*VERDICTS, *(CALLBACK_VERDICTS if report.lifecycle else ())):
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "unknown")
    return frame.reindex(columns=columns)
