"""Shaping a report into pandas frames: the summary table and the gap-free time series.

The figures are already computed by the database; these frames only lay them out for the
table, CSV and HTML renderers. Overall rows have an empty ``event_type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from cbmon.report.model import Bucket, Report, Row

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
COLUMNS = ("event_type", *FIGURES, *VERDICTS)


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
    frame[counts] = frame[counts].fillna(0).astype("int64")
    for name in VERDICTS:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "unknown")
    return frame.reindex(columns=columns)
