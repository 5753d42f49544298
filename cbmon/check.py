"""``cbmon check``: one evaluation of the baseline straight from the database, for cron jobs
and monitoring agents. Exit codes follow the Nagios plugin convention.

The figures come from the report's own query (:func:`cbmon.report.query.read_report`) over
the window ending now, so the p95 is exact (``percentile_cont``), not a histogram estimate.
The callback mechanism is probed once, as serve probes it (:mod:`cbmon.ingest.mechanism`), and
judged by the same rules (:mod:`cbmon.slo.mechanism`).
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
from cbmon.config import Config
from cbmon.db.connect import Deadline, connect, first_line
from cbmon.domain import Level, Mechanism
from cbmon.durations import format_duration
from cbmon.errors import CbmonError, DatabaseError
from cbmon.ingest.mechanism import MechanismProbe, Settings, source_words
from cbmon.ingest.poller import Poller
from cbmon.report.model import Report
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest, read_report, snapshot
from cbmon.slo import budget, mechanism
from cbmon.slo.budget import Budget
from cbmon.slo.judge import ALERT_NAMES, OVERALL, Indicator, evaluate
from cbmon.slo.objectives import DEFAULT, MECHANISM, Baseline, Target

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
    baseline: Baseline = DEFAULT
    # With --budget: the error budgets judged instead of the window's indicators.
    budgets: tuple[Budget, ...] = ()
    # The mechanism's probe: what its indicators name, by slo, and the sources not read
    # (absent or unreadable), each said once in serve's words.
    named: dict[str, str] = dataclasses.field(default_factory=dict)
    sources: tuple[str, ...] = ()

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
    report, ahead, probed = _read_with_ahead(config, window, timeout, probe=True)
    result = judge_report(report, window, ahead)
    if probed is None:
        return result
    state, failed = probed
    missed = config.file.mechanism.missed_runs
    found = [] if state is None else mechanism.indicators(state, report.baseline, missed)
    said = [failed] if failed else []
    if state is not None:
        said += [source_words(s) for s in state.sources if s.state != "ok"]
        if state.buckets is not None:
            said.append(ONE_PROBE)
    judged = verdict([*result.indicators, *found], window, report.baseline, ahead)
    named = {} if state is None else mechanism.named(state, missed)
    return dataclasses.replace(judged, named=named, sources=tuple(said))


# Serve counts the limiter's drops between its probes; one probe sees only the totals so far.
ONE_PROBE = (
    "mechanism: rate_limited is not judged by one probe: the limiter counts its drops, not "
    "when they happened (cbmon serve and check --from-url judge the window)"
)


def probe_once(conn: psycopg.Connection[Any], config: Config) -> Mechanism:
    """One probe of the mechanism, as serve's first. The drops within the window cannot be
    told from one probe, so they are left unknown, not 0."""
    probe = MechanismProbe(Settings.of(config), time.monotonic, log_sources=False)
    state = probe.probe(conn)
    return dataclasses.replace(state, dropped_in_window=None)


def _read(config: Config, since: float, timeout: float) -> Report:
    return _read_with_ahead(config, since, timeout)[0]


def _read_with_ahead(
    config: Config, since: float, timeout: float, *, probe: bool = False
) -> tuple[Report, dict[str, int], tuple[Mechanism | None, str] | None]:
    """The report of the last ``since`` seconds, and the rows dated ahead, within
    ``timeout`` in all; with ``probe`` and the mechanism enabled, its probe after the report
    (or why it failed)."""
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
    # The span ends now; rows up to slo.clock_skew ahead of the clock count, as in serve.
    period = PeriodRequest(since=since, ahead=config.file.slo.clock_skew)
    deadline = Deadline(conn, remaining)
    probed: tuple[Mechanism | None, str] | None = None
    try:
        with conn, deadline:
            with snapshot(conn), conn.cursor() as cur:
                request = ReportRequest(period=period, top=0)
                silent = Progress.silent(io.StringIO())
                report = read_report(conn, config, request, progress=silent, timeout=remaining)
                ahead = Poller(config).rows_ahead(cur)
            if probe and config.file.mechanism.enabled:
                # After the snapshot: each source in a statement of its own, as in serve.
                try:
                    probed = (probe_once(conn, config), "")
                except psycopg.Error as exc:
                    probed = (None, f"mechanism: probe failed: {first_line(exc)}")
    except psycopg.Error as exc:
        raise CheckError(f"query failed: {first_line(exc)}") from None
    except DatabaseError as exc:
        hint = f" (--timeout {format_duration(timeout)})" if deadline.expired.is_set() else ""
        raise CheckError(f"{exc}{hint}") from None
    return report, ahead, probed


def run_budget_check(config: Config, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Judge every objective's error budget over its period, exactly, from the database."""
    baseline = config.baseline
    periods = sorted({t.period for t in _targets(baseline)})
    if not periods:
        raise CheckError("no objective is configured (objectives: in the configuration)")
    started = time.monotonic()
    found: list[Budget] = []
    for period in periods:
        remaining = max(0.1, timeout - (time.monotonic() - started))
        report = _read(config, period, remaining)
        per_type = {row.event_type or OVERALL: row.figures for row in report.event_types}
        found += [
            b
            for b in budget.from_figures(baseline, per_type, report.overall.figures)
            if b.target.period == period
        ]
    return budget_verdict(found, baseline)


def budget_verdict(found: Iterable[Budget], baseline: Baseline) -> CheckResult:
    """The check's answer on error budgets, the database's or a running serve's."""
    budgets = tuple(found)
    states = [budget.judge_remaining(b.remaining) for b in budgets]
    judged = [s for s in states if s is not Level.UNKNOWN]
    status = max(judged, default=Level.OK)
    worst = [b for b, s in zip(budgets, states, strict=True) if s is status]
    if status is Level.OK or not worst:
        detail = "every error budget has more than "
        detail += f"{present.percent(budget.BUDGET_WARNING, 0)} left"
    else:
        detail = "; ".join(_budget_words(b) for b in worst[:5])
    period = max((b.target.period for b in budgets), default=0.0)
    message = f"CBMON {status.name} - {detail}"
    return CheckResult(status, period, [], message, {}, baseline, budgets)


def _budget_words(item: Budget) -> str:
    left = "-" if item.remaining is None else present.percent(item.remaining, 1)
    scope_ = "all" if item.event_type == OVERALL else item.event_type
    return f"{item.slo} budget {left} left over {present.period(item.target.period)} ({scope_})"


def _targets(baseline: Baseline) -> list[Target]:
    found = list(baseline.targets.values())
    found += [t for own in baseline.event_targets.values() for t in own.values()]
    return found


def judge_report(report: Report, window: float, ahead: dict[str, int]) -> CheckResult:
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
    # Callbacks, not only attempts, where the tables tell them apart: queued to delivered
    # exact too.
    end_p95 = {
        (row.event_type or OVERALL): (
            None
            if row.lifecycle is None or row.lifecycle.end.p95_ms is None
            else float(row.lifecycle.end.p95_ms) / 1000
        )
        for row in rows
    }
    assert report.queue is not None
    indicators = evaluate(
        report.overall.figures,
        per_type,
        report.queue.backlog,
        report.baseline,
        p95=p95,
        callbacks=report.lifecycle,
        end_p95=end_p95,
    )
    return verdict(indicators, window, report.baseline, ahead)


def verdict(
    indicators: list[Indicator],
    window: float,
    baseline: Baseline,
    ahead: dict[str, int] | None = None,
) -> CheckResult:
    """The check's answer from judged indicators, the database's or a running serve's."""
    judged = [i for i in indicators if i.slo in ALERT_NAMES and i.state is not Level.UNKNOWN]
    status = max((i.state for i in judged), default=Level.OK)
    calls = next(
        (i.events for i in indicators if i.slo == "success_rate" and i.event_type == OVERALL), 0
    )
    message = _message(status, judged, window, baseline, calls)
    return CheckResult(status, window, indicators, message, ahead or {}, baseline)


def _message(
    status: Level,
    judged: list[Indicator],
    window: float,
    baseline: Baseline,
    calls: int,
) -> str:
    min_events = baseline.min_events
    worst = [i for i in judged if i.state is status and status is not Level.OK]
    detail = "; ".join(f"{i.slo} {format_value(i, baseline)} ({scope(i)})" for i in worst[:5])
    if not detail:
        detail = f"all judged indicators within the baseline over {format_duration(window)}"
        if calls < min_events:
            detail += (
                f"; success rate and latency not judged ({calls} calls, fewer than {min_events})"
            )
    return f"CBMON {status.name} - {detail}"


def scope(indicator: Indicator) -> str:
    return "all" if indicator.event_type == OVERALL else indicator.event_type


def format_value(indicator: Indicator, baseline: Baseline) -> str:
    """The value in its unit, latencies to a tenth of a millisecond."""
    digits = 1 if indicator.objective.unit == "seconds" else None
    return present.slo_value(indicator.slo, indicator.value, baseline.limit(indicator.slo), digits)


def _state(indicator: Indicator) -> str | None:
    """The verdict, or None for what the baseline does not judge (p95, slow share)."""
    return indicator.state.label if indicator.slo in ALERT_NAMES else None


def _budget_json(item: Budget) -> dict[str, Any]:
    return {
        "slo": item.slo,
        "event_type": item.event_type or None,
        "target": item.target.target,
        "period": present.period(item.target.period),
        "events": item.events,
        "bad": item.bad,
        "remaining": item.remaining,
        "state": budget.judge_remaining(item.remaining).label,
    }


def to_json(result: CheckResult) -> str:
    if result.budgets:
        return json.dumps(
            {
                "status": result.status.label,
                "exit_code": result.exit_code,
                "message": result.message,
                "budgets": [_budget_json(item) for item in result.budgets],
            },
            indent=2,
        )
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
    if result.named or result.sources:
        data["mechanism"] = {"named": result.named, "said": list(result.sources)}
    return json.dumps(data, indent=2)


def unknown_json(message: str) -> str:
    """What ``--format json`` prints when the check could not judge at all."""
    return json.dumps({"status": "unknown", "exit_code": 3, "message": message}, indent=2)


def _budget_table(result: CheckResult) -> str:
    rows = [
        (
            item.slo,
            "all" if item.event_type == OVERALL else item.event_type,
            f"{present.percent(item.target.target)} over {present.period(item.target.period)}",
            present.MISSING if item.remaining is None else present.percent(item.remaining, 1),
            budget.judge_remaining(item.remaining).label,
        )
        for item in result.budgets
    ]
    headers = ("BUDGET", "EVENT TYPE", "OBJECTIVE", "LEFT", "STATE")
    return "\n".join([result.message, "", *present.table(headers, rows, text_columns=(0, 1, 2, 4))])


def to_table(result: CheckResult) -> str:
    if result.budgets:
        return _budget_table(result)
    rows = [
        (
            i.slo,
            scope(i),
            format_value(i, result.baseline),
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
    said = [f"{slo}: {words}" for slo, words in result.named.items()] + list(result.sources)
    return "\n".join(lines + (["", *said] if said else []))


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


# Each unit as Nagios takes it: the factor, the unit of measure, and the value's range.
_UOM = {"ratio": (100.0, "%", "0;100"), "seconds": (1000.0, "ms", "0;"), "items": (1.0, "", "0;")}


def _perf(indicator: Indicator, baseline: Baseline) -> str:
    """One performance datum; ``U`` when the value could not be determined."""
    objective = indicator.objective
    factor, uom, bounds = _UOM[objective.unit]
    value = indicator.value
    scaled = None if value is None else value * factor
    limits = baseline.limit(indicator.slo)
    ranges = ";"
    if limits is not None and objective.judged:
        normal = _number(limits.normal * factor)
        alert = "" if limits.alert is None else _number(limits.alert * factor)
        # Higher is better: alerts at or below normal, below alert; else at or above, above.
        higher = objective.better == "higher"
        ranges = f"@~:{normal};{alert}:" if higher else f"@{normal}:;{alert}"
    shown = "U" if scaled is None else _number(scaled) + uom
    label = _label(indicator.slo, indicator.event_type)
    return f"{label}={shown};{ranges};{bounds}".rstrip(";")


_MECHANISM = tuple(objective.slo for objective in MECHANISM)


def _perfdata(indicators: Iterable[Indicator], baseline: Baseline) -> str:
    wanted = (
        *("success_rate", "avg_latency", "p95_latency", "backlog"),
        *("callback_success_rate", "dead_letters", "end_to_end_p95"),
        *_MECHANISM,
    )
    return " ".join(_perf(i, baseline) for i in indicators if i.slo in wanted)


def _budget_perf(item: Budget) -> str:
    """Budget left, in percent: a warning below the warning share, critical at or below 0."""
    value = "U" if item.remaining is None else _number(item.remaining * 100) + "%"
    warn = _number(budget.BUDGET_WARNING * 100)
    return f"{_label('budget_' + item.slo, item.event_type)}={value};{warn}:;@~:0"


def to_nagios(result: CheckResult) -> str:
    """The Nagios plugin output: the status line and the overall performance data, then a
    line per event type, the last one followed by the event types' performance data."""
    if result.budgets:
        perf = " ".join(_budget_perf(item) for item in result.budgets)
        return f"{_safe(result.message)} | {perf}"
    overall = [i for i in result.indicators if i.event_type == OVERALL]
    calls = next((i.events for i in overall if i.slo == "success_rate"), 0)
    lines = [f"{_safe(result.message)} | {_perfdata(overall, result.baseline)} 'calls'={calls};;;0"]
    # The mechanism: each indicator a line, with what it names; the sources not read.
    for indicator in overall:
        if indicator.slo in _MECHANISM:
            words = result.named.get(indicator.slo)
            lines.append(_safe(_words(indicator, result) + (f" ({words})" if words else "")))
    lines += [_safe(words) for words in result.sources]
    typed = [i for i in result.indicators if i.event_type != OVERALL]
    names = sorted({i.event_type for i in typed})
    for name in names:
        mine = {i.slo: i for i in typed if i.event_type == name}
        lines.append(_safe(f"{name}: " + ", ".join(_words(mine[slo], result) for slo in mine)))
    if names:
        lines[-1] += f" | {_perfdata(typed, result.baseline)}"
    return "\n".join(lines)


def _words(indicator: Indicator, result: CheckResult) -> str:
    state = _state(indicator)
    judged = f" {state}" if state else ""
    return f"{indicator.slo} {format_value(indicator, result.baseline)}{judged}"


def _safe(text: str) -> str:
    """Text before the performance data must not hold its separator."""
    return text.replace("|", "/")
