"""A bounded randomized run: concurrent writers with rollbacks, savepoints, long transactions
and (where the server allows them) prepared transactions, read by one poller, on the private
quiet cluster and on the shared server. The totals must equal an independent SQL query."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from cbmon.config import Config
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from tests.conftest import PgSchema
from tests.support.counting import (
    INSERT,
    assert_matches,
    max_id,
    poll_into,
    poll_until_no_gaps,
    truth,
)


def _row(rng: random.Random) -> tuple[Any, ...]:
    return (
        rng.choice(["a", "b", "c", ""]),
        rng.choice(["COMPLETED"] * 9 + ["FAILED", "TIMEOUT"]),
        rng.choice([None, rng.uniform(0, 700), 150.0, 500.0, -1.0]),
    )


def writer(pg: PgSchema, seed: int, stop: threading.Event) -> None:
    """Transactions of 1 to 8 rows; some use savepoints and roll part of their work back, some
    stay open across many polls, some roll back entirely."""
    rng = random.Random(seed)
    with pg.connect(autocommit=False) as conn:
        for _ in range(25):
            for _ in range(rng.randint(1, 8)):
                if rng.random() < 0.2:
                    conn.execute("SAVEPOINT s")
                    conn.execute(INSERT, _row(rng))
                    conn.execute("ROLLBACK TO SAVEPOINT s" if rng.random() < 0.5 else "RELEASE s")
                else:
                    conn.execute(INSERT, _row(rng))
            long = rng.random() < 0.05
            stop.wait(rng.uniform(0.2, 0.5) if long else rng.uniform(0, 0.03))
            if rng.random() < 0.15:
                conn.rollback()
            else:
                conn.commit()


def two_phase_writer(pg: PgSchema, seed: int, stop: threading.Event) -> None:
    """Prepared transactions hold no virtual transaction id between PREPARE and COMMIT."""
    rng = random.Random(seed)
    with pg.connect(autocommit=False) as conn:
        for number in range(15):
            xid = conn.xid(seed, f"cbmon-test-{seed}-{number}", "q")
            conn.tpc_begin(xid)
            conn.execute(INSERT, _row(rng))
            conn.tpc_prepare()
            stop.wait(rng.uniform(0, 0.1))
            if rng.random() < 0.3:
                conn.tpc_rollback()
            else:
                conn.tpc_commit()


def run(
    pg: PgSchema,
    two_phase: bool,
    *,
    config: Config | None = None,
    read: Callable[[], psycopg.Connection[Any]] | None = None,
    caught_up: Callable[[], None] = lambda: None,
) -> None:
    """Writers on ``pg``; polls on what ``read`` opens (``pg`` itself by default), with
    ``config``; ``caught_up`` waits, after the writers, until the polled server has all."""
    config = config or pg.config(reader={"batch_size": 50})
    read = read or pg.connect
    poller, state = Poller(config), Store(500)
    with read() as conn:
        poll_into(poller, state, conn)
    start = max_id(pg)
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(writer, pg, seed, stop)) for seed in range(8)]
    if two_phase:
        threads += [
            threading.Thread(target=guarded, args=(two_phase_writer, pg, 100 + seed, stop))
            for seed in range(2)
        ]
    for thread in threads:
        thread.start()
    with read() as conn:
        while any(thread.is_alive() for thread in threads):
            poll_into(poller, state, conn)
        for thread in threads:
            thread.join()
        caught_up()
        poll_until_no_gaps(poller, state, conn)
    assert not errors
    assert_matches(state, truth(pg, start))
    assert poller.logs.open_gap_ids == 0


@pytest.mark.slow
def test_randomized_on_the_quiet_cluster(quiet_pg: PgSchema) -> None:
    run(quiet_pg, two_phase=True)


@pytest.mark.slow  # the quiet cluster's run stays fast
def test_randomized_on_the_shared_server(pg: PgSchema) -> None:
    row = pg.conn.execute("SHOW max_prepared_transactions").fetchone()
    run(pg, two_phase=row is not None and int(row[0]) > 0)


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_prepared_transaction_keeps_its_id_watched(quiet_pg: PgSchema, outcome: str) -> None:
    """Between PREPARE and COMMIT PREPARED the transaction has no session; its id is still
    watched until it ends either way."""
    poller, state = Poller(quiet_pg.config()), Store(500)
    with quiet_pg.connect() as conn, quiet_pg.connect(autocommit=False) as prepared:
        poll_into(poller, state, conn)
        start = max_id(quiet_pg)
        xid = prepared.xid(1, "cbmon-prepared", "q")
        prepared.tpc_begin(xid)
        prepared.execute(INSERT, ("prepared", "COMPLETED", 12.0))
        prepared.tpc_prepare()
        quiet_pg.conn.execute(INSERT, ("after", "COMPLETED", 13.0))
        for _ in range(4):
            poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 1
        if outcome == "commit":
            prepared.tpc_commit()
        else:
            prepared.tpc_rollback()
        poll_until_no_gaps(poller, state, conn)
    assert_matches(state, truth(quiet_pg, start))
    assert ("prepared" in state.view().figures) is (outcome == "commit")
