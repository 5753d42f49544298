"""The closing summary: the figures ``cbmon report`` gives for the demo's run, and the alerts."""

from __future__ import annotations

import io

from cbmon.config import Config
from cbmon.demo.receivers import AlertCounts
from cbmon.domain import Level
from cbmon.report import build_report
from cbmon.report.model import Report, Row
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest

_VERDICT = {Level.OK: "ok", Level.WARNING: "WARNING", Level.CRITICAL: "CRITICAL"}


def fetch(config: Config, seconds: float) -> Report:
    """``cbmon report --since <seconds>`` on the demo's tables, as a value."""
    request = ReportRequest(period=PeriodRequest(since=max(1.0, seconds)), top=3)
    return build_report(
        config, request, progress=Progress.silent(io.StringIO()), statement_timeout=30.0
    )


def _verdict(state: Level) -> str:
    return _VERDICT.get(state, "-")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(row: Row) -> str:
    f = row.figures
    rate = "-" if f.success_rate is None else f"{f.success_rate * 100:.2f}%"
    return (
        f"  {row.event_type or '(all)':<15}{f.attempts:>7}{f.failures:>9}{rate:>9}"
        f"{_ms(row.avg_ms):>9}{_ms(row.latency.p95_ms):>9}"
        f"  {_verdict(row.verdicts.success_rate):<10}"
        f"{_verdict(row.verdicts.avg_latency)}"
    )


def render(report: Report, alerts: AlertCounts, schema: str) -> list[str]:
    lines = [
        f"Summary (cbmon report over the run, schema {schema}):",
        f"  {'event type':<15}{'calls':>7}{'failures':>9}{'success':>9}{'avg ms':>9}"
        f"{'p95 ms':>9}  {'rate':<10}latency",
        _row(report.overall),
        *(_row(row) for row in report.event_types),
        f"  queue now: {report.queue.backlog} waiting (backlog {report.queue.verdict.label})",
    ]
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
