"""Shaping a report into pandas frames: the summary table and the gap-free time series.

The figures are already computed by the database; these frames only lay them out for the
table, CSV and HTML renderers. Overall rows have an empty ``event_type``.
"""

from __future__ import annotations

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
_FREQ = {"hour": "h", "day": "D"}


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


def summary_frame(report: Report) -> pd.DataFrame:
    """The overall row first, then one row per event type."""
    rows = [report.overall, *report.event_types]
    return pd.DataFrame([_record(row) for row in rows], columns=list(COLUMNS))


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
    records = [
        record
        for bucket in report.series
        for record in _bucket_records(bucket)
        if not overall_only or record["event_type"] == ""
    ]
    frame = pd.DataFrame(records, columns=columns)
    period = report.period
    unit = _FREQ[str(period.by)]
    first = pd.Timestamp(period.start).floor(unit)
    last = pd.Timestamp(period.end - pd.Timedelta(microseconds=1)).floor(unit)
    every = pd.date_range(first, last, freq=unit, tz="UTC")
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
