"""Rows inserted but not committed cost an idle poll nothing that grows with them: their ids are
read as gaps, read once more to fence them, then only watched at the cost of listing the
running transactions, until the transaction commits or rolls back.

Work is measured as the server counts it: the index entries the primary key's index handed
to cbmon's session (``pg_stat_user_indexes.idx_tup_read``, which counts entries whose rows
are not visible too). On the private quiet cluster, so that no other session's transactions
sit on the fences."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import psycopg
import pytest

from cbmon.ingest.poller import HISTORY_TRIES, Poller
from cbmon.ingest.store import Store
from tests.conftest import PgSchema
from tests.support.counting import assert_matches, max_id, poll_into, truth

INVISIBLE = 300_000
BULK = (
    "INSERT INTO callback_logs (event_type, status, execution_time) "
    "SELECT 'bulk', CASE WHEN g %% 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, g %% 500 "
    "FROM generate_series(1, %s) AS g"
)
ONE = (
    "INSERT INTO callback_logs (event_type, status, execution_time) VALUES ('one', 'COMPLETED', 5)"
)


def entries_read(pg: PgSchema, polling: psycopg.Connection[Any]) -> int:
    """Index entries of the log's primary key read so far, every session's stats flushed."""
    polling.autocommit = True
    polling.execute("SELECT pg_stat_force_next_flush()")  # reported as the session idles
    row = pg.conn.execute(
        "SELECT idx_tup_read FROM pg_stat_user_indexes "
        "WHERE schemaname = %s AND indexrelname = 'callback_logs_pkey'",
        [pg.name],
    ).fetchone()
    assert row is not None
    return int(row[0])


def idle_cost(pg: PgSchema, poller: Poller, state: Store, conn: psycopg.Connection[Any]) -> int:
    """Index entries read by three idle polls, each."""
    before = entries_read(pg, conn)
    for _ in range(3):
        poll_into(poller, state, conn)
    return (entries_read(pg, conn) - before) // 3


@pytest.mark.slow  # 300k rows held open
def test_an_idle_poll_does_not_walk_rows_an_open_transaction_holds(quiet_pg: PgSchema) -> None:
    pg = quiet_pg
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as bulk:
        pg.conn.execute(ONE)
        poll_into(poller, state, conn)
        start = max_id(pg)
        assert idle_cost(pg, poller, state, conn) <= 10
        bulk.execute(BULK, [INVISIBLE])
        poll_into(poller, state, conn)  # reads the new ids once: they are gaps now
        assert poller.logs.open_gap_ids == INVISIBLE
        poll_into(poller, state, conn)  # and once more, under the snapshot that fences them
        assert poller.logs.gap_ids_read == INVISIBLE
        idle = idle_cost(pg, poller, state, conn)
        assert idle <= 10
        assert poller.logs.gap_ids_read == 0
        # Without the sequence to tell how far ids went, the same idle poll walks them all.
        blind = Poller(pg.config())
        poll_into(blind, Store(500), conn)
        blind.logs.source = dataclasses.replace(blind.logs.source, sequence=None)
        blind.logs.high_water = start  # as if it had read up to the open transaction
        blind.logs.gaps = []
        assert idle_cost(pg, blind, Store(500), conn) >= INVISIBLE
        # Rows committed above them are counted; the open ones stay unread.
        pg.conn.execute(ONE)
        poll_into(poller, state, conn)
        assert state.view().figures["one"].attempts == 1
        assert idle_cost(pg, poller, state, conn) <= 10
        bulk.commit()
        # Counted exactly, in polls of at most batch_size gap ids each.
        poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 0
    assert_matches(state, truth(pg, start))
    assert state.view().figures["bulk"].attempts == INVISIBLE


@pytest.mark.slow
def test_rolled_back_rows_are_given_up_and_cost_nothing_after(quiet_pg: PgSchema) -> None:
    pg = quiet_pg
    poller, state = Poller(pg.config(reader={"batch_size": 50_000})), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as bulk:
        pg.conn.execute(ONE)
        poll_into(poller, state, conn)
        start = max_id(pg)
        bulk.execute(BULK, [INVISIBLE // 3])
        polls = 0
        while True:  # a read is at most batch_size ids: two polls, each bounded
            polls += 1
            if poller.poll(conn).caught_up:
                break
        assert polls == -(-(INVISIBLE // 3) // 50_000)
        bulk.rollback()
        pg.conn.execute(ONE)
        poll_into(poller, state, conn)
        poll_into(poller, state, conn)
        assert poller.logs.open_gap_ids == 0
        assert idle_cost(pg, poller, state, conn) <= 10
    assert_matches(state, truth(pg, start))
    assert "bulk" not in state.view().figures


@pytest.mark.slow
def test_a_history_that_outruns_the_statement_timeout_is_left_out_once(
    quiet_pg: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the window's history at start can outrun the statement timeout (millions of
    rows on the created_at index that no snapshot sees, a lock held on): after a few first
    polls that fail so, one line says it, and the next poll counts without that history
    instead of failing too."""
    pg = quiet_pg
    pg.conn.execute(ONE)
    poller, state = Poller(pg.config(), backfill=300.0), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as locker:
        conn.execute("SET statement_timeout = '200ms'")
        locker.execute("LOCK TABLE callback_logs IN ACCESS EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger="cbmon.ingest.poller"):
            for tries in range(1, HISTORY_TRIES + 1):
                with pytest.raises(psycopg.errors.QueryCanceled):
                    poller.poll(conn)
                assert len(caplog.records) == (1 if tries == HISTORY_TRIES else 0)
        locker.rollback()
        first = poller.poll(conn)
        assert first.history == ()
        pg.conn.execute(ONE)
        poll_into(poller, state, conn)
    assert state.view().figures["one"].attempts == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "statement_timeout" in line
