"""The terminal table (the default format) and Markdown, for incident channels and reviews."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from cbmon import present
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.report.frame import series_frame, summary_frame
from cbmon.report.model import Report, Row
from cbmon.report.period import step_name
from cbmon.slo import wording
from cbmon.slo.objectives import Baseline

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


def success(value: Any, baseline: Baseline) -> str:
    """A frame's success rate, never seeming to sit on a limit it is not on."""
    return present.success_rate(_number(value), baseline, digits=3)


def millis(value: Any) -> str:
    """A frame's milliseconds, as a bare number (the column header says ms)."""
    return present.number(_number(value))


def avg_ms(value: Any, baseline: Baseline) -> str:
    """A frame's average latency in milliseconds, honest about the limits."""
    return present.avg_ms(_number(value), baseline)


def _word(label: str, unknown: str = present.MISSING) -> str:
    return present.level_word(Level[label.upper()], unknown)


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float) -> str:
    """Whole seconds once above a minute: an on-call reader needs 57m31s, not the millis."""
    return format_duration(round(seconds)) if seconds >= 60 else f"{seconds:.1f}s"


def summary_rows(report: Report, unknown: str = present.MISSING) -> list[list[str]]:
    """One row of text per event type, the overall row first; ``unknown`` is the word for a
    figure too thin to judge."""
    frame = summary_frame(report)
    t = report.baseline
    rows = []
    for record in frame.to_dict("records"):
        rows.append(
            [
                str(record["event_type"]) or OVERALL,
                *_figure_cells(record, t),
                millis(record["max_ms"]),
                percent(record["slow_share"], 2),
                str(record["errors"]),
                _word(str(record["verdict_success_rate"]), unknown),
                _word(str(record["verdict_avg_latency"]), unknown),
            ]
        )
    return rows


def _figure_cells(record: dict[Any, Any], t: Baseline) -> list[str]:
    """Calls, failures, success rate, average and percentiles, as every table prints them."""
    return [
        str(record["calls"]),
        str(record["failures"]),
        success(record["success_rate"], t),
        avg_ms(record["avg_ms"], t),
        millis(record["p50_ms"]),
        millis(record["p95_ms"]),
        millis(record["p99_ms"]),
    ]


def series_rows(report: Report) -> list[list[str]]:
    frame = series_frame(report, overall_only=True)
    t = report.baseline
    return [
        [
            when(record["bucket"].to_pydatetime()),
            *_figure_cells(record, t),
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
    judged = (
        f"backlog {queue.verdict.label}"
        if queue.current
        else "backlog not judged: the report ends before now"
    )
    return f"Queue now: {queue.backlog} waiting{oldest} ({judged})"


def thresholds_line(report: Report, unknown: str = f"not judged ({present.MISSING})") -> str:
    """The baseline in one line; ``unknown`` names a figure too thin to judge as the table
    above it does."""
    return wording.baseline_line(report.baseline, unknown)


COMPARE_HEADERS = (
    "event type",
    "calls",
    "before",
    "success",
    "before",
    "avg ms",
    "before",
    "p95 ms",
    "before",
    "errors",
    "before",
)


def compare_title(report: Report) -> str:
    assert report.previous is not None
    before = report.previous.period
    return (
        f"Compared with the previous {format_duration(before.seconds)} "
        f"({when(before.start)} to {when(before.end)})"
    )


def compare_rows(report: Report) -> list[list[str]]:
    """Each event type of either period: its figures now and in the period before."""
    previous = report.previous
    assert previous is not None
    t = report.baseline
    now = {row.event_type: row for row in (report.overall, *report.event_types)}
    names = sorted({row.event_type or "" for row in (*report.event_types, *previous.event_types)})
    rows = []
    for name in [None, *names]:
        pair = (now.get(name), previous.row(name))
        rows.append(
            [
                name or OVERALL,
                *_pair(pair, lambda r: str(r.figures.attempts)),
                *_pair(pair, lambda r: present.success_rate(r.figures.success_rate, t, 3)),
                *_pair(pair, lambda r: present.avg_ms(r.avg_ms, t)),
                *_pair(pair, lambda r: present.number(r.latency.p95_ms)),
                *_pair(pair, lambda r: str(r.figures.errors)),
            ]
        )
    return rows


def _pair(rows: tuple[Row | None, Row | None], show: Callable[[Row], str]) -> list[str]:
    return [present.MISSING if row is None else show(row) for row in rows]


TOP_HEADERS = ("count", "last seen", "message")
TOP_TEXT = (1, 2)  # the count is a number, aligned right; the rest is text, aligned left


def series_title(report: Report) -> str:
    by = report.period.by
    assert by is not None
    return f"By {step_name(by)} (all event types; buckets start at the UTC time shown)"


def _top_rows(report: Report) -> list[list[str]]:
    return [
        [str(item.count), when(item.last_seen), item.message or "(no message)"]
        for item in report.top_errors
    ]


BUDGET_HEADERS = ("event type", "objective", "events", "bad", "budget spent")


def budget_title(report: Report) -> str:
    return f"Error budgets spent over the period ({format_duration(report.period.seconds)})"


def budget_rows(report: Report) -> list[list[str]]:
    """Each objective's budget spent over the report's period, against its target: over a
    period as long as the objective's, the budget's own account."""
    rows = []
    for item in report.budgets:
        goal = f"{'success' if item.slo == 'success_rate' else 'latency'} "
        goal += present.percent(item.target.target)
        if item.target.threshold is not None:
            goal += f" within {present.millis(item.target.threshold)}"
        spent = item.spent
        rows.append(
            [
                item.event_type or OVERALL,
                goal,
                str(item.events),
                str(item.bad),
                present.MISSING if spent is None else present.percent(spent, 1),
            ]
        )
    return rows


def render_table(report: Report) -> str:
    lines = [headline(report), ""]
    if report.empty:
        lines += [EMPTY_NOTE, ""]
    lines += present.table(_HEADERS, summary_rows(report))
    if report.previous is not None:
        lines += ["", compare_title(report) + ":"]
        lines += present.table(COMPARE_HEADERS, compare_rows(report))
    if report.budgets:
        lines += ["", f"{budget_title(report)}:"]
        lines += present.table(BUDGET_HEADERS, budget_rows(report), text_columns=(0, 1))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "Most frequent errors:"]
        top = present.table(TOP_HEADERS, _top_rows(report), TOP_TEXT)
        lines += ["  " + line for line in top]
    if report.series is not None:
        lines += ["", f"{series_title(report)}:"]
        lines += present.table(_SERIES_HEADERS, series_rows(report))
    lines += ["", thresholds_line(report)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    lines = [f"## {headline(report)}", ""]
    if report.empty:
        lines += [f"_{EMPTY_NOTE}_", ""]
    lines += present.markdown_table(_HEADERS, summary_rows(report))
    if report.previous is not None:
        lines += ["", f"### {compare_title(report)}", ""]
        lines += present.markdown_table(COMPARE_HEADERS, compare_rows(report))
    if report.budgets:
        lines += ["", f"### {budget_title(report)}", ""]
        lines += present.markdown_table(BUDGET_HEADERS, budget_rows(report), (0, 1))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "### Most frequent errors", ""]
        lines += present.markdown_table(TOP_HEADERS, _top_rows(report), TOP_TEXT)
    if report.series is not None:
        lines += ["", f"### {series_title(report)}", ""]
        lines += present.markdown_table(_SERIES_HEADERS, series_rows(report))
    lines += ["", f"_{thresholds_line(report)}_"]
    return "\n".join(lines) + "\n"
