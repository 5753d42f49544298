"""One poll: what is new in the attempt log and the error table, and the queue as it stands.

Everything a poll reads comes from one REPEATABLE READ, READ ONLY transaction, so the log,
the errors and the queue describe the same moment. Aggregation happens in SQL over the new
rows only; the poller returns per-event-type deltas and never touches metrics itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from cbmon.config import Config, ErrorsTable, LogsTable, QueueTable, Reader
from cbmon.db import catalog, sqlfiles
from cbmon.sidecar.reader import ReadResult, Source, TailReader, running_transactions

# Histogram bucket bounds in seconds. 0.15, 0.2 and 0.5 are the baseline's and the design
# limit's thresholds, so Prometheus can tell exactly how many callbacks crossed them.
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackDelta:
    """Attempts read in one poll for one raw event type."""

    attempts: int
    failures: int
    observed: int  # attempts with a valid execution_time
    sum_seconds: float
    buckets: tuple[int, ...]  # cumulative counts, one per bound of BUCKETS
    invalid: int  # execution_time present but negative, NaN, infinite or absurd
    slow: int  # valid execution_time above thresholds.slow_callback

    def __add__(self, other: CallbackDelta) -> CallbackDelta:
        return CallbackDelta(
            attempts=self.attempts + other.attempts,
            failures=self.failures + other.failures,
            observed=self.observed + other.observed,
            sum_seconds=self.sum_seconds + other.sum_seconds,
            buckets=tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            invalid=self.invalid + other.invalid,
            slow=self.slow + other.slow,
        )


# (slot end in the database's unix seconds, raw event type, callbacks, errors)
HistoryRow = tuple[float, str | None, CallbackDelta | None, int]


@dataclasses.dataclass(frozen=True)
class QueueState:
    backlog: int
    oldest_created: float | None  # unix seconds of the oldest waiting row, by the db's clock
    db_now: float  # the database's clock at the poll, unix seconds


@dataclasses.dataclass(frozen=True)
class PollResult:
    callbacks: dict[str | None, CallbackDelta]
    errors: dict[str | None, int]
    queue: QueueState
    lag_rows: dict[str, int]
    open_gaps: dict[str, int]
    # On the first poll only: what the catalogs say about the tables' ids (see cbmon.db.catalog).
    assumptions: tuple[catalog.Assumption, ...] = ()
    # On the first poll only, with a backfill: rows dated ahead of the database's clock by more
    # than slo.clock_skew, left out of the history, per table.
    ahead_rows: dict[str, int] = dataclasses.field(default_factory=dict)
    # On the first poll only, when asked for: rows already there, per time slot, as
    # ``(slot end in the database's unix seconds, raw event type, delta, errors)``.
    history: tuple[HistoryRow, ...] = ()

    @property
    def caught_up(self) -> bool:
        return not any(self.lag_rows.values())


def _table(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _logs_source(logs: LogsTable, config: Config, duration_type: str | None = None) -> Source:
    column = sql.Identifier
    # Durations are compared in the column's own unit so bucket edges stay exact (150 ms).
    scale = 1000.0 if logs.execution_time_unit == "ms" else 1.0
    x = catalog.as_float8(column(logs.execution_time), duration_type)
    # A valid duration lies between 0 and max_time; NaN sorts above every number, so NaN,
    # the infinities and negatives all fall outside. Expressions are written out in each
    # aggregate: PostgreSQL evaluates such simple checks faster than a shared subquery column.
    valid = sql.SQL("{x} BETWEEN 0 AND %(max_time)s").format(x=x)
    statuses = [sql.Placeholder(f"success_{i}") for i in range(len(logs.success_statuses))]
    select: list[sql.Composable] = [
        # A NULL status is a failure. IN with one value plans as "=", cheaper than ANY(array).
        sql.SQL("count(*) - count(CASE WHEN {status}::text IN ({statuses}) THEN 1 END)").format(
            status=column(logs.status), statuses=sql.SQL(", ").join(statuses)
        ),
        sql.SQL("count(CASE WHEN {valid} THEN 1 END)").format(valid=valid),
        sql.SQL("sum(CASE WHEN {valid} THEN {x} END)").format(valid=valid, x=x),
        sql.SQL("count({x})").format(x=x),  # durations present; less the valid: the invalid
        sql.SQL("count(CASE WHEN {x} > %(slow)s AND {x} <= %(max_time)s THEN 1 END)").format(x=x),
    ]
    params: dict[str, Any] = {
        **{f"success_{i}": status for i, status in enumerate(logs.success_statuses)},
        "max_time": config.file.max_execution_time * scale,
        "slow": config.thresholds.slow_callback * scale,
    }
    for index, bound in enumerate(BUCKETS):
        select.append(
            sql.SQL("count(CASE WHEN {x} BETWEEN 0 AND {bound} THEN 1 END)").format(
                x=x, bound=sql.Placeholder(f"le_{index}")
            )
        )
        params[f"le_{index}"] = round(bound * scale, 9)
    return Source(
        name="logs",
        table=_table(logs.table_schema, logs.table),
        id_column=column(logs.id),
        group_by=sql.SQL("{}::text").format(column(logs.event_type)),
        select=select,
        params=params,
    )


def _errors_source(errors: ErrorsTable) -> Source:
    return Source(
        name="errors",
        table=_table(errors.table_schema, errors.table),
        id_column=sql.Identifier(errors.id),
        group_by=sql.SQL("{}::text").format(sql.Identifier(errors.event_type)),
        select=(),
        params={},
    )


def _queue_query(queue: QueueTable) -> sql.Composed:
    return sqlfiles.template("queries/queue_state.sql").format(
        table=_table(queue.table_schema, queue.table),
        created_at=sql.Identifier(queue.created_at),
        processed_at=sql.Identifier(queue.processed_at),
    )


def _delta(row: tuple[Any, ...], scale: float) -> CallbackDelta:
    attempts, failures, observed, total, present, slow, *buckets = row[1:]
    return CallbackDelta(
        attempts=int(attempts),
        failures=int(failures or 0),
        observed=int(observed or 0),
        sum_seconds=float(total or 0.0) / scale,
        buckets=tuple(int(b or 0) for b in buckets),
        invalid=int(present or 0) - int(observed or 0),
        slow=int(slow or 0),
    )


class Poller:
    """Owns the readers' state. ``poll`` is called by one thread only, never concurrently."""

    def __init__(self, config: Config, backfill: float | None = None) -> None:
        """``backfill``: seconds of history to read on the first poll (for the SLO window)."""
        reader: Reader = config.file.reader
        self._config = config
        self._backfill = backfill
        self._skew = config.file.slo.clock_skew
        self._inspected = False
        self._created_at = (
            sql.Identifier(config.tables.logs.created_at),
            sql.Identifier(config.tables.errors.created_at),
        )
        tables = config.tables
        self._scale = 1000.0 if tables.logs.execution_time_unit == "ms" else 1.0
        self.logs = self._reader(_logs_source(tables.logs, config), reader)
        self.errors = self._reader(_errors_source(tables.errors), reader)
        self._queue_query = _queue_query(tables.queue)

    @staticmethod
    def _reader(source: Source, reader: Reader) -> TailReader:
        return TailReader(
            source, batch_size=reader.batch_size, startup_gap_scan=reader.startup_gap_scan
        )

    def poll(self, conn: psycopg.Connection[Any]) -> PollResult:
        """Read one batch of new rows under one snapshot. Raises ``psycopg.Error`` on failure.

        If it raises, the readers keep their previous state, so the next poll reads the same
        rows again: nothing is lost and nothing is counted twice.
        """
        saved = (self.logs.high_water, list(self.logs.gaps))
        saved_errors = (self.errors.high_water, list(self.errors.gaps))
        running = self._running(conn) if self.logs.gaps or self.errors.gaps else None
        conn.autocommit = False
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            with conn.transaction(), conn.cursor() as cur:
                assumptions = () if self._inspected else self._inspect(conn, cur)
                history: tuple[HistoryRow, ...] = ()
                ahead: dict[str, int] = {}
                if self._backfill and self.logs.high_water is None:
                    history = self._history(cur, self._backfill)
                    ahead = self._ahead(cur)
                logs = self.logs.read(cur, running)
                errors = self.errors.read(cur, running)
                queue = self._queue(cur)
        except BaseException as exc:
            self.logs.high_water, self.logs.gaps = saved
            self.errors.high_water, self.errors.gaps = saved_errors
            if isinstance(exc, psycopg.errors.QueryCanceled):
                self.logs.shrink_batch()
                self.errors.shrink_batch()
            raise
        return PollResult(
            callbacks={row[0]: _delta(row, self._scale) for row in logs.rows},
            errors={row[0]: int(row[1]) for row in errors.rows},
            queue=queue,
            lag_rows={"logs": logs.lag_rows, "errors": errors.lag_rows},
            open_gaps={"logs": logs.open_gaps, "errors": errors.open_gaps},
            history=history,
            assumptions=assumptions,
            ahead_rows=ahead,
        )

    def history(
        self, conn: psycopg.Connection[Any], window: float
    ) -> tuple[tuple[HistoryRow, ...], dict[str, int]]:
        """The last ``window`` seconds of the log and error tables, per time slot, at once, and
        how many rows each table has dated too far ahead to be trusted."""
        conn.autocommit = False
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction(), conn.cursor() as cur:
            if not self._inspected:
                self._inspect(conn, cur)
            return self._history(cur, window), self._ahead(cur)

    def _inspect(
        self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]
    ) -> tuple[catalog.Assumption, ...]:
        """Read the catalogs once: the duration column's type and the ids' sequences."""
        tables = self._config.tables
        logs_table = catalog.regclass_text(self.logs.source.table, conn)
        duration = catalog.column_type(cur, logs_table, tables.logs.execution_time)
        self.logs.source = _logs_source(tables.logs, self._config, duration)
        found: list[catalog.Assumption] = []
        for reader, column in ((self.logs, tables.logs.id), (self.errors, tables.errors.id)):
            table = catalog.regclass_text(reader.source.table, conn)
            found += catalog.id_assumptions(cur, reader.source.name, table, column)
        self._inspected = True
        return tuple(found)

    def _ahead(self, cur: psycopg.Cursor[Any]) -> dict[str, int]:
        ahead: dict[str, int] = {}
        sources = zip((self.logs.source, self.errors.source), self._created_at, strict=True)
        for source, created_at in sources:
            query = sqlfiles.template("queries/rows_ahead.sql").format(
                table=source.table, created_at=created_at
            )
            row = cur.execute(query, {"skew": self._skew}).fetchone()
            ahead[source.name] = int(row[0]) if row else 0
        return ahead

    def _history(self, cur: psycopg.Cursor[Any], window: float) -> tuple[HistoryRow, ...]:
        slot = max(1.0, round(window / 60))
        found: dict[tuple[float, str | None], tuple[CallbackDelta | None, int]] = {}
        sources = zip((self.logs.source, self.errors.source), self._created_at, strict=True)
        for source, created_at in sources:
            query = source.formatted("queries/backfill.sql", created_at=created_at)
            params = dict(source.params, slot=slot, window=window, skew=self._skew)
            for row in cur.execute(query, params):
                key = (float(row[1]), row[0])
                delta, errors = found.get(key, (None, 0))
                if source is self.logs.source:
                    delta = _delta((row[0], *row[2:]), self._scale)
                else:
                    errors += int(row[2])
                found[key] = (delta, errors)
        return tuple((at, raw, delta, errors) for (at, raw), (delta, errors) in found.items())

    @staticmethod
    def _running(conn: psycopg.Connection[Any]) -> frozenset[str]:
        """The transactions running before the poll's own begins (in a transaction of its
        own, committed first, so the poll's snapshot is taken after the list)."""
        conn.autocommit = True
        with conn.cursor() as cur:
            return running_transactions(cur)

    def queue_state(self, conn: psycopg.Connection[Any]) -> QueueState:
        with conn.cursor() as cur:
            return self._queue(cur)

    def _queue(self, cur: psycopg.Cursor[Any]) -> QueueState:
        row = cur.execute(self._queue_query).fetchone()
        assert row is not None
        backlog, oldest, db_now = row
        return QueueState(
            backlog=int(backlog),
            oldest_created=None if oldest is None else float(oldest),
            db_now=float(db_now),
        )


def summarize(result: ReadResult) -> str:
    """A short description of a read, for debug logs."""
    return f"{result.new_rows} new rows, lag {result.lag_rows}, {result.open_gaps} open gap ids"
