"""One poll: what is new in the attempt log and the error table, and the queue as it stands.

Everything a poll reads comes from one REPEATABLE READ, READ ONLY transaction, so the log,
the errors and the queue describe the same moment. Aggregation happens in SQL over the new
rows only; the poller returns per-event-type :class:`~cbmon.domain.Figures` and never touches
metrics itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.rows import dict_row

from cbmon.config import Config, ErrorsTable, LogsTable, QueueTable, Reader
from cbmon.db import catalog, sqlfiles, topology
from cbmon.db.connect import link_of, local_settings, server_of
from cbmon.domain import (
    BUCKETS,
    QUEUE_STATES,
    Assumption,
    Features,
    Figures,
    PollResult,
    QueueState,
    Slot,
    TargetCounts,
    Topology,
)
from cbmon.ingest import lifecycle
from cbmon.ingest.fence import FenceKeeper
from cbmon.ingest.periods import HOUR, MINUTE, SHORT
from cbmon.ingest.reader import ReadResult, Source, TailReader
from cbmon.slo import budget

log = logging.getLogger(__name__)

# The rows a history read takes: created within the window, none dated ahead past the skew.
_WITHIN = (
    "{created_at} > now() - %(window)s * interval '1 second' "
    "AND {created_at} <= now() + %(skew)s * interval '1 second'"
)


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
    select: dict[str, sql.Composable] = {
        # A NULL status is a failure. IN with one value plans as "=", cheaper than ANY(array).
        "failures": sql.SQL(
            "count(*) - count(CASE WHEN {status}::text IN ({statuses}) THEN 1 END)"
        ).format(status=column(logs.status), statuses=sql.SQL(", ").join(statuses)),
        "observed": sql.SQL("count(CASE WHEN {valid} THEN 1 END)").format(valid=valid),
        "sum": sql.SQL("sum(CASE WHEN {valid} THEN {x} END)").format(valid=valid, x=x),
        # Durations present, of which the valid ones are observed: the rest are invalid.
        "present": sql.SQL("count({x})").format(x=x),
        "slow": sql.SQL(
            "count(CASE WHEN {x} > %(slow)s AND {x} <= %(max_time)s THEN 1 END)"
        ).format(x=x),
        # One of the invalid durations, shortened, for the log line that says they are there.
        "invalid_sample": sql.SQL(
            "min(CASE WHEN {x} IS NOT NULL AND NOT ({valid}) THEN {short} END)"
        ).format(x=x, valid=valid, short=catalog.short_text(column(logs.execution_time))),
    }
    params: dict[str, Any] = {
        **{f"success_{i}": status for i, status in enumerate(logs.success_statuses)},
        "max_time": config.file.max_execution_time * scale,
        "slow": config.thresholds.slow_callback * scale,
    }
    for index, bound in enumerate(BUCKETS):
        select[f"le_{index}"] = sql.SQL(
            "count(CASE WHEN {x} BETWEEN 0 AND {bound} THEN 1 END)"
        ).format(x=x, bound=sql.Placeholder(f"le_{index}"))
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
        select={},
        params={},
    )


def _queue_query(queue: QueueTable, found: Features | None = None) -> sql.Composed:
    """The queue at the poll's moment: backlog and oldest, and the rows by state where the
    lease and retry columns exist (NULLs where they do not)."""
    nothing = sql.SQL("NULL::bigint")
    states: dict[str, sql.Composable] = dict.fromkeys(QUEUE_STATES, nothing)
    if found is not None and found.states:
        assert queue.locked_until is not None
        assert queue.next_attempt_at is not None
        lease, retry = sql.Identifier(queue.locked_until), sql.Identifier(queue.next_attempt_at)
        states["in_flight"] = sql.SQL("count(CASE WHEN {} > now() THEN 1 END)").format(lease)
        # Leased, and the lease ran out without the row being settled: its worker went away.
        states["stuck"] = sql.SQL("count(CASE WHEN {} <= now() THEN 1 END)").format(lease)
        states["retry_scheduled"] = sql.SQL(
            "count(CASE WHEN {} IS NULL AND {} > now() THEN 1 END)"
        ).format(lease, retry)
        states["due"] = sql.SQL(
            "count(CASE WHEN {} IS NULL AND ({} IS NULL OR {} <= now()) THEN 1 END)"
        ).format(lease, retry, retry)
    table = _table(queue.table_schema, queue.table)
    if found is not None and found.dead_state:
        assert queue.outcome is not None
        states["dead"] = sql.SQL("(SELECT count(*) FROM {} WHERE {} = 'dead')").format(
            table, sql.Identifier(queue.outcome)
        )
    return sqlfiles.template("queries/queue_state.sql").format(
        table=table,
        created_at=sql.Identifier(queue.created_at),
        processed_at=sql.Identifier(queue.processed_at),
        states=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(expression, sql.Identifier(name))
            for name, expression in states.items()
        ),
    )


def lifecycle_source(
    source: Source, config: Config, found: Features, http_status_type: str | None = "integer"
) -> Source:
    """The logs' source reading the callback lifecycle too, as far as the tables allow."""
    logs = config.tables.logs
    select = {**source.select, **lifecycle.aggregates(config, found)}
    target: sql.Composable = sql.SQL("NULL::text")
    if found.targets:
        assert logs.target is not None
        target = sql.SQL("{}::text").format(sql.Identifier(logs.target))
        select.update(lifecycle.target_aggregates(config, http_status_type))
    frame = lifecycle.Frame(config, source.table, logs.id, found, len(logs.success_statuses))
    params = {**source.params, **frame.params()}
    return dataclasses.replace(source, select=select, params=params, target=target, frame=frame)


def _figures(row: Mapping[str, Any], scale: float) -> Figures:
    """A log aggregate row as figures (durations converted from the column's unit)."""
    observed = int(row["observed"] or 0)
    return Figures(
        attempts=int(row["rows_read"]),
        failures=int(row["failures"] or 0),
        observed=observed,
        sum_seconds=float(row["sum"] or 0.0) / scale,
        buckets=tuple(int(row[f"le_{index}"] or 0) for index in range(len(BUCKETS))),
        invalid=int(row["present"] or 0) - observed,
        slow=int(row["slow"] or 0),
        callbacks=lifecycle.callbacks(row),
    )


# First polls whose history read may outrun the statement timeout before it is left out.
HISTORY_TRIES = 3


class InvalidDurations:
    """Says in the log that durations were found that cannot be counted as such: at the first
    poll that finds some, then at most once per ``every`` seconds with the count since, so a
    table full of them is one line every few minutes, not one per poll."""

    def __init__(
        self, column: str, clock: Callable[[], float] = time.monotonic, every: float = 300.0
    ) -> None:
        self.column = column  # schema.table.column
        self._clock = clock
        self._every = every
        self._since: float | None = None  # when the last line was written
        self._count = 0
        self._sample: str | None = None

    def found(self, rows: Iterable[Mapping[str, Any]], max_time: float, unit: str) -> None:
        for row in rows:
            count = int(row["present"] or 0) - int(row["observed"] or 0)
            if count <= 0:
                continue
            self._count += count
            self._sample = self._sample or row.get("invalid_sample")
        now = self._clock()
        if not self._count or (self._since is not None and now - self._since < self._every):
            return
        sample = "" if self._sample is None else f", such as {catalog.shortened(self._sample)}"
        log.warning(
            "%d row%s of %s hold%s a duration cbmon cannot use%s: each is counted as an attempt "
            "with an invalid duration (cbmon_callback_invalid_durations_total), outside the "
            "latency figures; a valid one is a number from 0 to %.10g%s",
            self._count,
            "" if self._count == 1 else "s",
            self.column,
            "s" if self._count == 1 else "",
            sample,
            max_time,
            unit,
        )
        self._since, self._count, self._sample = now, 0, None


def read_lifecycle(
    cur: psycopg.Cursor[Any], conn: psycopg.Connection[Any], config: Config
) -> tuple[Features, dict[str, str | None]]:
    """Which lifecycle columns the tables have (``table.column`` -> type, None when absent)
    and what that turns on: what serve reads, and what ``cbmon report`` and ``cbmon check``
    read the same way."""
    tables = config.tables
    logs, queue = tables.logs, tables.queue
    columns: dict[str, str | None] = {}
    for table, names in (
        (logs, (logs.queue_id, logs.attempt, logs.http_status, logs.target, logs.created_at)),
        (queue, (queue.locked_until, queue.next_attempt_at, queue.outcome, queue.created_at)),
    ):
        relation = catalog.regclass_text(_table(table.table_schema, table.table), conn)
        for name in names:
            if name is not None:
                columns[f"{table.table_schema}.{table.table}.{name}"] = catalog.column_type(
                    cur, relation, name
                )
    logs_relation = catalog.regclass_text(_table(logs.table_schema, logs.table), conn)
    indexed = logs.queue_id is not None and catalog.leads_an_index(
        cur, logs_relation, logs.queue_id
    )
    return lifecycle.features(config, columns, indexed), columns


def lifecycle_features(
    cur: psycopg.Cursor[Any], conn: psycopg.Connection[Any], config: Config
) -> Features:
    return read_lifecycle(cur, conn, config)[0]


class Poller:
    """Owns the readers' state. ``poll`` is called by one thread only, never concurrently."""

    def __init__(
        self,
        config: Config,
        backfill: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``backfill``: seconds of history to read on the first poll (for the SLO window);
        ``clock`` times how long gaps are held where nothing else can give them up."""
        reader: Reader = config.file.reader
        db = config.file.database
        # Where the fence of open gaps comes from: this connection on a primary, the primary
        # (database.primary_dsn) when this is a hot standby.
        self.fences = FenceKeeper(
            config.primary_dsn,
            statement_timeout=db.statement_timeout,
            connect_timeout=db.connect_timeout,
            using=db.driver,
            hold=reader.standby_gap_hold,
            clock=clock,
        )
        self._seen: weakref.ref[psycopg.Connection[Any]] | None = None  # the last connection
        self._history: topology.History | None = None  # of the server the last poll read
        self._config = config
        self._backfill = backfill
        self._period = budget.longest_period(config.baseline)  # the budgets' history
        self._skew = config.file.slo.clock_skew
        self._inspected = False
        self.features = Features()  # found at the first poll
        self._history_timeouts = 0
        self._column_types: dict[str, str | None] = {}  # schema.table.column: its type
        self._created_at = (
            sql.Identifier(config.tables.logs.created_at),
            sql.Identifier(config.tables.errors.created_at),
        )
        tables = config.tables
        self._scale = 1000.0 if tables.logs.execution_time_unit == "ms" else 1.0
        logs_column = f"{tables.logs.table_schema}.{tables.logs.table}.{tables.logs.execution_time}"
        self.invalid = InvalidDurations(logs_column, clock)
        self._window_rows: list[Mapping[str, Any]] = []  # the backfill's log rows, for it
        self.logs = self._reader(_logs_source(tables.logs, config), reader, clock)
        self.errors = self._reader(_errors_source(tables.errors), reader, clock)
        self._queue_query = _queue_query(tables.queue)

    @staticmethod
    def _reader(source: Source, reader: Reader, clock: Callable[[], float]) -> TailReader:
        return TailReader(
            source,
            batch_size=reader.batch_size,
            startup_gap_scan=reader.startup_gap_scan,
            history_rows=reader.history_rows,
            clock=clock,
        )

    def poll(self, conn: psycopg.Connection[Any], *, catch_up: bool = False) -> PollResult:
        """Read one batch of new rows under one snapshot. Raises ``psycopg.Error`` on failure.

        If it raises, the readers keep their previous state, so the next poll reads the same
        rows again: nothing is lost and nothing is counted twice.
        """
        saved = (self.logs.save(), self.errors.save())
        reading_history = False
        # What is read before the poll's transaction runs in transactions of its own,
        # committed before the poll's snapshot is taken.
        conn.autocommit = True
        history, new_server = self._server_history(conn)
        if catch_up:
            self.fences.catch_up(conn)
        gaps = bool(self.logs.gaps or self.errors.gaps)
        fence = self.fences.fence(conn) if gaps else None
        conn.autocommit = False
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            with conn.transaction(), conn.cursor() as cur:
                local_settings(cur)  # behind a pooler in transaction mode
                database = server_of(conn).info  # known after connect(); detected otherwise
                first = not self._inspected
                assumptions = self._inspect(conn, cur) if first else ()
                backfill: tuple[Slot, ...] = ()
                self._window_rows = []
                ahead: dict[str, int] = {}
                periods: tuple[tuple[float, tuple[Slot, ...]], ...] = ()
                reading_history = self.logs.high_water is None
                if reading_history:
                    periods = self._backfill_periods(cur)
                if self._backfill and reading_history:
                    backfill = self._backfill_window(cur, self._backfill)
                    ahead = self.rows_ahead(cur)
                reading_history = False
                logs = self.logs.read(cur, fence, new_server=new_server)
                errors = self.errors.read(cur, fence, new_server=new_server)
                queue, in_recovery = self._queue(cur)
        except BaseException as exc:
            self.logs.restore(saved[0])
            self.errors.restore(saved[1])
            if isinstance(exc, psycopg.errors.QueryCanceled):
                if reading_history:
                    self._history_timeouts += 1
                    if self._history_timeouts >= HISTORY_TRIES:
                        self._without_history()
                self.logs.shrink_batch()
                self.errors.shrink_batch()
            raise
        self._history = history
        self.fences.observe(in_recovery)
        logs_unit = self._config.tables.logs.execution_time_unit
        max_time = self._config.file.max_execution_time * self._scale
        self.invalid.found([*self._window_rows, *logs.rows], max_time, logs_unit)
        self._window_rows = []
        figures: dict[str | None, Figures] = {}
        targets: dict[str | None, TargetCounts] = {}
        for row in logs.rows:  # one row per event type and target
            figures[row["key"]] = figures.get(row["key"], Figures()) + _figures(row, self._scale)
            if self.features.targets:
                tried = lifecycle.target_counts(row)
                targets[row["target"]] = targets.get(row["target"], TargetCounts()) + tried
        for row in errors.rows:
            counted = figures.get(row["key"], Figures())
            figures[row["key"]] = counted + Figures(errors=int(row["rows_read"]))
        assert self.fences.mode is not None
        return PollResult(
            figures=figures,
            targets=targets,
            features=self.features if first else None,
            queue=queue,
            lag_rows={"logs": logs.lag_rows, "errors": errors.lag_rows},
            open_gaps={"logs": logs.open_gaps, "errors": errors.open_gaps},
            history=backfill,
            period_history=periods,
            assumptions=assumptions,
            ahead_rows=ahead,
            database=database,
            topology=Topology(
                standby=in_recovery, fence=self.fences.mode, pooler=link_of(conn).pooler
            ),
            resets=logs.resets + errors.resets,
            expired_gaps={"logs": logs.expired_gaps, "errors": errors.expired_gaps},
        )

    def _server_history(self, conn: psycopg.Connection[Any]) -> tuple[topology.History, bool]:
        """On a connection not seen before: the answering server's history, and whether it
        differs from the one the last poll read (a failover, or another cluster)."""
        if self._seen is not None and self._seen() is conn and self._history is not None:
            return self._history, False
        with conn.cursor() as cur:
            found = topology.history(cur, server_of(conn))
        self._seen = weakref.ref(conn)
        self.fences.connected(found)
        new_server = self._history is not None and found.differs(self._history)
        if new_server:
            assert self._history is not None
            log.warning(
                "the server answering now carries another history (%s; before: %s): a "
                "failover, or another cluster; the rows read are checked against it",
                found.describe(),
                self._history.describe(),
            )
        return found, new_server

    def _inspect(
        self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]
    ) -> tuple[Assumption, ...]:
        """Read the catalogs once: the duration column's type and the ids' sequences."""
        tables = self._config.tables
        logs_table = catalog.regclass_text(self.logs.source.table, conn)
        duration = catalog.column_type(cur, logs_table, tables.logs.execution_time)
        self.logs.source = _logs_source(tables.logs, self._config, duration)
        self.features = self._lifecycle(cur, conn)
        logs = tables.logs
        http_status_type = self._column_types.get(
            f"{logs.table_schema}.{logs.table}.{logs.http_status}"
        )
        self.logs.source = lifecycle_source(
            self.logs.source, self._config, self.features, http_status_type
        )
        times = (tables.logs.created_at, tables.errors.created_at)
        for reader, created_at in zip((self.logs, self.errors), times, strict=True):
            table = catalog.regclass_text(reader.source.table, conn)
            kind = catalog.column_type(cur, table, created_at)
            fingerprint = catalog.fingerprint(sql.Identifier(created_at), kind)
            reader.source = dataclasses.replace(reader.source, fingerprint=fingerprint)
        found: list[Assumption] = []
        server = server_of(conn)
        for reader, column in ((self.logs, tables.logs.id), (self.errors, tables.errors.id)):
            table = catalog.regclass_text(reader.source.table, conn)
            checked = catalog.id_assumptions(cur, reader.source.name, table, column, server)
            found += checked
            one_at_a_time = any(a.check == "sequence_cache_1" and a.ok for a in checked)
            if one_at_a_time and server.tells_ids_handed_out:
                # Ids handed out one at a time: how far they went bounds what an idle poll
                # looks at, whatever transactions still open hold above the rows read.
                sequence = catalog.readable_sequence(cur, table, column)
                reader.source = dataclasses.replace(reader.source, sequence=sequence)
        self._inspected = True
        return tuple(found)

    def _lifecycle(self, cur: psycopg.Cursor[Any], conn: psycopg.Connection[Any]) -> Features:
        """Which lifecycle columns the tables have, and whether the log's queue_id is indexed."""
        found, self._column_types = read_lifecycle(cur, conn, self._config)
        self._queue_query = _queue_query(self._config.tables.queue, found)
        return found

    def _without_history(self) -> None:
        """The history read at start outran the statement timeout in each of the first polls
        (a table far larger than the window, millions of rows inserted and not committed on
        its index): start without it rather than fail every first poll, and say so once."""
        log.warning(
            "the history of the SLO window and of the error budgets could not be read within "
            "database.statement_timeout; they fill from now on (a restart reads it again)"
        )
        self._backfill = None
        self._period = 0

    def _backfill_periods(
        self, cur: psycopg.Cursor[Any]
    ) -> tuple[tuple[float, tuple[Slot, ...]], ...]:
        """For the error budgets: the last six hours by minute, the longest objective period
        by hour (nothing without an objective)."""
        if self._period <= 0:
            return ()
        minutes = self._backfill_window(cur, min(SHORT, self._period), MINUTE)
        return ((MINUTE, minutes), (HOUR, self._backfill_window(cur, self._period, HOUR)))

    def rows_ahead(self, cur: psycopg.Cursor[Any]) -> dict[str, int]:
        """Rows of the log and error tables dated further ahead of the database's clock than
        slo.clock_skew allows, per table."""
        ahead: dict[str, int] = {}
        sources = zip((self.logs.source, self.errors.source), self._created_at, strict=True)
        for source, created_at in sources:
            query = sqlfiles.template("queries/rows_ahead.sql").format(
                table=source.table, created_at=created_at
            )
            row = cur.execute(query, {"skew": self._skew}).fetchone()
            ahead[source.name] = int(row[0]) if row else 0
        return ahead

    def _backfill_window(
        self, cur: psycopg.Cursor[Any], window: float, slot: float | None = None
    ) -> tuple[Slot, ...]:
        """The rows created within ``window`` before now, per time slot (a sixtieth of the
        window unless told) and raw event type."""
        window_rows = slot is None  # the SLO window's, whose invalid durations are told
        slot = max(1.0, round(window / 60)) if slot is None else slot
        found: dict[tuple[float, str | None], Figures] = {}
        sources = zip((self.logs.source, self.errors.source), self._created_at, strict=True)
        for source, created_at in sources:
            within = sql.SQL(_WITHIN).format(created_at=created_at)
            query = source.formatted(
                "queries/backfill.sql", within, counted=False, created_at=created_at
            )
            params = dict(source.params, slot=slot, window=window, skew=self._skew)
            with cur.connection.cursor(row_factory=dict_row) as named:
                for row in named.execute(query, params):
                    key = (float(row["slot_end"]), row["key"])
                    if source is self.logs.source:
                        figures = _figures(row, self._scale)
                        if window_rows:
                            self._window_rows.append(row)
                    else:
                        figures = Figures(errors=int(row["rows_read"]))
                    found[key] = found.get(key, Figures()) + figures
        return tuple(Slot(end, raw, figures) for (end, raw), figures in found.items())

    def _queue(self, cur: psycopg.Cursor[Any]) -> tuple[QueueState, bool]:
        """The queue, and whether the server is a standby, at the poll's moment."""
        row = cur.execute(self._queue_query).fetchone()
        assert row is not None
        backlog, oldest, db_now, in_recovery, *by_state = row
        states = dict(zip(QUEUE_STATES, by_state, strict=True))
        state = QueueState(
            backlog=int(backlog),
            oldest_created=None if oldest is None else float(oldest),
            db_now=float(db_now),
            states={k: int(v) for k, v in states.items() if v is not None} or None,
        )
        return state, bool(in_recovery)


def summarize(result: ReadResult) -> str:
    """A short description of a read, for debug logs."""
    return f"{result.new_rows} new rows, lag {result.lag_rows}, {result.open_gaps} open gap ids"
