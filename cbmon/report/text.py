"""The terminal table (the default format) and Markdown, for incident channels and reviews."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

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
_STATE_TEXT = {"ok": "ok", "warning": "WARNING", "critical": "CRITICAL", "unknown": "-"}


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def percent(value: Any, digits: int = 3) -> str:
    return "-" if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def millis(value: Any) -> str:
    return "-" if _missing(value) else f"{float(value):.1f}"


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
                _STATE_TEXT[str(record["verdict_success_rate"])],
                _STATE_TEXT[str(record["verdict_avg_latency"])],
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
        f"verdict {_STATE_TEXT.get(report.verdict.label, '-').replace('-', 'unknown')}"
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


def _aligned(
    headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Sequence[int] = (0,)
) -> list[str]:
    """Numbers right-aligned so digits line up; names and messages left-aligned."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = []
    for cells in (headers, *rows):
        parts = [
            cell.ljust(width) if index in text_columns else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    lines.extend("| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in rows)
    return lines


def _top_rows(report: Report) -> list[list[str]]:
    return [
        [str(item.count), when(item.last_seen), item.message or "(no message)"]
        for item in report.top_errors
    ]


def render_table(report: Report) -> str:
    lines = [headline(report), ""]
    if report.empty:
        lines += [EMPTY_NOTE, ""]
    lines += _aligned(_HEADERS, summary_rows(report))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "Most frequent errors:"]
        top = _aligned(("count", "last seen", "message"), _top_rows(report), (1, 2))
        lines += ["  " + line for line in top]
    if report.series is not None:
        lines += ["", f"By {report.period.by} (all event types):"]
        lines += _aligned(_SERIES_HEADERS, series_rows(report))
    lines += ["", thresholds_line(report)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    lines = [f"## {headline(report)}", ""]
    if report.empty:
        lines += [f"_{EMPTY_NOTE}_", ""]
    lines += _markdown(_HEADERS, summary_rows(report))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "### Most frequent errors", ""]
        lines += _markdown(("count", "last seen", "message"), _top_rows(report))
    if report.series is not None:
        lines += ["", f"### By {report.period.by} (all event types)", ""]
        lines += _markdown(_SERIES_HEADERS, series_rows(report))
    lines += ["", f"_{thresholds_line(report)}_"]
    return "\n".join(lines) + "\n"
