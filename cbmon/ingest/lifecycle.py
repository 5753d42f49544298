"""Callbacks, not only attempts: what the attempt log says of each callback's life.

A callback is a queue row; its attempts are log rows carrying its ``queue_id`` and their number
(``attempt``, 1 for the first). Read in the same polls as the attempts, under the same gap rule,
so the counts are exact and incremental:

* **delivered**: a successful attempt of a callback with no other successful attempt counted
  before it (an earlier poll, or a lower id in this poll); any other successful attempt of it
  is a **duplicate** delivery (a lease ran out, a worker restarted);
* **dead**: a failed attempt numbered ``1 + max_retries``, its last allowed one;
* **tries**: the attempt number a finished (delivered or dead) callback ended on;
* **queue wait**: a first attempt's time minus its queue row's ``created_at``, and **end to
  end**: a delivering attempt's time minus it, retries included (one primary-key probe of the
  queue each, for those rows only);
* **per target**: attempts and failures by class (``4xx``, ``5xx``, ``timeout``, ``other``).

"Counted before" needs an index on the log's ``queue_id`` (one probe per successful attempt):
without it, outcomes are off and the status page says so, with the statement that fixes it.
Which parts the tables allow is decided at start (:func:`features`); what they lack costs
nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from psycopg import sql

from cbmon.config import Config
from cbmon.domain import TRIES, WAIT_BUCKETS, Callbacks, Features, TargetCounts

_TIMES = ("timestamp without time zone", "timestamp with time zone")


# Column types read as numbers without a guard (as format_type names them).
NUMBERS = ("integer", "bigint", "smallint", "numeric")


def features(config: Config, columns: Mapping[str, str | None], indexed: bool) -> Features:
    """What is on, from the columns found (``table.column`` -> type, None when absent) and
    whether the log's ``queue_id`` leads an index."""
    logs, queue = config.tables.logs, config.tables.queue
    logs_name = f"{logs.table_schema}.{logs.table}"
    queue_name = f"{queue.table_schema}.{queue.table}"

    def has(table: str, column: str | None) -> bool:
        return column is not None and columns.get(f"{table}.{column}") is not None

    notes: list[str] = []
    outcomes = has(logs_name, logs.queue_id) and has(logs_name, logs.attempt)
    not_numbers = [
        f"{c} is {columns.get(f'{logs_name}.{c}')}"
        for c in (logs.queue_id, logs.attempt)
        if outcomes and columns.get(f"{logs_name}.{c}") not in NUMBERS
    ]
    if not outcomes:
        missing = [c for c in (logs.queue_id, logs.attempt) if not has(logs_name, c)]
        notes.append(
            f"callback outcomes off: {logs_name} has no {' or '.join(map(str, missing))} column "
            "(tables.logs.queue_id, tables.logs.attempt)"
        )
    elif not_numbers:
        # Compared with numbers in every read: a text column would fail each poll.
        outcomes = False
        notes.append(
            f"callback outcomes off: in {logs_name}, {' and '.join(not_numbers)}, not a number "
            "(tables.logs.queue_id, tables.logs.attempt)"
        )
    elif not indexed:
        outcomes = False
        notes.append(
            f"callback outcomes off: no index on {logs_name} ({logs.queue_id}), which telling "
            f"a delivery from a duplicate needs: CREATE INDEX ON {logs_name} ({logs.queue_id})"
        )
    times = outcomes and all(
        columns.get(name) in _TIMES
        for name in (f"{logs_name}.{logs.created_at}", f"{queue_name}.{queue.created_at}")
    )
    if outcomes and not times:
        notes.append(
            "queue wait and end to end off: created_at of the log and of the queue must both be "
            "timestamps"
        )
    targets = has(logs_name, logs.target)
    if not targets:
        notes.append(f"per-target figures off: {logs_name} has no target column")
    states = has(queue_name, queue.locked_until) and has(queue_name, queue.next_attempt_at)
    if not states:
        notes.append(
            f"queue states off: {queue_name} has no locked_until/next_attempt_at columns "
            "(tables.queue.locked_until, tables.queue.next_attempt_at)"
        )
    dead = has(queue_name, queue.outcome)
    return Features(outcomes, times, targets, states, dead, tuple(notes))


def report_notes(found: Features) -> tuple[str, ...]:
    """What is off of the callbacks' figures a report gives (outcomes, queue wait and end to
    end), one line each; per target and the queue's states are serve's, not a report's."""
    return tuple(n for n in found.notes if n.startswith(("callback outcomes", "queue wait")))


def success(alias: str, status: str, count: int) -> sql.Composable:
    """``alias.status`` is a success status (the bound ``success_i`` parameters)."""
    statuses = sql.SQL(", ").join(sql.Placeholder(f"success_{i}") for i in range(count))
    return sql.SQL("{}::text IN ({})").format(sql.Identifier(alias, status), statuses)


def max_retries(
    config: Config, event_type: sql.Composable
) -> tuple[sql.Composable, dict[str, Any]]:
    """The retries an event type is allowed, as an expression (the default, or its own)."""
    callbacks = config.file.callbacks
    params: dict[str, Any] = {"max_retries": callbacks.max_retries}
    if not callbacks.event_types:
        return sql.SQL("%(max_retries)s"), params
    cases = []
    for index, (name, own) in enumerate(sorted(callbacks.event_types.items())):
        params[f"retries_type_{index}"] = name
        params[f"retries_{index}"] = own.max_retries
        cases.append(
            sql.SQL("WHEN {} THEN {}").format(
                sql.Placeholder(f"retries_type_{index}"), sql.Placeholder(f"retries_{index}")
            )
        )
    expression = sql.SQL("(CASE {}::text {} ELSE %(max_retries)s END)").format(
        event_type, sql.SQL(" ").join(cases)
    )
    return expression, params


@dataclasses.dataclass(frozen=True)
class Frame:
    """The rows a read aggregates, with the lifecycle's columns worked out once per row."""

    config: Config
    table: sql.Composable
    id_name: str  # the log's id column
    found: Features
    statuses: int

    def rows(self, where: sql.Composable, counted: sql.Composable | None) -> sql.Composable:
        """The FROM clause of the rows ``where`` selects; ``counted`` is the predicate on
        ``o`` of the rows counted before ``t`` (None: every lower id, for history)."""
        if not self.found.outcomes:
            return sql.SQL("{} WHERE {}").format(self.table, where)
        logs, queue = self.config.tables.logs, self.config.tables.queue
        assert logs.queue_id is not None
        assert logs.attempt is not None
        qid, attempt = sql.Identifier("t", logs.queue_id), sql.Identifier("t", logs.attempt)
        t_id, o_id = sql.Identifier("t", self.id_name), sql.Identifier("o", self.id_name)
        before = counted if counted is not None else sql.SQL("{} < {}").format(o_id, t_id)
        first = sql.SQL(
            "CASE WHEN {ok_t} AND {qid} IS NOT NULL THEN NOT EXISTS (SELECT 1 FROM {table} AS o "
            "WHERE {o_qid} = {qid} AND {o_id} <> {t_id} AND {ok_o} AND ({before})) END"
        ).format(
            ok_t=success("t", logs.status, self.statuses),
            ok_o=success("o", logs.status, self.statuses),
            qid=qid,
            o_qid=sql.Identifier("o", logs.queue_id),
            table=self.table,
            o_id=o_id,
            t_id=t_id,
            before=before,
        )
        retries, _ = max_retries(self.config, sql.Identifier("t", logs.event_type))
        dead = sql.SQL("(NOT coalesce({ok}, false) AND {attempt} >= 1 + {retries})").format(
            ok=success("t", logs.status, self.statuses), attempt=attempt, retries=retries
        )
        since: sql.Composable = sql.SQL("NULL::float8")
        if self.found.queue_times:
            since = sql.SQL(
                "CASE WHEN {qid} IS NOT NULL AND ({attempt} = 1 OR {ok}) THEN (SELECT "
                "extract(epoch FROM {t_created} - q.{q_created}) FROM {queue} AS q "
                "WHERE q.{q_id} = {qid}) END"
            ).format(
                attempt=attempt,
                ok=success("t", logs.status, self.statuses),
                t_created=sql.Identifier("t", logs.created_at),
                q_created=sql.Identifier(queue.created_at),
                queue=sql.Identifier(queue.table_schema, queue.table),
                q_id=sql.Identifier(queue.id),
                qid=qid,
            )
        # OFFSET 0 keeps the subquery whole, so each row's probes run once, not per aggregate.
        return sql.SQL(
            "(SELECT t.*, {first} AS cbmon_first, {dead} AS cbmon_dead, {since} AS cbmon_queued "
            "FROM {table} AS t WHERE {where} OFFSET 0) AS batch"
        ).format(first=first, dead=dead, since=since, table=self.table, where=where)

    def params(self) -> dict[str, Any]:
        if not self.found.outcomes:
            return {}
        logs = self.config.tables.logs
        return max_retries(self.config, sql.Identifier(logs.event_type))[1]


def counted_before(where: sql.Composable, id_name: str) -> sql.Composable:
    """Rows counted before ``t``, on ``o``: outside this read up to its high water (earlier
    polls), or inside it with a lower id. ``where`` is unqualified, so it reads ``o``."""
    o_id, t_id = sql.Identifier("o", id_name), sql.Identifier("t", id_name)
    return sql.SQL(
        "(NOT ({where}) AND {o_id} <= %(counted_upto)s) OR (({where}) AND {o_id} < {t_id})"
    ).format(where=where, o_id=o_id, t_id=t_id)


def aggregates(config: Config, found: Features) -> dict[str, sql.Composable]:
    """The lifecycle's aggregates over the frame's rows (their names: see :func:`callbacks`)."""
    if not found.outcomes:
        return {}
    logs = config.tables.logs
    assert logs.attempt is not None
    attempt = sql.Identifier(logs.attempt)
    finished = sql.SQL("(cbmon_first OR cbmon_dead)")
    select: dict[str, sql.Composable] = {
        "cb_delivered": sql.SQL("count(CASE WHEN cbmon_first THEN 1 END)"),
        "cb_successes": sql.SQL("count(CASE WHEN cbmon_first IS NOT NULL THEN 1 END)"),
        "cb_dead": sql.SQL("count(CASE WHEN cbmon_dead THEN 1 END)"),
        "cb_tries_sum": sql.SQL("sum(CASE WHEN {f} THEN {a} END)").format(f=finished, a=attempt),
    }
    for index, bound in enumerate(TRIES):
        select[f"cb_tries_{index}"] = sql.SQL(
            "count(CASE WHEN {f} AND {a} <= {b} THEN 1 END)"
        ).format(f=finished, a=attempt, b=sql.Literal(bound))
    if found.queue_times:
        first = sql.SQL("{a} = 1 AND cbmon_queued >= 0").format(a=attempt)
        end = sql.SQL("cbmon_first AND cbmon_queued >= 0")
        select["cb_waited"] = sql.SQL("count(CASE WHEN {} THEN 1 END)").format(first)
        select["cb_wait_sum"] = sql.SQL("sum(CASE WHEN {} THEN cbmon_queued END)").format(first)
        select["cb_ended"] = sql.SQL("count(CASE WHEN {} THEN 1 END)").format(end)
        select["cb_end_sum"] = sql.SQL("sum(CASE WHEN {} THEN cbmon_queued END)").format(end)
        for index, seconds in enumerate(WAIT_BUCKETS):
            limit = sql.Literal(seconds)
            select[f"cb_wait_{index}"] = sql.SQL(
                "count(CASE WHEN {} AND cbmon_queued <= {} THEN 1 END)"
            ).format(first, limit)
            select[f"cb_end_{index}"] = sql.SQL(
                "count(CASE WHEN {} AND cbmon_queued <= {} THEN 1 END)"
            ).format(end, limit)
    return select


def success_unqualified(status: str, count: int) -> sql.Composable:
    statuses = sql.SQL(", ").join(sql.Placeholder(f"success_{i}") for i in range(count))
    return sql.SQL("{}::text IN ({})").format(sql.Identifier(status), statuses)


def target_aggregates(
    config: Config, http_status_type: str | None = "integer"
) -> dict[str, sql.Composable]:
    """Failures by class, per target: the HTTP status says 4xx or 5xx; no status and a status
    word naming a timeout is a timeout; any other failure is other. An HTTP status column
    that is not a number (text) is read through a pattern: a value that is no status code
    (``'n/a'``) is no status, never a failed poll."""
    logs = config.tables.logs
    failed = sql.SQL("NOT coalesce({}, false)").format(
        success_unqualified(logs.status, len(logs.success_statuses))
    )
    if logs.http_status is None:
        code: sql.Composable = sql.SQL("NULL::int")
    else:
        column = sql.Identifier(logs.http_status)
        code = sql.SQL("{}::int").format(column)
        if http_status_type not in NUMBERS:
            code = sql.SQL("(CASE WHEN {c}::text ~ {code} THEN {c}::text::int END)").format(
                c=column, code=sql.Literal("^ *[0-9]{1,3} *$")
            )
    timeout = sql.SQL("{code} IS NULL AND lower({status}::text) LIKE '%%timeout%%'").format(
        code=code, status=sql.Identifier(logs.status)
    )
    return {
        "tg_4xx": sql.SQL("count(CASE WHEN {f} AND {c} BETWEEN 400 AND 499 THEN 1 END)").format(
            f=failed, c=code
        ),
        "tg_5xx": sql.SQL("count(CASE WHEN {f} AND {c} BETWEEN 500 AND 599 THEN 1 END)").format(
            f=failed, c=code
        ),
        "tg_timeout": sql.SQL("count(CASE WHEN {f} AND {t} THEN 1 END)").format(
            f=failed, t=timeout
        ),
    }


def callbacks(row: Mapping[str, Any]) -> Callbacks:
    """The lifecycle's part of one aggregate row (all zero when outcomes are off)."""
    if "cb_delivered" not in row:
        return Callbacks()
    delivered = int(row["cb_delivered"] or 0)

    def ints(prefix: str, count: int) -> tuple[int, ...]:
        return tuple(int(row.get(f"{prefix}_{i}") or 0) for i in range(count))

    return Callbacks(
        delivered=delivered,
        dead=int(row["cb_dead"] or 0),
        duplicates=int(row["cb_successes"] or 0) - delivered,
        tries=ints("cb_tries", len(TRIES)),
        tries_sum=int(row["cb_tries_sum"] or 0),
        waited=int(row.get("cb_waited") or 0),
        wait_sum=float(row.get("cb_wait_sum") or 0.0),
        waits=ints("cb_wait", len(WAIT_BUCKETS)),
        ended=int(row.get("cb_ended") or 0),
        end_sum=float(row.get("cb_end_sum") or 0.0),
        ends=ints("cb_end", len(WAIT_BUCKETS)),
    )


def target_counts(row: Mapping[str, Any]) -> TargetCounts:
    failures = int(row["failures"] or 0)
    four, five, timeout = (int(row[f"tg_{c}"] or 0) for c in ("4xx", "5xx", "timeout"))
    return TargetCounts(
        int(row["rows_read"]), (four, five, timeout, failures - four - five - timeout)
    )
