"""``cbmon check``: one evaluation of the baseline straight from the database, for cron jobs
and monitoring agents. Exit codes follow the Nagios plugin convention."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import psycopg

from cbmon import present
from cbmon.config import Config
from cbmon.db.connect import Deadline, connect, first_line
from cbmon.domain import Figures, Level, total
from cbmon.durations import format_duration
from cbmon.errors import CbmonError, DatabaseError
from cbmon.sidecar.labels import EventTypeLabels
from cbmon.sidecar.poller import Poller
from cbmon.slo.judge import ALERT_NAMES, OVERALL, Indicator, evaluate

DEFAULT_TIMEOUT = 10.0  # seconds, the Nagios plugin guidelines' default
EXIT_CODES = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2, Level.UNKNOWN: 3}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    status: Level
    window: float
    indicators: list[Indicator]
    message: str
    # Rows dated too far ahead of the database's clock, left out of the window, per table.
    ahead_rows: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


class CheckError(CbmonError):
    """Anything that stops the check from judging: Nagios wants UNKNOWN (3) for it."""

    exit_code = 3


def run_check(config: Config, window: float, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Judge the window straight from the database. Nothing waits longer than ``timeout``
    seconds in all: a monitoring agent gets UNKNOWN rather than a hung plugin."""
    db = config.file.database
    started = time.monotonic()
    try:
        conn = connect(
            config.require_dsn(),
            statement_timeout=min(db.statement_timeout, timeout),
            connect_timeout=min(db.connect_timeout, timeout),
            using=db.driver,
        )
    except DatabaseError as exc:
        raise CheckError(str(exc)) from None
    poller = Poller(config)
    labels = EventTypeLabels(config.file.max_event_types, config.file.max_event_type_length)
    remaining = max(0.1, timeout - (time.monotonic() - started))
    try:
        with conn, Deadline(conn, remaining):
            history, ahead = poller.history(conn, window)
            conn.autocommit = True
            queue = poller.queue_state(conn)
    except psycopg.Error as exc:
        raise CheckError(f"query failed: {first_line(exc)}") from None
    except DatabaseError as exc:
        raise CheckError(f"{exc} (--timeout {format_duration(timeout)})") from None
    per_type: dict[str, Figures] = {}
    for slot in history:  # every slot lies within the window: it was read that way
        label = labels.label(slot.event_type)
        per_type[label] = per_type.get(label, Figures()) + slot.figures
    overall = total(per_type.values())
    indicators = evaluate(
        overall, per_type, queue.backlog, config.thresholds, config.file.slo.min_events
    )
    return verdict(indicators, window, ahead)


def verdict(
    indicators: list[Indicator], window: float, ahead: dict[str, int] | None = None
) -> CheckResult:
    """The check's answer from judged indicators, the database's or a running serve's."""
    judged = [i for i in indicators if i.slo in ALERT_NAMES and i.state is not Level.UNKNOWN]
    status = max((i.state for i in judged), default=Level.OK)
    message = _message(status, judged, window)
    return CheckResult(status, window, indicators, message, ahead or {})


def _message(status: Level, judged: list[Indicator], window: float) -> str:
    worst = [i for i in judged if i.state is status and status is not Level.OK]
    detail = "; ".join(f"{i.slo} {format_value(i)} ({scope(i)})" for i in worst[:5])
    if not detail:
        detail = f"all indicators within the baseline over {format_duration(window)}"
    return f"CBMON {status.name} - {detail}"


def scope(indicator: Indicator) -> str:
    return "all" if indicator.event_type == OVERALL else indicator.event_type


def format_value(indicator: Indicator) -> str:
    value = indicator.value
    if indicator.slo in ("success_rate", "slow_share"):
        return present.percent(value)
    if indicator.slo in ("avg_latency", "p95_latency"):
        return present.millis(value, digits=1)
    return present.count(value)


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
                "state": i.state.label,
                "events": i.events,
            }
            for i in result.indicators
        ],
    }
    return json.dumps(data, indent=2)


def to_table(result: CheckResult) -> str:
    rows = [
        (
            i.slo,
            scope(i),
            format_value(i),
            i.state.label if i.slo in ALERT_NAMES else present.MISSING,
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
