"""The reference worker delivering a test's queued callbacks to a real receiver."""

from __future__ import annotations

import threading

from cbmon.delivery.retry import RetryPolicy
from cbmon.reference.worker import Worker, WorkerOptions
from tests.conftest import PgSchema
from tests.support.processes import wait_for


def waiting(pg: PgSchema) -> int:
    """Queued callbacks not settled yet (delivered or dead)."""
    row = pg.conn.execute(
        "SELECT count(*) FROM callback_queue WHERE processed_at IS NULL"
    ).fetchone()
    assert row is not None
    return int(row[0])


def deliver(pg: PgSchema, url: str) -> None:
    """The reference worker delivers to ``url`` until every queued callback is settled."""
    stop = threading.Event()
    options = WorkerOptions(
        default_url=url, poll_interval=0.05, retry=RetryPolicy(initial=0.01, cap=300.0)
    )
    worker = Worker(pg.dsn, schema=pg.name, options=options, stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: waiting(pg) == 0, timeout=60)
    finally:
        stop.set()
        thread.join(10)
        worker.close()
