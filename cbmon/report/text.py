"""The terminal table (the default format) and Markdown, for incident channels and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from cbmon import present
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.report.frame import series_frame, summary_frame
from cbmon.report.model import Report

OVERALL = "(all)"
EMPTY_NOTE = "No callback attempts and no errors were recorded in this period."
_HEADERS = (
    "event type",
    "calls",
    "failures",
    "success",
    "avg ms",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "slow",
    "errors",
    "rate",
    "latency",
)
_SERIES_HEADERS = (
    "bucket",
    "calls",
    "failures",
    "success",
    "avg ms",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
)


def _number(value: Any) -> float | None:
    """A frame cell as a float, None where pandas holds a missing value."""
    return None if value is None or bool(pd.isna(value)) else float(value)


def percent(value: Any, digits: int = 3) -> str:
    return present.percent(_number(value), digits)


def millis(value: Any) -> str:
    """A frame's milliseconds, as a bare number (the column header says ms)."""
    number = _number(value)
    return present.MISSING if number is None else f"{number:.1f}"


def _word(label: str) -> str:
    return present.level_word(Level[label.upper()])


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float) -> str:
    """Whole seconds once above a minute: an on-call reader needs 57m31s, not the millis."""
    return format_duration(round(seconds)) if seconds >= 60 else f"{seconds:.1f}s"


def summary_rows(report: Report) -> list[list[str]]:
    frame = summary_frame(report)
    rows = []
    for record in frame.to_dict("records"):
        rows.append(
            [
                str(record["event_type"]) or OVERALL,
                str(record["calls"]),
                str(record["failures"]),
                percent(record["success_rate"]),
                millis(record["avg_ms"]),
                millis(record["p50_ms"]),
                millis(record["p95_ms"]),
                millis(record["p99_ms"]),
                millis(record["max_ms"]),
                percent(record["slow_share"], 2),
                str(record["errors"]),
                _word(str(record["verdict_success_rate"])),
                _word(str(record["verdict_avg_latency"])),
            ]
        )
    return rows


def series_rows(report: Report) -> list[list[str]]:
    frame = series_frame(report, overall_only=True)
    return [
        [
            when(record["bucket"].to_pydatetime()),
            str(record["calls"]),
            str(record["failures"]),
            percent(record["success_rate"]),
            millis(record["avg_ms"]),
            millis(record["p50_ms"]),
            millis(record["p95_ms"]),
            millis(record["p99_ms"]),
            str(record["errors"]),
        ]
        for record in frame.to_dict("records")
    ]


def headline(report: Report) -> str:
    period = report.period
    span = format_duration(period.seconds)
    scope = f", event types {', '.join(period.event_types)}" if period.event_types else ""
    return (
        f"Callbacks {when(period.start)} to {when(period.end)} ({span}{scope}): "
        f"verdict {present.level_word(report.verdict, 'unknown')}"
    )


def queue_line(report: Report) -> str:
    queue = report.queue
    oldest = f", oldest waiting {age(queue.oldest_age_seconds)}" if queue.backlog else ""
    return f"Queue now: {queue.backlog} waiting{oldest} (backlog {queue.verdict.label})"


def thresholds_line(report: Report) -> str:
    t = report.thresholds
    return (
        f"Baseline: success ok > {t.success_rate.normal:.2%}, "
        f"critical < {t.success_rate.alert:.2%}; "
        f"avg latency ok < {t.avg_latency.normal * 1000:g} ms, critical > "
        f"{t.avg_latency.alert * 1000:g} ms; backlog ok < {t.backlog.normal}, critical > "
        f"{t.backlog.alert}; slow = above {t.slow_callback * 1000:g} ms; "
        f"fewer than {report.min_events} events: not judged (-)"
    )


def _top_rows(report: Report) -> list[list[str]]:
    return [
        [str(item.count), when(item.last_seen), item.message or "(no message)"]
        for item in report.top_errors
    ]


def render_table(report: Report) -> str:
    lines = [headline(report), ""]
    if report.empty:
        lines += [EMPTY_NOTE, ""]
    lines += present.table(_HEADERS, summary_rows(report))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "Most frequent errors:"]
        top = present.table(("count", "last seen", "message"), _top_rows(report), (1, 2))
        lines += ["  " + line for line in top]
    if report.series is not None:
        lines += ["", f"By {report.period.by} (all event types):"]
        lines += present.table(_SERIES_HEADERS, series_rows(report))
    lines += ["", thresholds_line(report)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    lines = [f"## {headline(report)}", ""]
    if report.empty:
        lines += [f"_{EMPTY_NOTE}_", ""]
    lines += present.markdown_table(_HEADERS, summary_rows(report))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "### Most frequent errors", ""]
        lines += present.markdown_table(("count", "last seen", "message"), _top_rows(report))
    if report.series is not None:
        lines += ["", f"### By {report.period.by} (all event types)", ""]
        lines += present.markdown_table(_SERIES_HEADERS, series_rows(report))
    lines += ["", f"_{thresholds_line(report)}_"]
    return "\n".join(lines) + "\n"
