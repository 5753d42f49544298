"""``cbmon check``: one evaluation of the baseline straight from the database, for cron jobs
and monitoring agents. Exit codes follow the Nagios plugin convention.

The figures come from the report's own query (:func:`cbmon.report.query.read_report`) over
the window ending now, so the p95 is exact (``percentile_cont``), not a histogram estimate.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Iterable
from typing import Any

import psycopg

from cbmon import present
from cbmon.config import Config, Thresholds
from cbmon.db.connect import Deadline, connect, first_line
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.errors import CbmonError, DatabaseError
from cbmon.report.model import Report
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest, read_report, snapshot
from cbmon.sidecar.poller import Poller
from cbmon.slo.judge import ALERT_NAMES, OVERALL, Indicator, evaluate

DEFAULT_TIMEOUT = 10.0  # seconds, the Nagios plugin guidelines' default
EXIT_CODES = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2, Level.UNKNOWN: 3}
FORMATS = ("table", "json", "nagios")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    status: Level
    window: float
    indicators: list[Indicator]
    message: str
    # Rows dated too far ahead of the database's clock, left out of the window, per table.
    ahead_rows: dict[str, int] = dataclasses.field(default_factory=dict)
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


class CheckError(CbmonError):
    """Anything that stops the check from judging: Nagios wants UNKNOWN (3) for it."""

    exit_code = 3


def run_check(config: Config, window: float, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Judge the window straight from the database. Nothing waits longer than ``timeout``
    seconds in all: a monitoring agent gets UNKNOWN rather than a hung plugin."""
    if window <= 0:
        raise CheckError("--window: must be above 0s")
    db = config.file.database
    started = time.monotonic()
    try:
        conn = connect(
            config.require_dsn(),
            statement_timeout=min(db.statement_timeout, timeout),
            connect_timeout=min(db.connect_timeout, timeout),
            autocommit=False,
            application_name="cbmon check",
            using=db.driver,
        )
    except DatabaseError as exc:
        raise CheckError(str(exc)) from None
    remaining = max(0.1, timeout - (time.monotonic() - started))
    # The window ends now; rows up to slo.clock_skew ahead of the clock count, as in serve.
    period = PeriodRequest(since=window, ahead=config.file.slo.clock_skew)
    deadline = Deadline(conn, remaining)
    try:
        with conn, deadline, snapshot(conn), conn.cursor() as cur:
            request = ReportRequest(period=period, top=0)
            silent = Progress.silent(io.StringIO())
            report = read_report(conn, config, request, progress=silent, timeout=remaining)
            ahead = Poller(config).rows_ahead(cur)
    except psycopg.Error as exc:
        raise CheckError(f"query failed: {first_line(exc)}") from None
    except DatabaseError as exc:
        hint = f" (--timeout {format_duration(timeout)})" if deadline.expired.is_set() else ""
        raise CheckError(f"{exc}{hint}") from None
    return judge_report(report, window, config.file.slo.min_events, ahead)


def judge_report(
    report: Report, window: float, min_events: int, ahead: dict[str, int]
) -> CheckResult:
    """The check's verdict on a report of the window: the sidecar's indicators, with the
    report's exact percentiles."""
    per_type = {row.event_type or "": row.figures for row in report.event_types}
    rows = [report.overall, *report.event_types]
    p95 = {
        (row.event_type or OVERALL): (
            None if row.latency.p95_ms is None else row.latency.p95_ms / 1000
        )
        for row in rows
    }
    assert report.queue is not None
    indicators = evaluate(
        report.overall.figures,
        per_type,
        report.queue.backlog,
        report.thresholds,
        min_events,
        p95=p95,
    )
    return verdict(indicators, window, report.thresholds, min_events, ahead)


def verdict(
    indicators: list[Indicator],
    window: float,
    thresholds: Thresholds,
    min_events: int,
    ahead: dict[str, int] | None = None,
) -> CheckResult:
    """The check's answer from judged indicators, the database's or a running serve's."""
    judged = [i for i in indicators if i.slo in ALERT_NAMES and i.state is not Level.UNKNOWN]
    status = max((i.state for i in judged), default=Level.OK)
    calls = next(
        (i.events for i in indicators if i.slo == "success_rate" and i.event_type == OVERALL), 0
    )
    message = _message(status, judged, window, thresholds, calls, min_events)
    return CheckResult(status, window, indicators, message, ahead or {}, thresholds)


def _message(
    status: Level,
    judged: list[Indicator],
    window: float,
    thresholds: Thresholds,
    calls: int,
    min_events: int,
) -> str:
    worst = [i for i in judged if i.state is status and status is not Level.OK]
    detail = "; ".join(f"{i.slo} {format_value(i, thresholds)} ({scope(i)})" for i in worst[:5])
    if not detail:
        detail = f"all judged indicators within the baseline over {format_duration(window)}"
        if calls < min_events:
            detail += (
                f"; success rate and latency not judged ({calls} calls, fewer than {min_events})"
            )
    return f"CBMON {status.name} - {detail}"


def scope(indicator: Indicator) -> str:
    return "all" if indicator.event_type == OVERALL else indicator.event_type


def format_value(indicator: Indicator, thresholds: Thresholds) -> str:
    value = indicator.value
    if indicator.slo == "success_rate":
        return present.success_rate(value, thresholds)
    if indicator.slo == "avg_latency":
        return present.avg_latency(value, thresholds, digits=1)
    if indicator.slo == "slow_share":
        return present.percent(value)
    if indicator.slo == "p95_latency":
        return present.millis(value, digits=1)
    return present.count(value)


def _state(indicator: Indicator) -> str | None:
    """The verdict, or None for what the baseline does not judge (p95, slow share)."""
    return indicator.state.label if indicator.slo in ALERT_NAMES else None


def to_json(result: CheckResult) -> str:
    data: dict[str, Any] = {
        "status": result.status.label,
        "exit_code": result.exit_code,
        "window": format_duration(result.window),
        "message": result.message,
        "rows_dated_ahead": result.ahead_rows,
        "indicators": [
            {
                "slo": i.slo,
                "event_type": i.event_type or None,
                "value": i.value,
                "state": _state(i),
                "events": i.events,
            }
            for i in result.indicators
        ],
    }
    return json.dumps(data, indent=2)


def unknown_json(message: str) -> str:
    """What ``--format json`` prints when the check could not judge at all."""
    return json.dumps({"status": "unknown", "exit_code": 3, "message": message}, indent=2)


def to_table(result: CheckResult) -> str:
    rows = [
        (
            i.slo,
            scope(i),
            format_value(i, result.thresholds),
            _state(i) or present.MISSING,
            str(i.events),
        )
        for i in result.indicators
    ]
    lines = [result.message, ""]
    ahead = {table: n for table, n in result.ahead_rows.items() if n}
    if ahead:
        counts = ", ".join(f"{n} in {table}" for table, n in sorted(ahead.items()))
        lines[1:1] = [f"left out: rows dated in the future ({counts})"]
    headers = ("INDICATOR", "EVENT TYPE", "VALUE", "STATE", "EVENTS")
    lines += present.table(headers, rows, text_columns=(0, 1, 3))
    return "\n".join(lines)


# -- the Nagios plugin format -----------------------------------------------------------------
# A status line, then performance data after "|": 'label'=value[UOM];warn;crit;min;max, the
# thresholds in the guidelines' range syntax (a value outside the range alerts; "@" inverts).
# They state the baseline's boundary rule exactly: a success rate of exactly 99.5 % is a
# warning (@~:99.5 alerts at or below 99.5), exactly 99 % is not critical (99: alerts below
# 99); a latency of exactly 150 ms is a warning (@150:), exactly 500 ms is not critical (500).


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _label(slo: str, event_type: str) -> str:
    name = slo if event_type == OVERALL else f"{slo}[{event_type}]"
    # A label may hold anything but "=" and "'"; "|" would end the performance data.
    return "'" + name.replace("'", "_").replace("=", "_").replace("|", "_") + "'"


def _perf(indicator: Indicator, thresholds: Thresholds) -> str:
    """One performance datum; ``U`` when the value could not be determined."""
    value = indicator.value
    slo, label = indicator.slo, _label(indicator.slo, indicator.event_type)
    t = thresholds
    if slo == "success_rate":
        scaled, uom = (None if value is None else value * 100), "%"
        ranges = f"@~:{_number(t.success_rate.normal * 100)};{_number(t.success_rate.alert * 100)}:"
        bounds = "0;100"
    elif slo == "avg_latency":
        scaled, uom = (None if value is None else value * 1000), "ms"
        ranges = f"@{_number(t.avg_latency.normal * 1000)}:;{_number(t.avg_latency.alert * 1000)}"
        bounds = "0;"
    elif slo == "p95_latency":
        scaled, uom, ranges, bounds = (None if value is None else value * 1000), "ms", ";", "0;"
    else:  # backlog
        scaled, uom = value, ""
        ranges, bounds = f"@{t.backlog.normal}:;{t.backlog.alert}", "0;"
    shown = "U" if scaled is None else _number(scaled) + uom
    return f"{label}={shown};{ranges};{bounds}".rstrip(";")


def _perfdata(indicators: Iterable[Indicator], thresholds: Thresholds) -> str:
    wanted = ("success_rate", "avg_latency", "p95_latency", "backlog")
    return " ".join(_perf(i, thresholds) for i in indicators if i.slo in wanted)


def to_nagios(result: CheckResult) -> str:
    """The Nagios plugin output: the status line and the overall performance data, then a
    line per event type, the last one followed by the event types' performance data."""
    overall = [i for i in result.indicators if i.event_type == OVERALL]
    calls = next((i.events for i in overall if i.slo == "success_rate"), 0)
    lines = [
        f"{_safe(result.message)} | {_perfdata(overall, result.thresholds)} 'calls'={calls};;;0"
    ]
    typed = [i for i in result.indicators if i.event_type != OVERALL]
    names = sorted({i.event_type for i in typed})
    for name in names:
        mine = {i.slo: i for i in typed if i.event_type == name}
        lines.append(_safe(f"{name}: " + ", ".join(_words(mine[slo], result) for slo in mine)))
    if names:
        lines[-1] += f" | {_perfdata(typed, result.thresholds)}"
    return "\n".join(lines)


def _words(indicator: Indicator, result: CheckResult) -> str:
    state = _state(indicator)
    judged = f" {state}" if state else ""
    return f"{indicator.slo} {format_value(indicator, result.thresholds)}{judged}"


def _safe(text: str) -> str:
    """Text before the performance data must not hold its separator."""
    return text.replace("|", "/")
