"""Counting rows the way a user would check cbmon: an independent SQL query over the same rows."""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from typing import Any

import psycopg

from cbmon.domain import BUCKETS
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from tests.conftest import PgSchema

INSERT = "INSERT INTO callback_logs (event_type, status, execution_time) VALUES (%s, %s, %s)"


def poll_into(poller: Poller, state: Store, dsn_conn: psycopg.Connection[Any]) -> None:
    """Poll until caught up, feeding the state as `cbmon serve` does."""
    while True:
        result = poller.poll(dsn_conn)
        state.apply(result, state.label(result), 0.001)
        if result.caught_up:
            return


def poll_until_no_gaps(poller: Poller, state: Store, conn: psycopg.Connection[Any]) -> None:
    """Gaps close once every transaction of the database that was running when they were
    fenced has ended; another session's long transaction can hold that back for a moment."""
    deadline = time.monotonic() + 20
    while poller.logs.open_gap_ids and time.monotonic() < deadline:
        poll_into(poller, state, conn)
        time.sleep(0.05)


def truth(pg: PgSchema, after_id: int) -> dict[str, dict[str, Any]]:
    """Ground truth by an independent SQL query over every row above ``after_id``."""
    bucket_sql = ", ".join(
        f"count(*) FILTER (WHERE execution_time >= 0 AND execution_time <= 3600000 "
        f"AND execution_time <= {bound * 1000})"
        for bound in BUCKETS
    )
    rows = pg.conn.execute(
        f"""
        SELECT coalesce(nullif(event_type, ''), 'unknown'),
               count(*),
               count(*) FILTER (WHERE status IS DISTINCT FROM 'COMPLETED'),
               count(*) FILTER (WHERE execution_time >= 0 AND execution_time <= 3600000),
               coalesce(sum(execution_time) FILTER (
                   WHERE execution_time >= 0 AND execution_time <= 3600000), 0) / 1000.0,
               {bucket_sql}
        FROM callback_logs WHERE id > %s GROUP BY 1
        """,
        [after_id],
    ).fetchall()
    return {
        row[0]: {
            "attempts": row[1],
            "failures": row[2],
            "observed": row[3],
            "sum": float(row[4]),
            "buckets": list(row[5:]),
        }
        for row in rows
    }


def assert_matches(
    state: Store, expected: dict[str, dict[str, Any]], leave_out: Collection[str] = ()
) -> None:
    """``state``'s totals equal ``expected`` (from :func:`truth`), event types in
    ``leave_out`` aside."""
    view = state.view()
    got = {label: t for label, t in view.figures.items() if t.attempts and label not in leave_out}
    assert sorted(got) == sorted(expected)
    for label, want in expected.items():
        totals = got[label]
        assert totals.attempts == want["attempts"], label
        assert totals.failures == want["failures"], label
        assert totals.observed == want["observed"], label
        assert math.isclose(totals.sum_seconds, want["sum"], rel_tol=1e-9, abs_tol=1e-9)
        assert list(totals.buckets) == want["buckets"], label


def max_id(pg: PgSchema) -> int:
    row = pg.conn.execute("SELECT coalesce(max(id), 0) FROM callback_logs").fetchone()
    assert row is not None
    return int(row[0])
