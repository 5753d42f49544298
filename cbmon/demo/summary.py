"""The closing summary: the figures ``cbmon report`` gives for the demo's run, and the alerts."""

from __future__ import annotations

import io

from cbmon import present
from cbmon.config import Config
from cbmon.demo.receivers import AlertCounts
from cbmon.report import build_report
from cbmon.report.model import Report, Row
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest
from cbmon.slo.objectives import Baseline


def fetch(config: Config, seconds: float) -> Report:
    """``cbmon report --since <seconds>`` on the demo's tables, as a value."""
    request = ReportRequest(period=PeriodRequest(since=max(1.0, seconds)), top=3)
    return build_report(
        config, request, progress=Progress.silent(io.StringIO()), statement_timeout=30.0
    )


def _row(row: Row, baseline: Baseline) -> list[str]:
    f = row.figures
    return [
        row.event_type or "(all)",
        str(f.attempts),
        str(f.failures),
        present.success_rate(f.success_rate, baseline),
        present.avg_ms(row.avg_ms, baseline),
        present.number(row.latency.p95_ms),
        present.level_word(row.verdicts.success_rate),
        present.level_word(row.verdicts.avg_latency),
    ]


_HEADERS = ("event type", "calls", "failures", "success", "avg ms", "p95 ms", "rate", "latency")


def _callbacks(report: Report) -> list[str]:
    """Callbacks, not attempts: their outcomes, the retries' work, and end to end."""
    own = report.overall.lifecycle
    if own is None or not own.callbacks:
        return []
    c = report.overall.figures.callbacks
    end = present.number(own.end.p95_ms)
    return [
        f"  callbacks: {own.callbacks}, delivered {c.delivered}, dead {c.dead}, duplicates "
        f"{c.duplicates}; first try {present.percent(own.first_try_rate)}; failed first "
        f"attempts delivered by a retry {present.percent(own.recovered_share)}; end to end "
        f"p95 {end} ms"
    ]


def render(report: Report, alerts: AlertCounts, schema: str) -> list[str]:
    t = report.baseline
    rows = [_row(report.overall, t), *(_row(row, t) for row in report.event_types)]
    lines = [
        f"Summary (cbmon report over the run, schema {schema}):",
        *("  " + line for line in present.table(_HEADERS, rows, text_columns=(0, 6, 7))),
    ]
    lines += _callbacks(report)
    if report.queue is not None:
        queue = report.queue
        lines.append(f"  queue now: {queue.backlog} waiting (backlog {queue.verdict.label})")
    if report.top_errors:
        errors = "; ".join(f"{e.message} x{e.count}" for e in report.top_errors)
        lines.append(f"  most frequent errors: {errors}")
    rejected = f", {alerts.rejected} rejected" if alerts.rejected else ""
    lines.append(
        f"  alerts: {alerts.fired} fired, {alerts.resolved} resolved"
        f" ({alerts.notifications} signed notifications verified by the local receiver"
        f"{rejected})"
    )
    return lines
