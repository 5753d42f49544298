"""Reading a report's figures from the database: every aggregate is computed there.

All statements run in one read-only REPEATABLE READ transaction, so the log, the error table
and the queue are read as of one moment and ``now()`` is the same in all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.rows import dict_row

from cbmon.config import Config
from cbmon.db import catalog, sqlfiles
from cbmon.db.connect import first_line, local_settings
from cbmon.domain import Features, Figures, Level
from cbmon.durations import format_duration
from cbmon.errors import ConfigError, DatabaseError
from cbmon.ingest import lifecycle
from cbmon.ingest.poller import lifecycle_features
from cbmon.report.model import (
    Bucket,
    Latency,
    Lifecycle,
    Period,
    Previous,
    Queue,
    Report,
    Row,
    TopError,
)
from cbmon.report.period import PeriodRequest, check_step, default_step, previous, resolve
from cbmon.report.progress import Progress
from cbmon.slo import budget
from cbmon.slo.judge import Indicator, callback_indicators, judge
from cbmon.slo.objectives import DEAD_LETTERS

DbRow = dict[str, Any]
# The start of the step a row falls in; {created_at} read as UTC (the session's zone).
_BUCKET_START = sql.SQL(
    "to_timestamp(floor(extract(epoch FROM {created_at}) / %(step)s::float8) * %(step)s::float8)"
)


@dataclass(frozen=True)
class ReportRequest:
    period: PeriodRequest = field(default_factory=PeriodRequest)
    event_types: tuple[str, ...] | None = None
    # seconds per bucket of the series, "auto" (chosen from the period's length) or None
    by: float | Literal["auto"] | None = None
    top: int = 10
    compare: bool = False  # also the period of the same length just before


def _name(schema: str, table: str) -> str:
    return f"{schema}.{table}"


class _Source:
    """The configured tables as quoted identifiers, and the statements built on them."""

    def __init__(self, config: Config):
        tables = config.tables
        self.logs_name = _name(tables.logs.table_schema, tables.logs.table)
        self.errors_name = _name(tables.errors.table_schema, tables.errors.table)
        self.queue_name = _name(tables.queue.table_schema, tables.queue.table)
        logs, errors, queue = tables.logs, tables.errors, tables.queue
        self.logs = {
            "logs": sql.Identifier(logs.table_schema, logs.table),
            "event_type": sql.Identifier(logs.event_type),
            "status": sql.Identifier(logs.status),
            "duration": sql.SQL("{}::float8").format(sql.Identifier(logs.execution_time)),
            "created_at": sql.Identifier(logs.created_at),
        }
        self.errors = {
            "errors": sql.Identifier(errors.table_schema, errors.table),
            "event_type": sql.Identifier(errors.event_type),
            "error_message": sql.Identifier(errors.error_message),
            "created_at": sql.Identifier(errors.created_at),
        }
        self.queue = {
            "queue": sql.Identifier(queue.table_schema, queue.table),
            "created_at": sql.Identifier(queue.created_at),
            "processed_at": sql.Identifier(queue.processed_at),
        }
        self.seen = {
            "logs": self.logs["logs"],
            "logs_event_type": self.logs["event_type"],
            "errors": self.errors["errors"],
            "errors_event_type": self.errors["event_type"],
        }

    def read_duration_type(self, conn: psycopg.Connection[Any], config: Config) -> None:
        """Read execution_time the way its type allows (a huge numeric must not fail)."""
        column = config.tables.logs.execution_time
        table = catalog.regclass_text(self.logs["logs"], conn)
        with conn.cursor() as cur:
            found = catalog.column_type(cur, table, column)
        self.logs["duration"] = catalog.as_float8(sql.Identifier(column), found)

    def statement(self, name: str, identifiers: Mapping[str, sql.Composable]) -> sql.Composed:
        # A series groups rows by the start of their step (attempts.sql, errors_series.sql).
        dated = "created_at" in identifiers
        starts = {"bucket_start": _BUCKET_START.format(**identifiers)} if dated else {}
        if name in _ATTEMPTS:  # the summary and the series differ only in the time bucket
            parts = {key: part.format(**starts) for key, part in _ATTEMPTS[name].items()}
            return sqlfiles.template("report/attempts.sql").format(**identifiers, **parts)
        return sqlfiles.template(f"report/{name}.sql").format(**identifiers, **starts)


def callbacks_statement(config: Config, found: Features, name: str) -> sql.Composed:
    """The callbacks' figures over the period (``name``: "summary" or "series"), from serve's
    own lifecycle frame and aggregates (:mod:`cbmon.ingest.lifecycle`)."""
    logs = config.tables.logs
    assert logs.queue_id is not None
    assert logs.attempt is not None
    table = sql.Identifier(logs.table_schema, logs.table)
    created_at, event_type = sql.Identifier(logs.created_at), sql.Identifier(logs.event_type)
    # A row naming neither its callback nor its attempt counts for no callback figure: left
    # out before the frame's probes, so a log without them costs one scan, not a probe a row.
    where = sql.SQL(
        "{created_at} >= %(from)s AND {created_at} < %(to)s AND (%(event_types)s::text[] IS NULL "
        "OR COALESCE(NULLIF({event_type}::text, ''), 'unknown') = ANY (%(event_types)s::text[])) "
        "AND ({queue_id} IS NOT NULL OR {attempt} IS NOT NULL)"
    ).format(
        created_at=created_at,
        event_type=event_type,
        queue_id=sql.Identifier(logs.queue_id),
        attempt=sql.Identifier(logs.attempt),
    )
    frame = lifecycle.Frame(config, table, logs.id, found, len(logs.success_statuses))
    aggregates = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(expression, sql.Identifier(key))
        for key, expression in lifecycle.aggregates(config, found).items()
    )
    starts = {"bucket_start": _BUCKET_START.format(created_at=created_at)}
    parts: dict[str, sql.Composable] = {
        key: part.format(**starts) for key, part in _ATTEMPTS[name].items()
    }
    # Grouped by the event type as the report names it: the log's own column is there too.
    parts["grouping"] = _CALLBACKS_GROUPING[name]
    statuses = len(logs.success_statuses)
    first_failed = sql.SQL("({attempt} = 1 AND {qid} IS NOT NULL AND NOT coalesce({ok}, false))")
    return sqlfiles.template("report/callbacks.sql").format(
        **parts,
        aggregates=aggregates,
        queue_id=sql.Identifier(logs.queue_id),
        attempt=sql.Identifier(logs.attempt),
        event_type=event_type,
        logs=table,
        first_failed=first_failed.format(
            attempt=sql.Identifier("batch", logs.attempt),
            qid=sql.Identifier("batch", logs.queue_id),
            ok=lifecycle.success("batch", logs.status, statuses),
        ),
        later_queue_id=sql.Identifier("later", logs.queue_id),
        batch_queue_id=sql.Identifier("batch", logs.queue_id),
        later_id=sql.Identifier("later", logs.id),
        batch_id=sql.Identifier("batch", logs.id),
        later_succeeded=lifecycle.success("later", logs.status, statuses),
        frame=frame.rows(where, None),
    )


def callbacks_params(config: Config) -> dict[str, Any]:
    """The frame's own parameters: the success statuses one by one, the retries allowed."""
    logs = config.tables.logs
    statuses = {f"success_{i}": status for i, status in enumerate(logs.success_statuses)}
    _, retries = lifecycle.max_retries(config, sql.Identifier(logs.event_type))
    return {**statuses, **retries}


_CALLBACKS_GROUPING = {
    "summary": sql.SQL("(cbmon_event_type), ()"),
    "series": sql.SQL("(bucket, cbmon_event_type), (bucket)"),
}
_ATTEMPTS: dict[str, dict[str, sql.SQL]] = {
    "summary": {
        "bucket_column": sql.SQL(""),
        "bucket": sql.SQL(""),
        "grouping": sql.SQL("(event_type), ()"),
    },
    "series": {
        "bucket_column": sql.SQL("bucket,"),
        "bucket": sql.SQL("{bucket_start} AS bucket,"),
        "grouping": sql.SQL("(bucket, event_type), (bucket)"),
    },
}


def _query(
    conn: psycopg.Connection[Any],
    statement: sql.Composed,
    params: Mapping[str, Any],
    what: str,
    timeout: float,
) -> list[DbRow]:
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    except psycopg.errors.QueryCanceled:
        raise DatabaseError(
            f"{what}: stopped by the statement timeout ({format_duration(timeout)}); "
            "raise it with --statement-timeout"
        ) from None
    except psycopg.Error as exc:
        raise DatabaseError(f"{what}: {first_line(exc)}") from None


def _utc(value: datetime) -> datetime:
    """A timestamp column without a zone holds UTC here: the session's zone is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _figures(row: DbRow, errors: int) -> Figures:
    return Figures(
        attempts=int(row["calls"]),
        failures=int(row["failures"]),
        observed=int(row["observed"]),
        sum_seconds=float(row["sum_ms"] or 0.0) / 1000.0,
        slow=int(row["slow"]),
        errors=errors,
    )


def _latency(row: DbRow) -> Latency:
    return Latency(
        p50_ms=row["p50_ms"], p95_ms=row["p95_ms"], p99_ms=row["p99_ms"], max_ms=row["max_ms"]
    )


def _key(row: DbRow) -> str | None:
    return None if row["is_overall"] else str(row["event_type"])


def _judged(
    event_type: str, figures: Figures, config: Config, p95: float | None = None
) -> tuple[Indicator, ...]:
    """Judged as serve judges them, but for one thing: a period in which no callback finished
    has no dead-letter verdict (serve's window is always now; a report's may be long past, and
    an empty one stays unknown, as its attempts' verdicts do)."""
    found = callback_indicators(event_type, figures, config.baseline, {event_type: p95})
    if figures.callbacks.finished:
        return tuple(found)
    return tuple(replace(i, state=Level.UNKNOWN) if i.slo == DEAD_LETTERS.slo else i for i in found)


def _lifecycle(row: DbRow | None, figures: Figures, key: str | None, config: Config) -> Lifecycle:
    """The callbacks' figures of one row, judged (with the exact end-to-end p95)."""
    event_type = key or ""
    if row is None:
        return Lifecycle(indicators=_judged(event_type, figures, config))
    end = Latency(row["end_p50_ms"], row["end_p95_ms"], row["end_p99_ms"], row["end_max_ms"])
    p95 = None if end.p95_ms is None else float(end.p95_ms) / 1000.0
    indicators = _judged(event_type, figures, config, p95)
    return Lifecycle(
        callbacks=int(row["cb_callbacks"]),
        first_attempts=int(row["cb_first_attempts"]),
        first_try=int(row["cb_first_try"]),
        first_failed=int(row["cb_first_failed"]),
        recovered=int(row["cb_recovered"]),
        wait=Latency(row["wait_p50_ms"], row["wait_p95_ms"], row["wait_p99_ms"]),
        end=end,
        indicators=indicators,
    )


def _rows(
    summary: Sequence[DbRow],
    errors: Sequence[DbRow],
    config: Config,
    callbacks: Sequence[DbRow] | None = None,
) -> tuple[Row, tuple[Row, ...]]:
    """Join attempts, errors and callbacks (None: not told apart) by event type; an event type
    with only errors has 0 calls."""
    by_key: dict[str | None, DbRow] = {_key(row): row for row in summary}
    error_counts = {_key(row): int(row["errors"]) for row in errors}
    outcomes = {_key(row): row for row in callbacks or ()}
    baseline = config.baseline

    def make(key: str | None) -> Row:
        counted = by_key.get(key)
        found = error_counts.get(key, 0)
        if counted is None:
            figures, latency = Figures(errors=found), Latency()
        else:
            figures, latency = _figures(counted, found), _latency(counted)
        if callbacks is None:
            return Row(key, figures, latency, judge(figures, baseline))
        told = outcomes.get(key)
        if told is not None:
            figures = replace(figures, callbacks=lifecycle.callbacks(told))
        own = _lifecycle(told, figures, key, config)
        return Row(key, figures, latency, judge(figures, baseline), own)

    keys = sorted({key for key in (*by_key, *error_counts) if key is not None})
    return make(None), tuple(make(key) for key in keys)


def _series(
    summary: Sequence[DbRow],
    errors: Sequence[DbRow],
    config: Config,
    callbacks: Sequence[DbRow] | None = None,
) -> tuple[Bucket, ...]:
    """Buckets that hold attempts or errors, oldest first; renderers fill the empty ones."""
    grouped: dict[datetime, tuple[list[DbRow], list[DbRow], list[DbRow]]] = {}
    for index, rows in enumerate((summary, errors, callbacks or ())):
        for row in rows:
            grouped.setdefault(row["bucket"], ([], [], []))[index].append(row)
    buckets = []
    for start in sorted(grouped):
        attempts, recorded, told = grouped[start]
        overall, per_type = _rows(attempts, recorded, config, None if callbacks is None else told)
        buckets.append(Bucket(_utc(start), overall, per_type))
    return tuple(buckets)


class _Reader:
    def __init__(self, conn: psycopg.Connection[Any], config: Config, timeout: float):
        self.conn = conn
        self.config = config
        self.timeout = timeout
        self.source = _Source(config)
        self.found = Features()  # what the tables tell of callbacks: read_report finds it

    def callbacks(self, params: Mapping[str, Any], name: str) -> list[DbRow] | None:
        """The callbacks' figures, None when the tables do not tell callbacks apart."""
        if not self.found.outcomes:
            return None
        statement = callbacks_statement(self.config, self.found, name)
        params = {**params, **callbacks_params(self.config)}
        return _query(
            self.conn, statement, params, f"reading {self.source.logs_name}", self.timeout
        )

    def run(
        self,
        name: str,
        identifiers: Mapping[str, sql.Composable],
        params: Mapping[str, Any],
        what: str,
    ) -> list[DbRow]:
        statement = self.source.statement(name, identifiers)
        return _query(self.conn, statement, params, what, self.timeout)


def _params(
    config: Config, start: datetime, end: datetime, request: ReportRequest
) -> dict[str, Any]:
    logs = config.tables.logs
    factor = 1.0 if logs.execution_time_unit == "ms" else 1000.0
    return {
        "from": start,
        "to": end,
        "event_types": list(request.event_types) if request.event_types else None,
        "success": list(logs.success_statuses),
        # max_execution_time is in seconds; the column is in its own unit.
        "max_value": config.file.max_execution_time * 1000.0 / factor,
        "factor": factor,
        "slow_ms": round(config.thresholds.slow_callback * 1000.0, 6),
        "limit": request.top,
    }


@dataclass(frozen=True)
class _Raw:
    """The rows each statement returned, before they become report values."""

    summary: list[DbRow]
    errors: list[DbRow]
    callbacks: list[DbRow] | None
    top: list[DbRow]
    queue: DbRow
    series: tuple[list[DbRow], list[DbRow], list[DbRow] | None] | None


def _read(reader: _Reader, params: dict[str, Any], by: float | None, progress: Progress) -> _Raw:
    source = reader.source
    logs_what = f"reading {source.logs_name}"
    errors_what = f"reading {source.errors_name}"
    summary, errors, callbacks = _summary(reader, params, progress)
    with progress.step(f"counting {source.errors_name}"):
        top = reader.run("top_errors", source.errors, params, errors_what)
    with progress.step(f"reading {source.queue_name}"):
        (queue,) = reader.run("queue", source.queue, {}, f"reading {source.queue_name}")
    series = None
    if by is not None:
        series_params = {**params, "step": by}
        with progress.step(f"aggregating {source.logs_name} by {format_duration(by)}"):
            series = (
                reader.run("series", source.logs, series_params, logs_what),
                reader.run("errors_series", source.errors, series_params, errors_what),
                reader.callbacks(series_params, "series"),
            )
    return _Raw(summary, errors, callbacks, top, queue, series)


def _summary(
    reader: _Reader, params: dict[str, Any], progress: Progress
) -> tuple[list[DbRow], list[DbRow], list[DbRow] | None]:
    """Attempts, errors and callbacks per event type and overall over ``params``' period."""
    source = reader.source
    with progress.step(f"aggregating {source.logs_name}"):
        summary = reader.run("summary", source.logs, params, f"reading {source.logs_name}")
    with progress.step(f"counting {source.errors_name}"):
        errors = reader.run("errors", source.errors, params, f"reading {source.errors_name}")
    callbacks = None
    if reader.found.outcomes:
        with progress.step(f"following callbacks in {source.logs_name}"):
            callbacks = reader.callbacks(params, "summary")
    return summary, errors, callbacks


def _previous(
    reader: _Reader,
    config: Config,
    request: ReportRequest,
    period: tuple[datetime, datetime],
    progress: Progress,
) -> Previous:
    start, end = previous(*period)
    params = _params(config, start, end, request)
    summary, errors, callbacks = _summary(reader, params, progress)
    overall, per_type = _rows(summary, errors, config, callbacks)
    return Previous(Period(start, end, request.event_types), overall, per_type)


@contextmanager
def snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """One read-only REPEATABLE READ transaction: every statement in it sees one moment."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction(), conn.cursor() as cur:
        local_settings(cur)  # behind a pooler in transaction mode
        yield


def read_report(
    conn: psycopg.Connection[Any],
    config: Config,
    request: ReportRequest,
    *,
    progress: Progress,
    timeout: float,
) -> Report:
    """Read the report inside the transaction the caller holds open on ``conn``."""
    reader = _Reader(conn, config, timeout)
    try:
        # Zoneless timestamps meet the period's bounds in the session's zone: read them as UTC.
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        reader.source.read_duration_type(conn, config)
        with conn.cursor() as cur:
            reader.found = lifecycle_features(cur, conn, config)
        now_row = conn.execute("SELECT now()").fetchone()
        now: datetime = now_row[0] if now_row is not None else datetime.now(UTC)
        start, end = resolve(request.period, now)
        by = default_step(start, end) if request.by == "auto" else request.by
        if by is not None:
            check_step(start, end, by)
        raw = _read(reader, _params(config, start, end, request), by, progress)
        overall, per_type = _rows(raw.summary, raw.errors, config, raw.callbacks)
        _check_event_types(reader, request.event_types, per_type)
        before = (
            _previous(reader, config, request, (start, end), progress) if request.compare else None
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"{reader.source.logs_name}: {first_line(exc)}") from None
    baseline = config.baseline
    return Report(
        period=Period(start, end, request.event_types, by),
        overall=overall,
        event_types=per_type,
        queue=Queue.judged(
            int(raw.queue["backlog"]),
            float(raw.queue["oldest_age_seconds"]),
            baseline,
            current=end >= now,  # a report ending before now does not judge today's queue
        ),
        top_errors=tuple(
            TopError(
                # openGauss' default A mode stores '' as NULL (COALESCE to '' gives NULL too):
                # an empty message is empty, never "None"
                "" if row["message"] is None else str(row["message"]),
                int(row["occurrences"]),
                _utc(row["last_seen"]),
                int(row["event_types"]),
            )
            for row in raw.top
        ),
        series=None if raw.series is None else _series(*raw.series[:2], config, raw.series[2]),
        baseline=baseline,
        budgets=tuple(
            budget.from_figures(
                baseline,
                {row.event_type or "": row.figures for row in per_type},
                overall.figures,
            )
        ),
        generated_at=_utc(now),
        previous=before,
        lifecycle=reader.found.outcomes,
        lifecycle_notes=lifecycle.report_notes(reader.found),
    )


def _check_event_types(
    reader: _Reader, wanted: tuple[str, ...] | None, found: tuple[Row, ...]
) -> None:
    """A filter naming an event type never logged is a typo, not an empty report.

    Only names absent from the period are looked up, so a correct filter costs nothing more.
    """
    present = {row.event_type for row in found}
    for event_type in wanted or ():
        if event_type in present:
            continue
        rows = reader.run(
            "event_type_seen",
            reader.source.seen,
            {"event_type": event_type},
            f"looking up event type {event_type!r}",
        )
        if not rows[0]["seen"]:
            raise ConfigError(
                f"--event-type: {event_type!r} never appears in {reader.source.logs_name} "
                f"or {reader.source.errors_name}"
            )
