"""The terminal table (the default format) and Markdown, for incident channels and reviews."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from cbmon import present
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.report.frame import TRIES_COLUMNS, series_frame, summary_frame
from cbmon.report.model import TRIES_LABELS, Report, Row
from cbmon.report.period import step_name
from cbmon.slo import wording
from cbmon.slo.objectives import CALLBACK_SUCCESS_RATE, DEAD_LETTERS, END_TO_END_P95, Baseline

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


def series_headers(report: Report) -> tuple[str, ...]:
    extra = ("delivered", "dead", "e2e p95 ms") if told(report) else ()
    return (*_SERIES_HEADERS, *extra)


def series_rows(report: Report) -> list[list[str]]:
    frame = series_frame(report, overall_only=True)
    t = report.baseline
    rows = []
    for record in frame.to_dict("records"):
        cells = [
            when(record["bucket"].to_pydatetime()),
            *_figure_cells(record, t),
            str(record["errors"]),
        ]
        if told(report):
            cells += [str(record["delivered"]), str(record["dead"]), millis(record["end_p95_ms"])]
        rows.append(cells)
    return rows


# -- callbacks, not attempts ------------------------------------------------------------------
CALLBACK_TITLE = (
    "Callbacks (each queued callback once, retries included; first try: delivered by its "
    "first attempt; recovered: failed first attempts a retry delivered)"
)
CALLBACK_HEADERS = (
    "event type",
    "callbacks",
    "delivered",
    "dead",
    "delivered %",
    "first try",
    "recovered",
    "duplicates",
    *(f"{label} {'try' if label == '1' else 'tries'}" for label in TRIES_LABELS),
    "delivery",
    "dead letters",
)
TIMES_TITLE = "Callback times in ms: queued to first attempt (wait), queued to delivered (e2e)"
TIMES_HEADERS = (
    "event type",
    "wait p50",
    "wait p95",
    "wait p99",
    "e2e p50",
    "e2e p95",
    "e2e p99",
    "e2e max",
    "end to end",
)


def callback_rate(value: Any, baseline: Baseline) -> str:
    """Delivered over finished callbacks, honest about its own limits."""
    limits = baseline.limit(CALLBACK_SUCCESS_RATE.slo)
    return present.percent(_number(value), 3, present.boundaries(limits))


def callback_rows(report: Report, unknown: str = present.MISSING) -> list[list[str]]:
    """One row per event type of what happened to its callbacks, the overall row first."""
    t = report.baseline
    return [
        [
            str(record["event_type"]) or OVERALL,
            *(str(record[name]) for name in ("callbacks", "delivered", "dead")),
            callback_rate(record["callback_success_rate"], t),
            percent(record["first_try_rate"], 2),
            percent(record["recovered_share"], 2),
            str(record["duplicates"]),
            *(str(record[name]) for name in TRIES_COLUMNS),
            _word(str(record["verdict_callback_success_rate"]), unknown),
            _word(str(record["verdict_dead_letters"]), unknown),
        ]
        for record in summary_frame(report).to_dict("records")
    ]


def times_rows(report: Report, unknown: str = present.MISSING) -> list[list[str]]:
    names = (
        *("wait_p50_ms", "wait_p95_ms", "wait_p99_ms"),
        *("end_p50_ms", "end_p95_ms", "end_p99_ms", "end_max_ms"),
    )
    return [
        [
            str(record["event_type"]) or OVERALL,
            *(millis(record[name]) for name in names),
            _word(str(record["verdict_end_to_end_p95"]), unknown),
        ]
        for record in summary_frame(report).to_dict("records")
    ]


def callback_thresholds_line(report: Report) -> str:
    """The callbacks' part of the baseline in one line, beside :func:`thresholds_line`."""
    parts = [
        f"{o.label} {wording.bounds(o, report.baseline.limit(o.slo))}"
        for o in (CALLBACK_SUCCESS_RATE, DEAD_LETTERS, END_TO_END_P95)
    ]
    return f"Callbacks' baseline: {'; '.join(parts)}"


def lifecycle_line(report: Report) -> str | None:
    """What of the callbacks' figures is off, and why, in one line (None: all on)."""
    if not report.lifecycle_notes:
        return None
    return "Callbacks: " + "; ".join(report.lifecycle_notes)


CALLBACK_COMPARE_HEADERS = (
    "event type",
    "delivered",
    "before",
    "dead",
    "before",
    "delivered %",
    "before",
    "first try",
    "before",
    "recovered",
    "before",
    "e2e p95 ms",
    "before",
    "duplicates",
    "before",
)


def callback_compare_rows(report: Report) -> list[list[str]]:
    """What happened to callbacks now and in the period before, per event type."""
    previous = report.previous
    assert previous is not None
    t = report.baseline
    now = {row.event_type: row for row in (report.overall, *report.event_types)}
    names = sorted({row.event_type or "" for row in (*report.event_types, *previous.event_types)})

    def own(show: Callable[[Row], str]) -> Callable[[Row], str]:
        return lambda r: present.MISSING if r.lifecycle is None else show(r)

    rows = []
    for name in [None, *names]:
        pair = (now.get(name), previous.row(name))
        c = (
            own(lambda r: str(r.figures.callbacks.delivered)),
            own(lambda r: str(r.figures.callbacks.dead)),
            own(lambda r: callback_rate(r.figures.callbacks.success_rate, t)),
            own(lambda r: present.percent(r.lifecycle.first_try_rate if r.lifecycle else None)),
            own(lambda r: present.percent(r.lifecycle.recovered_share if r.lifecycle else None)),
            own(lambda r: present.number(r.lifecycle.end.p95_ms if r.lifecycle else None)),
            own(lambda r: str(r.figures.callbacks.duplicates)),
        )
        rows.append([name or OVERALL, *(cell for show in c for cell in _pair(pair, show))])
    return rows


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


def callback_compare_title(report: Report) -> str:
    """``compared with the previous 1h (...)``, after the word Callbacks."""
    title = compare_title(report)
    return title[0].lower() + title[1:]


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
    lines += _callback_tables(report)
    if report.previous is not None:
        lines += ["", compare_title(report) + ":"]
        lines += present.table(COMPARE_HEADERS, compare_rows(report))
        if told_either(report):
            lines += ["", f"Callbacks {callback_compare_title(report)}:"]
            lines += present.table(CALLBACK_COMPARE_HEADERS, callback_compare_rows(report))
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
        lines += present.table(series_headers(report), series_rows(report))
    lines += ["", thresholds_line(report)]
    if told_either(report):
        lines.append(callback_thresholds_line(report))
    return "\n".join(lines) + "\n"


def told(report: Report) -> bool:
    """Whether the period holds any attempt of a known callback, so the callbacks' tables
    have something to say."""
    own = report.overall.lifecycle
    return report.lifecycle and own is not None and own.callbacks > 0


def _told_before(report: Report) -> bool:
    own = None if report.previous is None else report.previous.overall.lifecycle
    return own is not None and own.callbacks > 0


def told_either(report: Report) -> bool:
    """Callbacks in the period or in the one compared with it."""
    return told(report) or _told_before(report)


NONE_TOLD = "Callbacks: no attempt in this period names its callback (queue_id)."


def _callback_tables(report: Report) -> list[str]:
    lines: list[str] = []
    if report.lifecycle and not told(report) and not report.empty:
        lines += ["", NONE_TOLD]
    if told(report):
        lines += ["", f"{CALLBACK_TITLE}:"]
        lines += present.table(CALLBACK_HEADERS, callback_rows(report))
        if report.overall.figures.callbacks.ended or report.overall.figures.callbacks.waited:
            lines += ["", f"{TIMES_TITLE}:"]
            lines += present.table(TIMES_HEADERS, times_rows(report))
    note = lifecycle_line(report)
    if note is not None:
        lines += ["", note]
    return lines


def render_markdown(report: Report) -> str:
    lines = [f"## {headline(report)}", ""]
    if report.empty:
        lines += [f"_{EMPTY_NOTE}_", ""]
    lines += present.markdown_table(_HEADERS, summary_rows(report))
    if report.lifecycle and not told(report) and not report.empty:
        lines += ["", f"_{NONE_TOLD}_"]
    if told(report):
        lines += ["", f"### {CALLBACK_TITLE}", ""]
        lines += present.markdown_table(CALLBACK_HEADERS, callback_rows(report))
        if report.overall.figures.callbacks.ended or report.overall.figures.callbacks.waited:
            lines += ["", f"### {TIMES_TITLE}", ""]
            lines += present.markdown_table(TIMES_HEADERS, times_rows(report))
    note = lifecycle_line(report)
    if note is not None:
        lines += ["", f"_{note}_"]
    if report.previous is not None:
        lines += ["", f"### {compare_title(report)}", ""]
        lines += present.markdown_table(COMPARE_HEADERS, compare_rows(report))
        if told_either(report):
            lines += ["", f"### Callbacks {callback_compare_title(report)}", ""]
            lines += present.markdown_table(CALLBACK_COMPARE_HEADERS, callback_compare_rows(report))
    if report.budgets:
        lines += ["", f"### {budget_title(report)}", ""]
        lines += present.markdown_table(BUDGET_HEADERS, budget_rows(report), (0, 1))
    lines += ["", queue_line(report)]
    if report.top_errors:
        lines += ["", "### Most frequent errors", ""]
        lines += present.markdown_table(TOP_HEADERS, _top_rows(report), TOP_TEXT)
    if report.series is not None:
        lines += ["", f"### {series_title(report)}", ""]
        lines += present.markdown_table(series_headers(report), series_rows(report))
    lines += ["", f"_{thresholds_line(report)}_"]
    if told_either(report):
        lines += ["", f"_{callback_thresholds_line(report)}_"]
    return "\n".join(lines) + "\n"
