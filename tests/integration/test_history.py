"""A table's history replaced under the reader (a truncate, a re-created table, an emptied one,
a failover that lost the last commits): the new history is counted exactly once, each reset is
counted and said, and what was counted before stays counted.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from cbmon.config import load_config
from cbmon.db.connect import connect
from cbmon.domain import Figures
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.reference import schema
from cbmon.web.collector import CallbackCollector
from tests.conftest import PgSchema
from tests.support.cluster import Cluster
from tests.support.counting import assert_matches, max_id, poll_into, truth

ROWS = (
    "INSERT INTO callback_logs (event_type, status, execution_time) "
    "SELECT %s, CASE WHEN g %% 7 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, g %% 300 "
    "FROM generate_series(1, %s) AS g"
)


def insert(conn: psycopg.Connection[Any], event_type: str, count: int) -> None:
    conn.execute(ROWS, (event_type, count))


def resets(state: Store, reason: str, table: str = "logs") -> float:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(state))
    value = registry.get_sample_value(
        "cbmon_reader_resets_total", {"table": table, "reason": reason}
    )
    return value or 0.0


def counted(state: Store) -> dict[str, Figures]:
    return {label: f for label, f in state.view().figures.items() if f.attempts}


@pytest.mark.parametrize("restart_identity", [True, False])
def test_truncate_then_rows_past_the_old_high_water_are_all_counted(
    pg: PgSchema, restart_identity: bool
) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        insert(pg.conn, "before", 50)
        poll_into(poller, state, conn)
        before = counted(state)["before"]
        restart = " RESTART IDENTITY" if restart_identity else ""
        pg.conn.execute(f"TRUNCATE callback_logs{restart}")
        insert(pg.conn, "after", 80)  # past the old high water of 50, between two polls
        poll_into(poller, state, conn)
        poll_into(poller, state, conn)
    assert counted(state)["before"] == before  # counters never go back
    assert_matches(state, truth(pg, 0), leave_out={"before"})
    assert resets(state, "truncate") == 1


def test_a_table_dropped_and_created_again_is_read_from_its_first_row(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        insert(pg.conn, "before", 30)
        poll_into(poller, state, conn)
    pg.conn.execute("DROP TABLE callback_logs CASCADE")
    schema.apply(pg.dsn, schema=pg.name, role=None)
    insert(pg.conn, "after", 45)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
    assert counted(state)["before"].attempts == 30
    assert_matches(state, truth(pg, 0), leave_out={"before"})
    assert resets(state, "recreate") == 1


def test_an_emptied_table_with_its_sequence_reset_is_read_again(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        insert(pg.conn, "before", 60)
        poll_into(poller, state, conn)
        pg.conn.execute("DELETE FROM callback_logs")
        pg.conn.execute("ALTER SEQUENCE callback_logs_id_seq RESTART")
        insert(pg.conn, "after", 20)  # ids 1..20, below the old high water
        poll_into(poller, state, conn)
    assert counted(state)["before"].attempts == 60
    assert_matches(state, truth(pg, 0), leave_out={"before"})
    assert resets(state, "ids_fell") == 1


@pytest.mark.parametrize(
    "change",
    ["VACUUM FULL callback_logs", "CLUSTER callback_logs USING callback_logs_pkey", "retention"],
)
def test_rewrites_and_retention_are_no_reset(pg: PgSchema, change: str) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        start = max_id(pg)
        insert(pg.conn, "kept", 40)
        poll_into(poller, state, conn)
        if change == "retention":
            # Retention deletes the oldest rows, and once the newest with them.
            pg.conn.execute("DELETE FROM callback_logs WHERE id <= %s", [start + 10])
            poll_into(poller, state, conn)
            pg.conn.execute("DELETE FROM callback_logs WHERE id = %s", [max_id(pg)])
        else:
            pg.conn.execute(change)
        poll_into(poller, state, conn)
        insert(pg.conn, "new", 5)
        poll_into(poller, state, conn)
    assert counted(state)["kept"].attempts == 40
    assert counted(state)["new"].attempts == 5
    assert state.view().resets == {}


@pytest.mark.standby
@pytest.mark.parametrize(
    "lossy",
    [True, pytest.param(False, marks=pytest.mark.slow)],
    ids=["last-commits-lost", "all-replicated"],
)
def test_a_failover_counts_every_row_of_the_new_history_once(lab_root: Any, lossy: bool) -> None:
    """The primary dies; its standby, promoted, becomes the primary. When the standby had not
    received the last commits, its sequence hands out their ids again to new rows."""
    old = Cluster(lab_root, "old").init().start()
    new = old.standby("new").start()
    name = "cbmon_failover"
    schema.apply(old.dsn(), schema=name, role=None)
    tables = {table: {"schema": name} for table in ("logs", "errors", "queue")}
    poller, state = Poller(load_config(overrides={"tables": tables}, environ={})), Store(500)
    with psycopg.connect(old.dsn(options=f"-c search_path={name}"), autocommit=True) as writer:
        with connect(old.dsn()) as conn:
            poll_into(poller, state, conn)
            insert(writer, "replicated", 100)
            new.wait_replayed(old)
            poll_into(poller, state, conn)
            if lossy:
                new.stop()  # the standby falls behind: what follows never reaches it
            insert(writer, "lost" if lossy else "replicated", 40)
            poll_into(poller, state, conn)
        if not lossy:
            new.wait_replayed(old)
    old.kill()
    if lossy:
        new.start()
    new.promote()
    with psycopg.connect(new.dsn(options=f"-c search_path={name}"), autocommit=True) as writer:
        insert(writer, "after", 30)
        reused = writer.execute(
            "SELECT count(*) FROM callback_logs WHERE event_type = 'after' AND id <= 140"
        ).fetchone()
        with connect(new.dsn()) as conn:
            poll_into(poller, state, conn)
            poll_into(poller, state, conn)
    figures = counted(state)
    assert figures["after"].attempts == 30  # every new row once, the reused ids too
    if lossy:
        assert reused is not None
        assert reused[0] > 0, "the test meant the new primary to hand out old ids again"
        assert figures["replicated"].attempts == 100
        assert figures["lost"].attempts == 40  # counted from the old history, kept
        assert resets(state, "failover") == 1
    else:
        assert figures["replicated"].attempts == 140
        assert state.view().resets == {}
    new.stop()
