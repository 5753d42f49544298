"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import pandas as pd

from cbmon.report import svg
from cbmon.report.frame import series_frame
from cbmon.report.model import Report
from cbmon.report.text import (
    EMPTY_NOTE,
    OVERALL,
    headline,
    queue_line,
    summary_rows,
    thresholds_line,
    when,
)

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
_COLORS = {"ok": "#1a7f37", "warning": "#9a6700", "critical": "#cf222e", "unknown": "#6e7781"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; max-width: 70rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #d0d7de; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.ok { color: #1a7f37; } td.warning { color: #9a6700; font-weight: bold; }
td.critical { color: #cf222e; font-weight: bold; } td.unknown { color: #6e7781; }
.verdict { display: inline-block; padding: 0.2rem 0.6rem; border-radius: 0.3rem; color: #fff; }
.chart { width: 100%; max-width: 860px; height: auto; display: block; margin: 1rem 0; }
.chart-title { font-size: 15px; font-weight: bold; }
.tick, .legend, .threshold-label { font-size: 11px; fill: #57606a; }
.grid { stroke: #eaeef2; }
.note { color: #57606a; font-size: 0.9rem; }
"""
_EXPLAIN = (
    "Each row counts the callback attempts logged in the period. <b>Success rate</b> is the "
    "share of attempts whose status counts as success. Latencies are in milliseconds over "
    "attempts that recorded a valid duration: <b>p50/p95/p99</b> are the times half, 95 % and "
    "99 % of attempts finished within. <b>Slower than</b> is the share above the slow-callback "
    "limit. <b>Errors</b> are rows of the error table. Verdicts compare each figure with the "
    "baseline below: ok, warning (between the two limits) or critical; <i>unknown</i> when "
    "there were too few attempts to judge."
)


_STATE_CELLS = {"ok": "ok", "WARNING": "warning", "CRITICAL": "critical", "-": "unknown"}


def _state_cell(text: str) -> str:
    state = _STATE_CELLS.get(text, "unknown")
    return f'<td class="{state}">{state}</td>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], states: int = 0) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        plain, judged = row[: len(row) - states], row[len(row) - states :]
        cells = "".join(f"<td>{escape(cell)}</td>" for cell in plain)
        cells += "".join(_state_cell(cell) for cell in judged)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _values(frame: pd.DataFrame, column: str, scale: float = 1.0) -> list[float | None]:
    return [None if pd.isna(v) else float(v) * scale for v in frame[column]]


def charts(report: Report) -> list[str]:
    """Success rate, latency percentiles and calls per bucket, with the baseline drawn."""
    frame = series_frame(report, overall_only=True)
    by = report.period.by or "hour"
    fmt = "%H:%M" if by == "hour" else "%m-%d"
    labels = [t.strftime(fmt) for t in frame["bucket"]]
    t = report.thresholds
    rate = svg.chart(
        f"Success rate per {by} (all event types)",
        labels,
        [svg.Series("success rate", _values(frame, "success_rate", 100), "#0969da")],
        [
            svg.Threshold(
                "normal",
                f"ok > {t.success_rate.normal:.2%}",
                t.success_rate.normal * 100,
                _COLORS["warning"],
            ),
            svg.Threshold(
                "alert",
                f"critical < {t.success_rate.alert:.2%}",
                t.success_rate.alert * 100,
                _COLORS["critical"],
            ),
        ],
        y_format=lambda v: f"{v:.4g}%",
        ceiling=100.0,
    )
    latency = svg.chart(
        f"Latency per {by} (ms, all event types)",
        labels,
        [
            svg.Series("avg", _values(frame, "avg_ms"), "#8250df"),
            svg.Series("p50", _values(frame, "p50_ms"), "#0969da"),
            svg.Series("p95", _values(frame, "p95_ms"), "#bf8700"),
            svg.Series("p99", _values(frame, "p99_ms"), "#cf222e"),
        ],
        [
            svg.Threshold(
                "normal",
                f"avg ok < {t.avg_latency.normal * 1000:g} ms",
                t.avg_latency.normal * 1000,
                _COLORS["warning"],
            ),
            svg.Threshold(
                "slow",
                f"slow > {t.slow_callback * 1000:g} ms",
                t.slow_callback * 1000,
                _COLORS["unknown"],
            ),
            svg.Threshold(
                "alert",
                f"avg critical > {t.avg_latency.alert * 1000:g} ms",
                t.avg_latency.alert * 1000,
                _COLORS["critical"],
            ),
        ],
        floor=0.0,
    )
    calls = svg.chart(
        f"Calls per {by} (all event types)",
        labels,
        [
            svg.Series("calls", _values(frame, "calls"), "#54aeff", "bar"),
            svg.Series("failures", _values(frame, "failures"), "#cf222e", "bar"),
            svg.Series("errors", _values(frame, "errors"), "#9a6700", "bar"),
        ],
        floor=0.0,
    )
    return [rate, latency, calls]


def render_html(report: Report) -> str:
    verdict = report.verdict.label
    slow = f"{report.thresholds.slow_callback * 1000:g}"
    headers = [h.format(slow=slow) for h in _HEADERS]
    parts: list[Any] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(headline(report))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Callback report: {escape(when(report.period.start))} to "
        f"{escape(when(report.period.end))}</h1>",
        f'<p>Verdict: <span class="verdict" style="background:{_COLORS[verdict]}">'
        f"{escape(verdict)}</span></p>",
    ]
    if report.empty:
        parts.append(f'<p class="empty"><b>{escape(EMPTY_NOTE)}</b></p>')
    rows = [[OVERALL if i == 0 else r[0], *r[1:]] for i, r in enumerate(summary_rows(report))]
    parts += ["<h2>Callbacks</h2>", _table(headers, rows, states=2)]
    parts.append(f'<p class="note">{_EXPLAIN}</p>')
    parts.append(f"<h2>Queue now</h2><p>{escape(queue_line(report))}</p>")
    if report.top_errors:
        top = [
            [str(e.count), when(e.last_seen), e.message or "(no message)"]
            for e in report.top_errors
        ]
        parts += ["<h2>Most frequent errors</h2>", _table(("count", "last seen", "message"), top)]
    parts.append("<h2>Over time</h2>")
    parts += charts(report)
    parts.append(f'<p class="note">{escape(thresholds_line(report))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
