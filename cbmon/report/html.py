"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import pandas as pd

from cbmon import present
from cbmon.domain import Level
from cbmon.report import svg
from cbmon.report.frame import series_frame
from cbmon.report.model import Report
from cbmon.report.period import step_name
from cbmon.report.text import (
    BUDGET_HEADERS,
    CALLBACK_COMPARE_HEADERS,
    CALLBACK_HEADERS,
    CALLBACK_TITLE,
    COMPARE_HEADERS,
    EMPTY_NOTE,
    NONE_TOLD,
    OVERALL,
    TIMES_HEADERS,
    TIMES_TITLE,
    TOP_HEADERS,
    TOP_TEXT,
    budget_rows,
    budget_title,
    callback_compare_rows,
    callback_compare_title,
    callback_rows,
    callback_thresholds_line,
    compare_rows,
    compare_title,
    headline,
    lifecycle_line,
    queue_line,
    summary_rows,
    thresholds_line,
    times_rows,
    told,
    told_either,
    when,
)
from cbmon.slo import wording
from cbmon.slo.objectives import AVG_LATENCY, END_TO_END_P95, SUCCESS_RATE, Baseline, Limits

_HEADERS = (
    "event type",
    "calls",
    "failures",
    "success rate",
    "avg ms",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "slower than {slow} ms",
    "errors",
    "success verdict",
    "latency verdict",
)
_UNKNOWN = "unknown"  # the word for a figure too thin to judge, in the table and the footer
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { padding: 0.25rem 0.5rem; border-bottom: 1px solid #d0d7de; text-align: right; }
th { vertical-align: bottom; }
th.text, td.text { text-align: left; }
td.state { text-align: left; font-weight: bold; }
.verdict { display: inline-block; padding: 0.2rem 0.6rem; border-radius: 0.3rem; color: #fff; }
.chart { width: 100%; max-width: 860px; height: auto; display: block; margin: 1rem 0; }
.chart-title { font-size: 15px; font-weight: bold; }
.tick, .legend, .axis-caption { font-size: 11px; fill: #57606a; }
.threshold-label { font-size: 11px; }
.grid { stroke: #eaeef2; }
.note { color: #57606a; font-size: 0.9rem; }
"""
_EXPLAIN = (
    "Each row counts the callback attempts logged in the period. <b>Success rate</b> is the "
    "share of attempts whose status counts as success. Latencies are in milliseconds over "
    "attempts that recorded a valid duration: <b>p50/p95/p99</b> are the times half, 95 % and "
    "99 % of attempts finished within. <b>Slower than</b> is the share above the slow-callback "
    "limit. <b>Errors</b> are rows of the error table. Verdicts compare each figure with the "
    "baseline below: ok, WARNING (between the two limits) or CRITICAL; <i>unknown</i> when "
    "there were too few attempts to judge."
)
_LEVELS = {present.level_word(level, _UNKNOWN): level for level in Level}


def _cell(text: str, left: bool, state: bool) -> str:
    if state:
        colour = present.HTML_COLOURS[_LEVELS.get(text, Level.UNKNOWN)]
        return f'<td class="state" style="color:{colour}">{escape(text)}</td>'
    return f"<td{_TEXT if left else ''}>{escape(text)}</td>"


_TEXT = ' class="text"'


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    text_columns: Sequence[int] = (0,),
    states: Sequence[int] = (),
) -> str:
    """Numbers aligned right, text left (``text_columns``); verdicts (``states``) in colour."""
    left = {*text_columns, *states}
    head = "".join(
        f"<th{_TEXT if i in left else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = [
        "<tr>"
        + "".join(_cell(cell, i in left, i in states) for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    ]
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _values(frame: pd.DataFrame, column: str, scale: float = 1.0) -> list[float | None]:
    return [None if pd.isna(v) else float(v) * scale for v in frame[column]]


# Series colours apart from the thresholds' (amber warning, red critical, grey slow):
# the percentiles in shades of blue, lighter to darker as they rise; the judged mean purple.
_SERIES_COLOURS = {
    "success rate": "#0969da",
    "avg": "#8250df",
    "p50": "#54aeff",
    "p95": "#0969da",
    "p99": "#0a3069",
    "calls": "#54aeff",
    "failures": "#cf222e",
    "errors": "#bc4c00",
    "e2e p50": "#54aeff",
    "e2e p95": "#0969da",
    "e2e p99": "#0a3069",
    "dead": "#cf222e",
}


def _series(frame: pd.DataFrame, name: str, column: str, **extra: Any) -> svg.Series:
    scale = 100.0 if column == "success_rate" else 1.0
    return svg.Series(name, _values(frame, column, scale), _SERIES_COLOURS[name], **extra)


def charts(report: Report) -> list[str]:
    """Success rate, latency percentiles (log scale), calls, and failures with errors on
    their own scale, per bucket, with the baseline drawn."""
    frame = series_frame(report, overall_only=True)
    by = report.period.by or 3600.0
    axis = svg.Axis([t.to_pydatetime() for t in frame["bucket"]], by)
    per = step_name(by)
    baseline = report.baseline
    rate_limits = _limits(baseline, SUCCESS_RATE.slo)
    latency_limits = _limits(baseline, AVG_LATENCY.slo)
    rate = svg.chart(
        f"Success rate per {per} (all event types)",
        axis,
        [_series(frame, "success rate", "success_rate")],
        [
            svg.Threshold(
                "normal",
                wording.bound(SUCCESS_RATE, rate_limits, "normal"),
                rate_limits.normal * 100,
                present.HTML_COLOURS[Level.WARNING],
            ),
            svg.Threshold(
                "alert",
                wording.bound(SUCCESS_RATE, rate_limits, "alert"),
                (rate_limits.alert or 0.0) * 100,
                present.HTML_COLOURS[Level.CRITICAL],
            ),
        ],
        y_format=lambda v: f"{v:.4g}%",
        ceiling=100.0,
    )
    latency = svg.chart(
        f"Latency per {per} (ms, log scale, all event types)",
        axis,
        [
            _series(frame, "avg", "avg_ms", width=3.0),
            _series(frame, "p50", "p50_ms"),
            _series(frame, "p95", "p95_ms"),
            _series(frame, "p99", "p99_ms"),
        ],
        [
            svg.Threshold(
                "normal",
                "avg " + wording.bound(AVG_LATENCY, latency_limits, "normal"),
                latency_limits.normal * 1000,
                present.HTML_COLOURS[Level.WARNING],
            ),
            svg.Threshold(
                "slow",
                f"slow > {present.millis(baseline.slow_callback)}",
                baseline.slow_callback * 1000,
                present.HTML_COLOURS[Level.UNKNOWN],
            ),
            svg.Threshold(
                "alert",
                "avg " + wording.bound(AVG_LATENCY, latency_limits, "alert"),
                (latency_limits.alert or 0.0) * 1000,
                present.HTML_COLOURS[Level.CRITICAL],
            ),
        ],
        y_format=lambda v: f"{v:.0f}" if v >= 1 else f"{v:g}",  # 1000000, not 1e+06
        log=True,
    )
    calls = svg.chart(
        f"Calls per {per} (all event types)",
        axis,
        [_series(frame, "calls", "calls", kind="bar")],
        floor=0.0,
        whole=True,
    )
    problems = svg.chart(
        f"Failures and errors per {per} (all event types, own scale)",
        axis,
        [
            _series(frame, "failures", "failures", kind="bar"),
            _series(frame, "errors", "errors", kind="bar"),
        ],
        floor=0.0,
        whole=True,
    )
    found = [rate, latency, calls, problems]
    if told(report):
        found += _callback_charts(report, frame, axis)
    return found


def _callback_charts(report: Report, frame: pd.DataFrame, axis: svg.Axis) -> list[str]:
    """End to end (queued to delivered) percentiles against their limits, and dead letters,
    per bucket."""
    per = step_name(report.period.by or 3600.0)
    limits = _limits(report.baseline, END_TO_END_P95.slo)
    thresholds = [
        svg.Threshold(
            "normal",
            "p95 " + wording.bound(END_TO_END_P95, limits, "normal"),
            limits.normal * 1000,
            present.HTML_COLOURS[Level.WARNING],
        )
    ]
    if limits.alert is not None:
        thresholds.append(
            svg.Threshold(
                "alert",
                "p95 " + wording.bound(END_TO_END_P95, limits, "alert"),
                limits.alert * 1000,
                present.HTML_COLOURS[Level.CRITICAL],
            )
        )
    end = svg.chart(
        f"End to end per {per}: queued to delivered, retries included (ms, log scale)",
        axis,
        [
            _series(frame, "e2e p50", "end_p50_ms"),
            _series(frame, "e2e p95", "end_p95_ms", width=3.0),
            _series(frame, "e2e p99", "end_p99_ms"),
        ],
        thresholds,
        y_format=lambda v: f"{v:.0f}" if v >= 1 else f"{v:g}",
        log=True,
    )
    # On a scale of their own: a few dead letters beside thousands of deliveries would not show.
    dead = svg.chart(
        f"Dead letters per {per} (callbacks out of retries, all event types)",
        axis,
        [_series(frame, "dead", "dead", kind="bar")],
        floor=0.0,
        whole=True,
    )
    return [end, dead]


def _limits(baseline: Baseline, slo: str) -> Limits:
    return baseline.limit(slo) or Limits(0.0)


def _callback_tables(report: Report) -> list[str]:
    parts: list[str] = []
    if report.lifecycle and not told(report) and not report.empty:
        parts.append(f'<p class="note">{escape(NONE_TOLD)}</p>')
    if told(report):
        rows = callback_rows(report, unknown=_UNKNOWN)
        last = len(CALLBACK_HEADERS)
        parts += [f"<h2>{escape(CALLBACK_TITLE)}</h2>"]
        parts.append(_table(CALLBACK_HEADERS, rows, states=(last - 2, last - 1)))
        times = times_rows(report, unknown=_UNKNOWN)
        parts += [f"<h2>{escape(TIMES_TITLE)}</h2>"]
        parts.append(_table(TIMES_HEADERS, times, states=(len(TIMES_HEADERS) - 1,)))
    note = lifecycle_line(report)
    if note is not None:
        parts.append(f'<p class="note">{escape(note)}</p>')
    return parts


def render_html(report: Report) -> str:
    verdict = report.verdict
    slow = f"{report.baseline.slow_callback * 1000:g}"
    headers = [h.format(slow=slow) for h in _HEADERS]
    colour = present.HTML_COLOURS[verdict]
    parts: list[Any] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(headline(report))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Callback report: {escape(when(report.period.start))} to "
        f"{escape(when(report.period.end))}</h1>",
        f'<p>Verdict: <span class="verdict" style="background:{colour}">'
        f"{escape(present.level_word(verdict, _UNKNOWN))}</span></p>",
    ]
    if report.empty:
        parts.append(f'<p class="empty"><b>{escape(EMPTY_NOTE)}</b></p>')
    rows = summary_rows(report, unknown=_UNKNOWN)
    rows = [[OVERALL if i == 0 else r[0], *r[1:]] for i, r in enumerate(rows)]
    states = (len(headers) - 2, len(headers) - 1)
    parts += ["<h2>Callbacks</h2>", _table(headers, rows, states=states)]
    parts.append(f'<p class="note">{_EXPLAIN}</p>')
    parts += _callback_tables(report)
    if report.previous is not None:
        parts += [f"<h2>{escape(compare_title(report))}</h2>"]
        parts.append(_table(COMPARE_HEADERS, compare_rows(report)))
        if told_either(report):
            parts += [f"<h2>Callbacks {escape(callback_compare_title(report))}</h2>"]
            parts.append(_table(CALLBACK_COMPARE_HEADERS, callback_compare_rows(report)))
    if report.budgets:
        parts += [f"<h2>{escape(budget_title(report))}</h2>"]
        parts.append(_table(BUDGET_HEADERS, budget_rows(report), (0, 1)))
    parts.append(f"<h2>Queue now</h2><p>{escape(queue_line(report))}</p>")
    if report.top_errors:
        top = [
            [str(e.count), when(e.last_seen), e.message or "(no message)"]
            for e in report.top_errors
        ]
        parts += ["<h2>Most frequent errors</h2>", _table(TOP_HEADERS, top, TOP_TEXT)]
    parts.append("<h2>Over time</h2>")
    parts += charts(report)
    parts.append(f'<p class="note">{escape(thresholds_line(report, _UNKNOWN))}</p>')
    if told_either(report):
        parts.append(f'<p class="note">{escape(callback_thresholds_line(report))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
