"""What a poll costs, as design.md states it, checked on the statements the poll connection
really sends (libpq's trace of the wire, :mod:`tests.support.sqltrace`): an idle poll is one
statement per table and one for the queue, in one REPEATABLE READ READ ONLY transaction,
whatever the table's size; the running transactions (``pg_locks``) are read only while gaps
are open, once per poll and before the poll's own transaction begins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from tests.conftest import PgSchema
from tests.support.counting import INSERT, poll_into, poll_until_no_gaps
from tests.support.sqltrace import Recorder, Sent, parse, recording

BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
TABLES = ("callback_logs", "callback_errors", "callback_queue")


@pytest.fixture
def poll_conn(pg: PgSchema) -> Iterator[psycopg.Connection[Any]]:
    with pg.connect() as conn:
        yield conn


@pytest.fixture
def sent(poll_conn: psycopg.Connection[Any]) -> Iterator[Recorder]:
    """The statements the poll connection sends."""
    with recording(poll_conn) as recorder:
        yield recorder


def naming(statements: list[Sent], name: str) -> list[Sent]:
    return [s for s in statements if name in s.text]


def add_rows(pg: PgSchema, count: int) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time)"
        " SELECT 'e' || (i %% 7), CASE WHEN i %% 9 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,"
        " i %% 300"
        " FROM generate_series(1, %s) AS i",
        [count],
    )


def settled(poller: Poller, conn: psycopg.Connection[Any]) -> Store:
    state = Store(500)
    poll_into(poller, state, conn)
    poll_until_no_gaps(poller, state, conn)
    return state


def test_an_idle_poll_is_one_statement_per_table_in_one_snapshot(
    pg: PgSchema, poll_conn: psycopg.Connection[Any], sent: Recorder
) -> None:
    poller = Poller(pg.config())
    add_rows(pg, 50)
    settled(poller, poll_conn)
    sent.take()
    idle = []
    for _ in range(3):
        poller.poll(poll_conn)
        idle.append(sent.take())
    assert idle[0] == idle[1] == idle[2]  # a fixed set, poll after poll
    statements = idle[0]
    assert [s.words for s in (statements[0], statements[-1])] == [BEGIN, "COMMIT"]
    inside = statements[1:-1]
    assert len(inside) == len(TABLES)  # the newest id of each table, and the queue
    for table in TABLES:
        assert len(naming(inside, f'"{table}"')) == 1, table
    assert not naming(statements, "pg_locks")
    assert not naming(statements, "pg_prepared_xacts")


def test_an_idle_poll_costs_the_same_whatever_the_table_holds(
    pg: PgSchema, poll_conn: psycopg.Connection[Any], sent: Recorder
) -> None:
    poller = Poller(pg.config())
    add_rows(pg, 10)
    settled(poller, poll_conn)
    sent.take()
    poller.poll(poll_conn)
    small = sent.take()
    add_rows(pg, 20_000)
    settled(poller, poll_conn)
    sent.take()
    poller.poll(poll_conn)
    assert sent.take() == small


def test_running_transactions_are_listed_only_while_a_gap_is_open(quiet_pg: PgSchema) -> None:
    """On the quiet cluster, where no other session's transaction holds the gap open."""
    pg = quiet_pg
    with pg.connect() as poll_conn, recording(poll_conn) as sent:
        listed_only_while_a_gap_is_open(pg, poll_conn, sent)


def listed_only_while_a_gap_is_open(
    pg: PgSchema, poll_conn: psycopg.Connection[Any], sent: Recorder
) -> None:
    poller = Poller(pg.config())
    state = settled(poller, poll_conn)
    with pg.connect(autocommit=False) as slow:
        slow.execute(INSERT, ("late", "FAILED", 120.0))  # takes the lower id, commits last
        pg.conn.execute(INSERT, ("early", "COMPLETED", 80.0))
        sent.take()
        poller.poll(poll_conn)  # finds the gap; its fence is listed at the next poll
        assert poller.logs.open_gap_ids == 1
        assert not naming(sent.take(), "pg_locks")
        for _ in range(2):
            poller.poll(poll_conn)
            statements = sent.take()
            listings = naming(statements, "pg_locks")
            assert len(listings) == 1  # one listing per poll, prepared ones in it too
            assert "pg_prepared_xacts" in listings[0].text
            words = [s.words for s in statements]
            assert words.index(listings[0].words) < words.index(BEGIN)  # before the snapshot
        assert poller.logs.open_gap_ids == 1
        slow.commit()
    poll_into(poller, state, poll_conn)
    poll_until_no_gaps(poller, state, poll_conn)
    assert state.view().figures["late"].attempts == 1
    sent.take()
    poller.poll(poll_conn)
    assert not naming(sent.take(), "pg_locks")


def test_the_recorder_reads_the_wire_as_sent() -> None:
    """The trace's own forms: a simple query, a statement parsed with its text over several
    lines (and quotes), and a prepared one run again by name."""
    trace = (
        'F\t10\tQuery\t "BEGIN"\n'
        'B\t10\tCommandComplete\t "BEGIN"\n'
        "F\t35\tParse\t \"\" \"SELECT 'a''b',\n $1::int\" 1 NNNN\n"
        'F\t22\tBind\t "" "" 1 1 1 2 \'\\x00\\x01\' 1 0\n'
        'F\t35\tParse\t "_pg3_0" "SELECT 2" 0\n'
        'F\t22\tBind\t "" "_pg3_0" 0 0 1 0\n'
        'F\t22\tBind\t "" "_pg3_0" 0 0 1 0\n'
        'F\t11\tQuery\t "SAVEPOINT "_pg3_1""\n'
    )
    assert [s.text for s in parse(trace)] == [
        "BEGIN",
        "SELECT 'a''b',\n $1::int",
        "SELECT 2",
        "SELECT 2",
        'SAVEPOINT "_pg3_1"',
    ]
