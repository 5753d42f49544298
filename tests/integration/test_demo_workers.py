"""The demo's stopped worker against a real PostgreSQL and a real receiver: its callback sticks
past the lease, another reference worker delivers it again, and when it comes back its late
record is the duplicate serve and the report count, each equal to SQL over the same rows."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cbmon.delivery.retry import RetryPolicy
from cbmon.demo.workers import FreezingWorker, LeasedOptions
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.reference.worker import Worker, WorkerOptions
from cbmon.report import build_report
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest
from tests.conftest import PgSchema
from tests.support.counting import poll_into
from tests.support.processes import wait_for
from tests.support.receiver import receiver

STUCK = (
    "SELECT count(*) FROM callback_queue "
    "WHERE processed_at IS NULL AND locked_until IS NOT NULL AND locked_until <= now()"
)
# Successful attempts beyond the first of each callback, by definition.
DUPLICATES = """
SELECT coalesce(sum(n - 1), 0) FROM (
    SELECT count(*) AS n FROM callback_logs
    WHERE status = 'COMPLETED' AND queue_id IS NOT NULL GROUP BY queue_id
) AS delivered
"""


def one(pg: PgSchema, query: str) -> int:
    row = pg.conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(10)
        worker.close()


@pytest.mark.slow  # waits out a lease
def test_a_worker_stopped_mid_lease_leaves_a_stuck_callback_then_a_duplicate(
    pg: PgSchema,
) -> None:
    frozen = threading.Event()
    frozen.set()
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, receiver() as hook:
        poll_into(poller, state, conn)
        leased = LeasedOptions(default_url=hook.url, poll_interval=0.05, batch_size=1, lease=1.0)
        stopped = FreezingWorker(
            pg.dsn,
            frozen=frozen.is_set,
            schema=pg.name,
            options=leased,
            stop=threading.Event(),
            name="stopped",
        )
        with running(stopped):
            pg.conn.execute("INSERT INTO callback_queue (event_type) VALUES ('pay')")
            held = wait_for(lambda: stopped.holding, timeout=20)
            # Delivered, not recorded: in flight, then stuck once the lease runs out.
            wait_for(lambda: one(pg, STUCK) == 1, timeout=20)
            poll_into(poller, state, conn)
            assert state.view().queue_states is not None
            assert state.view().queue_states["stuck"] == one(pg, STUCK) == 1  # type: ignore[index]
            other = Worker(
                pg.dsn,
                schema=pg.name,
                options=WorkerOptions(
                    default_url=hook.url, poll_interval=0.05, retry=RetryPolicy()
                ),
                stop=threading.Event(),
                name="other",
            )
            with running(other):
                wait_for(
                    lambda: (
                        one(pg, "SELECT count(*) FROM callback_queue WHERE outcome IS NULL") == 0
                    ),
                    timeout=20,
                )
            frozen.clear()  # the stopped worker comes back and records its delivery
            wait_for(lambda: one(pg, DUPLICATES) == 1, timeout=20)
        poll_into(poller, state, conn)
    assert [r.headers.get("webhook-id") for r in hook.requests] == [f"msg_{held}"] * 2
    assert stopped.stalls == 1
    callbacks = state.view().figures["pay"].callbacks
    assert (callbacks.delivered, callbacks.duplicates) == (1, one(pg, DUPLICATES))
    outcome = pg.conn.execute("SELECT outcome, attempts FROM callback_queue").fetchone()
    assert outcome == ("delivered", 2)  # the second worker's attempt settled it
    report = build_report(
        pg.config(),
        ReportRequest(period=PeriodRequest(since=3600.0)),
        progress=Progress.silent(io.StringIO()),
        statement_timeout=30.0,
    )
    assert report.overall.figures.callbacks.duplicates == one(pg, DUPLICATES) == 1
    assert report.overall.figures.callbacks.delivered == 1
