"""The mechanism's faults the demo's ``mechanism`` scenario causes, one phase at a time: a
token bucket drained by the traffic, a disabled route, a listener that stops reading, the
scheduler's job switched off (where pg_cron runs the reference job). Each is undone when its
phase ends, so the alerts it raises resolve."""

from __future__ import annotations

import logging
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from cbmon.db.connect import connect, first_line

log = logging.getLogger(__name__)

STUCK = "cbmon demo stuck listener"
# name -> (what causes it, what undoes it), on the demo's schema
SQL: dict[str, tuple[LiteralString, LiteralString]] = {
    "throttled": (
        "INSERT INTO {schema}.callback_limits (bucket_id, tokens, capacity, refill_per_second)"
        " VALUES ('order_created', 2, 2, 0.5)",
        "DELETE FROM {schema}.callback_limits WHERE bucket_id = 'order_created'",
    ),
    "unrouted": (
        "UPDATE {schema}.callback_router SET enabled = false WHERE event_type = 'order_shipped'",
        "UPDATE {schema}.callback_router SET enabled = true WHERE event_type = 'order_shipped'",
    ),
}


# cron.alter_job (pg_cron 1.3 and later), which the job's owner may call: the demo's user,
# who scheduled it.
JOB_ACTIVE: LiteralString = (
    "SELECT cron.alter_job(jobid, active := %s) FROM cron.job WHERE jobname = %s"
)


class Faults:
    def __init__(self, dsn: str, schema: str, job: str | None = None) -> None:
        """``job``: the scheduler's job of the reference mechanism, where pg_cron runs it."""
        self.dsn = dsn
        self.schema = sql.Identifier(schema)
        self.job = job
        self.current = ""
        self._stuck: psycopg.Connection[Any] | None = None

    def switch(self, conn: psycopg.Connection[Any], fault: str) -> None:
        """Undo the fault in place, if another, and cause ``fault`` ("" for none)."""
        if fault == self.current:
            return
        self._undo(conn)
        self.current = fault
        if fault in SQL:
            conn.execute(sql.SQL(SQL[fault][0]).format(schema=self.schema))
        elif fault == "job_disabled":
            if self.job is None:
                log.info(
                    "demo: no scheduler job to switch off here (pg_cron is not preloaded for "
                    "this database); the phase changes nothing"
                )
                return
            conn.execute(JOB_ACTIVE, (False, self.job))
        elif fault == "stuck_listener":
            # Listening, then idle in a transaction: it reads no notification, so every one
            # sent after it stays in the server's queue until the transaction ends.
            self._stuck = connect(self.dsn, application_name=STUCK, read_only=False)
            try:
                self._stuck.execute("LISTEN callback_queue")
            except psycopg.errors.FeatureNotSupported as exc:  # openGauss: no NOTIFY queue
                log.info("demo: no stuck listener here (%s)", first_line(exc))
                self.close()
                return
            self._stuck.autocommit = False
            self._stuck.execute("SELECT 1")

    def _undo(self, conn: psycopg.Connection[Any]) -> None:
        if self.current in SQL:
            conn.execute(sql.SQL(SQL[self.current][1]).format(schema=self.schema))
        elif self.current == "job_disabled" and self.job is not None:
            conn.execute(JOB_ACTIVE, (True, self.job))
        self.close()

    def close(self) -> None:
        if self._stuck is not None:
            try:
                self._stuck.close()
            except psycopg.Error as exc:
                log.debug("stuck listener: %s", first_line(exc))
            self._stuck = None
