"""The incremental poller is exact: totals equal SQL over the same rows, in any commit order."""

from __future__ import annotations

import math

import psycopg
import pytest

from cbmon.domain import BUCKETS
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


def test_counts_start_at_the_tail_and_then_every_new_row(pg: PgSchema) -> None:
    pg.conn.execute(INSERT, ("history", "COMPLETED", 10.0))
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        assert state.view().figures == {}
        start = max_id(pg)
        for i in range(50):
            status = "COMPLETED" if i % 5 else "FAILED"
            pg.conn.execute(INSERT, ("order_created", status, float(i * 7)))
        poll_into(poller, state, conn)
    assert_matches(state, truth(pg, start))
    assert "history" not in state.view().figures


def test_row_committing_after_a_higher_id_was_read_is_counted_once(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("late", "FAILED", 120.0))  # takes the lower id, commits last
        pg.conn.execute(INSERT, ("early", "COMPLETED", 80.0))
        poll_into(poller, state, conn)
        assert state.view().figures["early"].attempts == 1
        assert "late" not in state.view().figures
        assert poller.logs.open_gap_ids == 1
        poll_into(poller, state, conn)  # the open transaction keeps the gap watched
        assert poller.logs.open_gap_ids == 1
        slow.commit()
        poll_into(poller, state, conn)
        poll_until_no_gaps(poller, state, conn)
    assert_matches(state, truth(pg, start))
    assert state.view().figures["late"].attempts == 1
    assert poller.logs.open_gap_ids == 0


def test_a_gap_deep_below_many_new_rows_is_found(pg: PgSchema) -> None:
    """The search for new gaps starts at the top of the range and widens until it has found
    as many missing ids as the range lacks, so one far down is found too."""
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(INSERT, ("deep", "COMPLETED", 5.0))
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "SELECT 'bulk', 'COMPLETED', 1 FROM generate_series(1, 50000)"
        )
        slow_two = pg.connect(autocommit=False)
        slow_two.execute(INSERT, ("top", "COMPLETED", 5.0))
        pg.conn.execute(INSERT, ("bulk", "COMPLETED", 1.0))
        poll_into(poller, state, conn)
        assert [(g.low - start, g.size) for g in poller.logs.gaps] == [(1, 1), (50002, 1)]
        slow.commit()
        slow_two.commit()
        slow_two.close()
        poll_until_no_gaps(poller, state, conn)
    assert_matches(state, truth(pg, start))


def test_rolled_back_ids_are_given_up(quiet_pg: PgSchema) -> None:
    """On the quiet cluster: on the shared server another session's long transaction would
    keep the gap fenced (rightly) for as long as it runs."""
    pg = quiet_pg
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as aborted:
        poll_into(poller, state, conn)
        aborted.execute(INSERT, ("never", "COMPLETED", 1.0))
        pg.conn.execute(INSERT, ("kept", "COMPLETED", 1.0))
        poll_into(poller, state, conn)
        aborted.rollback()
        poll_into(poller, state, conn)  # fences the gap: nothing that could fill it runs
        poll_until_no_gaps(poller, state, conn)
        assert poller.logs.open_gap_ids == 0
    assert "never" not in state.view().figures


def test_bad_rows_are_counted_sensibly(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        start = max_id(pg)
        # event_type and status are NOT NULL in the reference schema; user tables may not be.
        pg.conn.execute("ALTER TABLE callback_logs ALTER event_type DROP NOT NULL")
        pg.conn.execute("ALTER TABLE callback_logs ALTER status DROP NOT NULL")
        for event_type, status, duration in [
            ("x", "COMPLETED", None),
            ("x", "COMPLETED", -5.0),
            ("x", "COMPLETED", float("nan")),
            ("x", "COMPLETED", float("inf")),
            ("x", "COMPLETED", float("-inf")),
            ("x", "COMPLETED", 1e12),
            ("x", "completed", 150.0),
            ("x", None, 150.0),
            (None, "COMPLETED", 200.0),
            ("", "COMPLETED", 0.0),
        ]:
            pg.conn.execute(INSERT, (event_type, status, duration))
        poll_into(poller, state, conn)
    view = state.view()
    x = view.figures["x"]
    assert (x.attempts, x.failures, x.observed, x.invalid) == (8, 2, 2, 5)
    assert x.buckets[BUCKETS.index(0.15)] == 2  # exactly 150 ms is in the le=0.15 bucket
    unknown = view.figures["unknown"]
    assert (unknown.attempts, unknown.observed, unknown.failures) == (2, 2, 0)
    assert_matches(state, truth(pg, start))


def test_event_types_beyond_the_cap_fold_into_other(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(3)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        for name in ["e1", "e2", "e3", "e4", "e5", "e4"]:
            pg.conn.execute(INSERT, (name, "COMPLETED", 10.0))
        poll_into(poller, state, conn)
    view = state.view()
    assert sorted(view.figures) == ["e1", "e2", "e3", "other"]
    assert view.figures["other"].attempts == 3
    assert view.folded_total == 2


def test_errors_and_queue(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        pg.conn.execute(
            "INSERT INTO callback_errors (event_type, error_message) "
            "SELECT 'pay', 'timeout' FROM generate_series(1, 7)"
        )
        pg.conn.execute(
            "INSERT INTO callback_queue (event_type, created_at, processed_at) VALUES "
            "('a', now() - interval '90 seconds', NULL), ('a', now() - interval '1 hour', now()),"
            "('b', now() - interval '10 seconds', NULL)"
        )
        poll_into(poller, state, conn)
    view = state.view()
    assert view.figures["pay"].errors == 7
    assert view.backlog == 2
    assert 89 <= view.oldest_age_seconds < 120


@pytest.mark.parametrize("unit", ["ms", "s"])
def test_custom_table_and_column_names(pg: PgSchema, unit: str) -> None:
    pg.conn.execute(
        """CREATE TABLE "Attempt Log" ("Id" bigserial PRIMARY KEY, kind text, outcome text,
           took numeric, at timestamptz DEFAULT now())"""
    )
    config = pg.config(
        tables={
            "logs": {
                "schema": pg.name,
                "table": "Attempt Log",
                "id": "Id",
                "event_type": "kind",
                "status": "outcome",
                "execution_time": "took",
                "created_at": "at",
                "success_statuses": ["ok", "done"],
                "execution_time_unit": unit,
            },
            "errors": {"schema": pg.name},
            "queue": {"schema": pg.name},
        }
    )
    poller, state = Poller(config), Store(500)
    scale = 1000 if unit == "ms" else 1
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        pg.conn.execute(
            'INSERT INTO "Attempt Log" (kind, outcome, took) VALUES '
            "('k', 'ok', %s), ('k', 'done', %s), ('k', 'bad', %s)",
            [0.1 * scale, 0.15 * scale, 0.6 * scale],
        )
        poll_into(poller, state, conn)
    k = state.view().figures["k"]
    assert (k.attempts, k.failures, k.observed) == (3, 1, 3)
    assert k.buckets[BUCKETS.index(0.15)] == 2
    assert math.isclose(k.sum_seconds, 0.85)


def test_a_poll_that_outran_the_statement_timeout_halves_the_batch(pg: PgSchema) -> None:
    """A backlog on a slow server drains in smaller steps instead of timing out for ever: each
    timed-out poll halves the batch (never below 1000 ids), and the rows are read exactly."""
    poller, state = Poller(pg.config(reader={"batch_size": 8000})), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as locker:
        poll_into(poller, state, conn)
        start = max_id(pg)
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time)"
            " SELECT 'bulk', 'COMPLETED', 5 FROM generate_series(1, 2500)"
        )
        conn.execute("SET statement_timeout = '100ms'")
        conn.commit()
        locker.execute("LOCK TABLE callback_logs IN ACCESS EXCLUSIVE MODE")  # a slow server
        sizes = []
        for _ in range(4):
            with pytest.raises(psycopg.errors.QueryCanceled):
                poller.poll(conn)
            sizes.append(poller.logs.batch_size)
        locker.rollback()
        assert sizes == [4000, 2000, 1000, 1000]
        assert state.view().figures == {}  # a failed poll counts nothing
        conn.execute("SET statement_timeout = 0")
        conn.commit()
        first = poller.poll(conn)
        assert first.lag_rows["logs"] == 1500  # 1000 ids read, the rest left for later polls
        state.apply(first, state.label(first), 0.001)
        poll_into(poller, state, conn)
    assert_matches(state, truth(pg, start))


def test_a_poll_failing_otherwise_keeps_the_batch(pg: PgSchema) -> None:
    poller = Poller(pg.config(reader={"batch_size": 8000}))
    with pg.connect() as conn:
        poller.poll(conn)
        pg.conn.execute("ALTER TABLE callback_logs RENAME TO callback_logs_away")
        try:
            with pytest.raises(psycopg.errors.UndefinedTable):
                poller.poll(conn)
        finally:
            pg.conn.execute("ALTER TABLE callback_logs_away RENAME TO callback_logs")
    assert poller.logs.batch_size == 8000
