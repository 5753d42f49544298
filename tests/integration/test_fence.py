"""Exact from a hot standby: gaps fenced by the primary's transactions, and given up only once
the standby has replayed past the primary's WAL position at that listing.

Writers commit on a private primary; cbmon polls its streaming standby. Every count is compared
with an independent SQL count over the same rows.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from cbmon.config import Config
from cbmon.db.connect import connect
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.web.collector import CallbackCollector
from tests.conftest import Replicated
from tests.integration.test_reader_randomized import run
from tests.support.counting import INSERT, assert_matches, max_id, poll_into, truth

pytestmark = pytest.mark.standby


def standby_config(pair: Replicated, *, primary: bool = True, **overrides: Any) -> Config:
    database = {"primary_dsn": pair.primary.dsn()} if primary else {}
    return pair.pg.config(dsn=pair.standby_dsn(), database=database, **overrides)


@contextmanager
def on_standby(pair: Replicated) -> Iterator[psycopg.Connection[Any]]:
    conn = connect(pair.standby_dsn())
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def replay_paused(pair: Replicated) -> Iterator[None]:
    with psycopg.connect(pair.standby_dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            admin.execute("SELECT pg_wal_replay_resume()")


def settle(pair: Replicated, poller: Poller, state: Store, conn: psycopg.Connection[Any]) -> None:
    """Everything replayed, then polls until no gap is open (bounded)."""
    pair.replayed()
    for _ in range(200):
        poll_into(poller, state, conn)
        if not poller.logs.open_gap_ids:
            return
        time.sleep(0.05)  # a replay or a writer's commit still on its way
    raise AssertionError(f"gaps still open: {poller.logs.gaps}")


@pytest.mark.slow
def test_a_row_committed_polls_later_is_counted_from_the_standby(replicated: Replicated) -> None:
    """The reported defect: A takes an id, B a higher one and commits, A commits several polls
    later. The standby's pg_locks never shows A; the primary's does."""
    pg = replicated.pg
    poller, state = Poller(standby_config(replicated)), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("late", "FAILED", 120.0))  # takes the lower id, commits last
        pg.conn.execute(INSERT, ("early", "COMPLETED", 80.0))
        replicated.replayed()
        for _ in range(5):
            poll_into(poller, state, conn)
            assert poller.logs.open_gap_ids == 1
        slow.commit()
        settle(replicated, poller, state, conn)
    assert state.view().figures["late"].attempts == 1
    assert_matches(state, truth(pg, start))
    assert poller.fences.mode == "primary_dsn"


def test_a_commit_the_standby_has_not_replayed_keeps_its_gap(replicated: Replicated) -> None:
    """The writer has ended on the primary, so the primary's listing lacks it, but the standby
    has not replayed its commit yet: giving the gap up then would lose the row."""
    pg = replicated.pg
    poller, state = Poller(standby_config(replicated)), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("late", "COMPLETED", 10.0))
        pg.conn.execute(INSERT, ("early", "COMPLETED", 11.0))
        replicated.replayed()
        poll_into(poller, state, conn)
        with replay_paused(replicated):
            slow.commit()
            pg.conn.execute(INSERT, ("more", "COMPLETED", 12.0))  # WAL moves on meanwhile
            for _ in range(6):
                poll_into(poller, state, conn)
                assert poller.logs.open_gap_ids == 1, "a gap was given up before its replay"
        settle(replicated, poller, state, conn)
    assert state.view().figures["late"].attempts == 1
    assert_matches(state, truth(pg, start))


def test_a_rolled_back_id_is_given_up_from_the_standby(replicated: Replicated) -> None:
    pg = replicated.pg
    poller, state = Poller(standby_config(replicated)), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("never", "COMPLETED", 10.0))
        pg.conn.execute(INSERT, ("kept", "COMPLETED", 11.0))
        replicated.replayed()
        poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 1
        slow.rollback()
        settle(replicated, poller, state, conn)
    assert "never" not in state.view().figures
    assert_matches(state, truth(pg, start))


@pytest.mark.slow
def test_writers_in_every_order_read_from_the_standby(replicated: Replicated) -> None:
    """Three open transactions on the primary, their commits and rollbacks shuffled, one held
    across many polls, polls on the standby between every step, replay paused now and then."""
    pg = replicated.pg
    rng = random.Random(19)
    poller, state = Poller(standby_config(replicated)), Store(500)
    with on_standby(replicated) as conn:
        poll_into(poller, state, conn)
        start = max_id(pg)
        writers = [pg.connect(autocommit=False) for _ in range(3)]
        try:
            for round_number in range(12):
                order = list(itertools.chain.from_iterable([w] * 2 for w in range(3)))
                rng.shuffle(order)
                held = rng.randrange(3) if round_number % 4 == 0 else None
                steps = [0, 0, 0]
                for index in order:
                    if steps[index] == 0:
                        writers[index].execute(INSERT, (f"w{index}", "COMPLETED", 5.0 * index))
                    elif index != held:
                        (writers[index].commit if rng.random() < 0.8 else writers[index].rollback)()
                    steps[index] += 1
                    if rng.random() < 0.2:
                        with replay_paused(replicated):
                            poll_into(poller, state, conn)
                    poll_into(poller, state, conn)
                for _ in range(3):
                    poll_into(poller, state, conn)
                if held is not None:
                    writers[held].commit()
        finally:
            for writer in writers:
                writer.close()
        settle(replicated, poller, state, conn)
    assert_matches(state, truth(pg, start))


@pytest.mark.slow  # writers racing for seconds; the other standby tests stay fast
def test_concurrent_writers_read_from_the_standby(replicated: Replicated) -> None:
    """The randomized run (savepoints, long transactions, rollbacks, two-phase commits) with
    every poll on the standby."""
    run(
        replicated.pg,
        two_phase=True,
        config=standby_config(replicated, reader={"batch_size": 50}),
        read=lambda: connect(replicated.standby_dsn()),
        caught_up=replicated.replayed,
    )


def test_without_the_primary_gaps_are_held_then_given_up_and_it_says_so(
    replicated: Replicated,
) -> None:
    pg = replicated.pg
    now = [1000.0]
    config = standby_config(replicated, primary=False, reader={"standby_gap_hold": "10m"})
    poller, state = Poller(config, clock=lambda: now[0]), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        assert poller.fences.mode == "none"
        slow.execute(INSERT, ("late", "COMPLETED", 10.0))
        pg.conn.execute(INSERT, ("early", "COMPLETED", 11.0))
        replicated.replayed()
        poll_into(poller, state, conn)
        slow.rollback()
        now[0] += 599  # within the hold: kept, whatever the primary did
        poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 1
        now[0] += 2
        poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 0
    view = state.view()
    assert view.expired_gaps["logs"] == 1
    assert view.topology is not None
    assert view.topology.standby
    assert _sample(state, "cbmon_reader_assumption_ok", table="logs", check="standby_fence") == 0
    assert _sample(state, "cbmon_reader_gaps_expired_total", table="logs") == 1
    assert _sample(state, "cbmon_database_in_recovery") == 1


def test_an_unreachable_primary_holds_gaps_and_never_drops_them(replicated: Replicated) -> None:
    pg = replicated.pg
    now = [0.0]
    config = pg.config(
        dsn=replicated.standby_dsn(),
        database={"primary_dsn": "host=127.0.0.1 port=1 dbname=postgres connect_timeout=1"},
        reader={"standby_gap_hold": "1s"},
    )
    poller, state = Poller(config, clock=lambda: now[0]), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("late", "COMPLETED", 10.0))
        pg.conn.execute(INSERT, ("early", "COMPLETED", 11.0))
        replicated.replayed()
        for _ in range(3):
            poll_into(poller, state, conn)
            now[0] += 3600  # far past any hold: an unreachable primary is not "no primary"
        assert poller.fences.mode == "unreachable"
        assert poller.logs.open_gap_ids == 1
        slow.commit()
        replicated.replayed()
        poll_into(poller, state, conn)
    assert state.view().figures["late"].attempts == 1
    assert_matches(state, truth(pg, start))


def test_a_primary_dsn_reaching_a_standby_is_refused(replicated: Replicated) -> None:
    pg = replicated.pg
    config = pg.config(
        dsn=replicated.standby_dsn(), database={"primary_dsn": replicated.standby_dsn()}
    )
    poller, state = Poller(config), Store(500)
    with on_standby(replicated) as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        slow.execute(INSERT, ("late", "COMPLETED", 10.0))
        pg.conn.execute(INSERT, ("early", "COMPLETED", 11.0))
        replicated.replayed()
        poll_into(poller, state, conn)
        slow.rollback()
        poll_into(poller, state, conn)
        assert poller.fences.mode == "unreachable"
        assert poller.logs.open_gap_ids == 1


def _sample(state: Store, name: str, **labels: str) -> float | None:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(state))
    return registry.get_sample_value(name, labels)
