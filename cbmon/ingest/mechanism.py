"""Probing the callback mechanism inside the database, at a slow interval (not every poll):
the NOTIFY queue, its listeners, the scheduler's jobs (pg_cron on PostgreSQL, PG_JOB on
openGauss), the token buckets, the routing table and the handler functions' statistics.

Every source is optional. Each probe finds it present and read (``ok``), ``absent`` (off, said
once) or ``unreadable`` by cbmon's role (said once, with the GRANT that fixes it). A source that
fails is left out of that probe; the others are still read.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cbmon.config import Config
from cbmon.db import sqlfiles
from cbmon.db.connect import first_line, server_of
from cbmon.domain import Bucket, HandlerStats, Job, Mechanism, SourceState

log = logging.getLogger(__name__)

SOURCES = ("notify_queue", "listeners", "scheduler", "rate_limits", "router", "handlers")
TRACK_FUNCTIONS_OFF = (
    "track_functions is none, so the server counts no function calls: ALTER SYSTEM SET "
    "track_functions = 'pl' and SELECT pg_reload_conf() count PL/pgSQL functions ('all' adds "
    "SQL functions that are not inlined)"
)
_CRON = {"@hourly": 3600.0, "@daily": 86400.0, "@midnight": 86400.0, "@weekly": 604800.0}


def schedule_interval(schedule: str) -> float | None:
    """Seconds between a job's runs, from its schedule: pg_cron's (``* * * * *``, ``*/5 * *
    * *``, ``0 3 * * *``, ``30 seconds``, ``@hourly``) or PG_JOB's (``sysdate + 1/1440``);
    None when it cannot be told (then only a disabled job is judged)."""
    text = schedule.strip().lower()
    if text in _CRON:
        return _CRON[text]
    seconds = re.fullmatch(r"(\d+)\s*seconds?", text)
    if seconds:
        return float(seconds.group(1))
    gauss = re.fullmatch(r"sysdate\s*\+\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?", text)
    if gauss:
        days = float(gauss.group(1)) / float(gauss.group(2) or 1)
        return days * 86400.0 if days > 0 else None
    fields = text.split()
    if len(fields) != 5 or any("," in f or "-" in f for f in fields[:3]):
        return None
    if fields[4] != "*":
        return 7 * 86400.0
    # The most significant field constrained sets the period: a fixed day of the month is
    # monthly, a fixed hour daily, a fixed minute hourly; a step divides its unit's parent.
    for field, unit, parent in (
        (fields[2], 86400.0, 30 * 86400.0),
        (fields[1], 3600.0, 86400.0),
        (fields[0], 60.0, 3600.0),
    ):
        if field == "*":
            continue
        step = re.fullmatch(r"\*/(\d+)", field)
        return unit * int(step.group(1)) if step else parent
    return 60.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the probe needs of the configuration, as plain values."""

    schema: str
    listeners: Mapping[str, str]  # channel -> application_name
    window: float
    max_retries: int
    event_retries: Mapping[str, int]
    interval: float

    @classmethod
    def of(cls, config: Config) -> Settings:
        file = config.file
        mechanism = file.mechanism
        return cls(
            schema=mechanism.mechanism_schema or file.tables.queue.table_schema,
            listeners={item.channel: item.application_name for item in mechanism.listeners},
            window=file.slo.window,
            max_retries=file.callbacks.max_retries,
            event_retries={k: v.max_retries for k, v in file.callbacks.event_types.items()},
            interval=mechanism.interval,
        )


@dataclasses.dataclass
class _Runs:
    """pg_cron's runs counted so far: settled counts below ``settled_to`` are final."""

    settled_to: int = 0
    settled: collections.Counter[tuple[int, str]] = dataclasses.field(
        default_factory=collections.Counter
    )
    last_success: dict[int, float] = dataclasses.field(default_factory=dict)
    first_start: dict[int, float] = dataclasses.field(default_factory=dict)


class MechanismProbe:
    """Probes the mechanism when due; the last probe is :attr:`state`. Pass the clock of
    decisions (monotonic); the database's own clock dates what is probed."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._next: float | None = None
        self._said: dict[str, tuple[str, str]] = {}
        self._runs = _Runs()
        self._first_seen: dict[int, float] = {}
        self._dropped: collections.deque[tuple[float, int]] = collections.deque()
        self.state: Mechanism | None = None

    def due(self) -> bool:
        return self._next is None or self._clock() >= self._next

    def maybe_probe(self, conn: psycopg.Connection[Any]) -> Mechanism | None:
        """Probe if the interval has passed since the last one; the new state, else None."""
        if not self.due():
            return None
        return self.probe(conn)

    def probe(self, conn: psycopg.Connection[Any]) -> Mechanism:
        self._next = self._clock() + self.settings.interval
        conn.autocommit = True  # each source in a statement of its own: one failing spoils none
        with conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                sqlfiles.template("probes/presence.sql"), {"schema": self.settings.schema}
            ).fetchone()
            assert found is not None
            state = self._read(conn, cur, found)
        self._say(state.sources)
        self.state = state
        return state

    # -- the sources -------------------------------------------------------------------------
    def _read(
        self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], found: Mapping[str, Any]
    ) -> Mechanism:
        at = float(found["at"])
        role, schema = str(found["role"]), self.settings.schema
        sources: list[SourceState] = []
        values: dict[str, Any] = {"track_functions": found["track_functions"]}

        def attempt(name: str, read: Callable[[], Any], grant: str = "") -> Any:
            try:
                value = read()
            except psycopg.errors.InsufficientPrivilege as exc:
                sources.append(SourceState(name, "unreadable", f"{first_line(exc)}; {grant}"))
                return None
            except psycopg.Error as exc:
                sources.append(SourceState(name, "unreadable", first_line(exc)))
                return None
            sources.append(SourceState(name, "ok"))
            return value

        usage = f"GRANT USAGE ON SCHEMA {schema} TO {role}"
        if not server_of(conn).postgresql:
            # openGauss lists the function in thread-pool mode too, where NOTIFY is refused
            sources.append(SourceState("notify_queue", "absent", "openGauss has no NOTIFY queue"))
        elif found["notify_queue"]:
            values["notify_usage"] = attempt("notify_queue", lambda: self._notify(cur))
        else:
            sources.append(SourceState("notify_queue", "absent", "the server has no NOTIFY queue"))
        if self.settings.listeners:
            values["listeners"] = attempt("listeners", lambda: self._listeners(cur)) or {}
        values["jobs"] = self._scheduler(conn, cur, found, sources, attempt)
        for name, table, key, read in (
            ("rate_limits", "callback_limits", "limits", self._limits),
            ("router", "callback_router", "router", self._routes),
        ):
            if not found[key]:
                sources.append(SourceState(name, "absent", f"no table {schema}.{table}"))
                continue
            grant = f"{usage}; GRANT SELECT ON {schema}.{table} TO {role}"
            if not found["schema_usage"]:
                sources.append(SourceState(name, "unreadable", f"no usage of {schema}; {grant}"))
                continue
            values[name] = attempt(name, lambda read=read: read(cur), grant)  # type: ignore[misc]
        if found["track_functions"] == "none":
            sources.append(SourceState("handlers", "absent", TRACK_FUNCTIONS_OFF))
            values["handlers"] = None
        else:
            values["handlers"] = attempt("handlers", lambda: self._handlers(cur))
        buckets = values.get("rate_limits")
        return Mechanism(
            at=at,
            sources=tuple(sources),
            notify_usage=values.get("notify_usage"),
            listeners=values.get("listeners", {}),
            jobs=values["jobs"],
            buckets=buckets,
            dropped_in_window=None if buckets is None else self._drops(buckets),
            route_problems=values.get("router"),
            handlers=values["handlers"],
            track_functions=values["track_functions"],
        )

    def _notify(self, cur: psycopg.Cursor[Any]) -> float:
        row = cur.execute(sqlfiles.template("probes/notify_queue.sql")).fetchone()
        assert row is not None
        return float(row["usage"])

    def _listeners(self, cur: psycopg.Cursor[Any]) -> dict[str, bool]:
        names = list(self.settings.listeners.values())
        rows = cur.execute(sqlfiles.template("probes/listeners.sql"), {"names": names}).fetchall()
        listening = {row["application_name"]: int(row["listening"]) > 0 for row in rows}
        return {
            channel: listening.get(name, False) for channel, name in self.settings.listeners.items()
        }

    def _scheduler(
        self,
        conn: psycopg.Connection[Any],
        cur: psycopg.Cursor[Any],
        found: Mapping[str, Any],
        sources: list[SourceState],
        attempt: Callable[..., Any],
    ) -> tuple[Job, ...] | None:
        role, at = found["role"], float(found["at"])
        scheduler = server_of(conn).scheduler
        if scheduler == "cron" and found["pg_cron"]:
            grant = (
                f"GRANT USAGE ON SCHEMA cron TO {role}; GRANT SELECT ON cron.job, "
                f"cron.job_run_details TO {role}; ALTER ROLE {role} BYPASSRLS (to see every "
                "user's jobs)"
            )
            jobs: tuple[Job, ...] | None = attempt("scheduler", lambda: self._cron(cur, at), grant)
            if jobs is not None and not self._all_rows(cur):
                sources[-1] = SourceState(
                    "scheduler",
                    "ok",
                    f"pg_cron shows {role} only its own jobs: ALTER ROLE {role} BYPASSRLS",
                )
            return jobs
        if scheduler == "pg_job" and found["pg_job"]:
            grant = f"GRANT SELECT ON pg_catalog.pg_job TO {role}"
            return attempt("scheduler", lambda: self._pg_job(cur, at), grant)  # type: ignore[no-any-return]
        missing = "no pg_cron in this database" if scheduler == "cron" else "no PG_JOB catalog"
        sources.append(SourceState("scheduler", "absent", missing))
        return None

    @staticmethod
    def _all_rows(cur: psycopg.Cursor[Any]) -> bool:
        """Whether row-level security lets this role see every user's pg_cron jobs."""
        row = cur.execute(
            "SELECT rolsuper OR rolbypassrls AS all_rows FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        return bool(row and row["all_rows"])

    def _cron(self, cur: psycopg.Cursor[Any], at: float) -> tuple[Job, ...]:
        runs = self._runs
        jobs = cur.execute(sqlfiles.template("probes/cron_jobs.sql")).fetchall()
        rows = cur.execute(
            sqlfiles.template("probes/cron_runs.sql"), {"after": runs.settled_to}
        ).fetchall()
        fresh: collections.Counter[tuple[int, str]] = collections.Counter()
        settled_to = runs.settled_to
        for row in rows:
            key = (int(row["job_id"]), str(row["status"]))
            runs.settled[key] += int(row["settled"])
            fresh[key] += int(row["runs"]) - int(row["settled"])
            settled_to = max(settled_to, int(row["settled_to"]))
            job = key[0]
            if key[1] == "succeeded" and row["last_end"] is not None:
                runs.last_success[job] = max(runs.last_success.get(job, 0.0), row["last_end"])
            if row["first_start"] is not None:
                first = runs.first_start.get(job, row["first_start"])
                runs.first_start[job] = min(first, row["first_start"])
        runs.settled_to = settled_to
        found = []
        for job in jobs:
            job_id = int(job["job_id"])
            first = self._first_seen.setdefault(job_id, at)
            last = runs.last_success.get(job_id)
            counted = {
                s: runs.settled[(job_id, s)] + fresh[(job_id, s)] for s in ("succeeded", "failed")
            }
            found.append(
                Job(
                    name=str(job["name"]),
                    enabled=bool(job["active"]),
                    interval=schedule_interval(str(job["schedule"])),
                    succeeded=counted["succeeded"],
                    failed=counted["failed"],
                    last_success=last,
                    since=last if last is not None else runs.first_start.get(job_id, first),
                )
            )
        return tuple(found)

    def _pg_job(self, cur: psycopg.Cursor[Any], at: float) -> tuple[Job, ...]:
        found = []
        for row in cur.execute(sqlfiles.template("probes/pg_job.sql")).fetchall():
            first = self._first_seen.setdefault(int(row["job_id"]), at)
            last = row["last_success"]
            found.append(
                Job(
                    name=str(row["name"]),
                    enabled=bool(row["active"]),
                    interval=schedule_interval(str(row["schedule"] or "")),
                    failed=int(row["failures"] or 0),
                    last_success=last,
                    since=last if last is not None else (row["first_start"] or first),
                )
            )
        return tuple(found)

    def _limits(self, cur: psycopg.Cursor[Any]) -> tuple[Bucket, ...]:
        query = sqlfiles.template("probes/limits.sql").format(
            schema=sql.Identifier(self.settings.schema)
        )
        return tuple(
            Bucket(str(r["bucket_id"]), float(r["tokens"]), int(r["capacity"]), int(r["dropped"]))
            for r in cur.execute(query).fetchall()
        )

    def _drops(self, buckets: tuple[Bucket, ...]) -> int:
        """Drops within the SLO window, from the totals probed so far (a total that went down,
        a bucket reset or removed, starts again from there)."""
        now, total = self._clock(), sum(b.dropped for b in buckets)
        samples = self._dropped
        if samples and total < samples[-1][1]:
            samples.clear()
        samples.append((now, total))
        start = now - self.settings.window
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()
        return total - samples[0][1]

    def _routes(self, cur: psycopg.Cursor[Any]) -> dict[str, tuple[str, ...]]:
        schema = self.settings.schema
        columns = cur.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " AND c.relname = 'callback_router' AND a.attnum > 0 AND NOT a.attisdropped",
            (schema,),
        ).fetchall()
        has_enabled = any(row["attname"] == "enabled" for row in columns)
        query = sqlfiles.template("probes/routes.sql").format(
            schema=sql.Identifier(schema),
            enabled=sql.SQL("r.enabled") if has_enabled else sql.SQL("true"),
        )
        routes = cur.execute(query, {"schema": schema}).fetchall()
        triggers = cur.execute(
            sqlfiles.template("probes/routed_triggers.sql"), {"schema": schema}
        ).fetchall()
        return route_problems(routes, [str(r["event_type"]) for r in triggers], self.settings)

    def _handlers(self, cur: psycopg.Cursor[Any]) -> tuple[HandlerStats, ...]:
        rows = cur.execute(
            sqlfiles.template("probes/handlers.sql"), {"schema": self.settings.schema}
        ).fetchall()
        return tuple(
            HandlerStats(str(r["function"]), int(r["calls"]), float(r["seconds"])) for r in rows
        )

    # -- saying it once ----------------------------------------------------------------------
    def _say(self, sources: tuple[SourceState, ...]) -> None:
        for source in sources:
            said = (source.state, source.detail)
            if self._said.get(source.name) == said:
                continue
            self._said[source.name] = said
            if source.state == "unreadable":
                log.warning("mechanism: %s is not readable: %s", source.name, source.detail)
            elif source.state == "absent":
                log.info("mechanism: %s is off: %s", source.name, source.detail)
            else:
                extra = f" ({source.detail})" if source.detail else ""
                log.info("mechanism: reading %s%s", source.name, extra)


def route_problems(
    routes: Sequence[Mapping[str, Any]], routed: Sequence[str], settings: Settings
) -> dict[str, tuple[str, ...]]:
    """Event types by problem: routed by a trigger but with no route, a disabled route, a
    handler function that does not exist, more retries than callbacks.max_retries."""
    known = {str(r["event_type"]) for r in routes}
    problems: dict[str, list[str]] = {
        "no_route": sorted(set(routed) - known),
        "disabled": [],
        "missing_handler": [],
        "retries_above_policy": [],
    }
    for route in routes:
        name = str(route["event_type"])
        if not route["enabled"]:
            problems["disabled"].append(name)
        if route["missing_handler"]:
            problems["missing_handler"].append(name)
        allowed = settings.event_retries.get(name, settings.max_retries)
        retries = route["max_retries"]
        if retries is not None and str(retries).isdigit() and int(retries) > allowed:
            problems["retries_above_policy"].append(name)
    return {problem: tuple(names) for problem, names in problems.items()}
