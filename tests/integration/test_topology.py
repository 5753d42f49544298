"""What stands between cbmon and the primary, found and handled: a real pgbouncer in session and
in transaction mode in front of a private primary, and libpq's target modes with the role
``cbmon schema apply`` makes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from cbmon.db import topology
from cbmon.db.connect import connect, link_of, local_settings
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.reference import schema
from tests.conftest import Replicated
from tests.support.cluster import Pgbouncer
from tests.support.counting import INSERT, assert_matches, max_id, poll_into, truth

pytestmark = [pytest.mark.standby, pytest.mark.pooler]
ROLE = "cbmon_pooled"  # pgbouncer's user list names it


@pytest.fixture
def reader_role(replicated: Replicated) -> Iterator[str]:
    """The read-only role ``cbmon schema apply`` makes, on the private primary."""
    schema.apply(replicated.primary.dsn(), schema=replicated.pg.name, role=ROLE)
    try:
        yield ROLE
    finally:
        replicated.pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
        replicated.pg.conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def test_a_direct_connection_has_no_pooler(replicated: Replicated) -> None:
    with connect(replicated.primary.dsn()) as conn:
        assert link_of(conn).pooler == "none"


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_the_pool_mode_is_told_apart(poolers: dict[str, Pgbouncer], mode: str) -> None:
    with connect(poolers[mode].dsn()) as conn:
        assert link_of(conn).pooler == mode


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_the_pool_mode_is_told_apart_while_another_client_borrows_the_backend(
    poolers: dict[str, Pgbouncer], mode: str
) -> None:
    """Another client of the pool takes the backend cbmon just used, and gives it back just
    before cbmon asks again, which finds its old backend: in transaction mode that is not
    session mode (it would mean SETs that leak, and a LISTEN that hears nothing)."""
    dsn = poolers[mode].dsn()
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as borrower:
        rounds: list[float] = []

        def open_other() -> psycopg.Connection[Any]:
            borrower.execute("SELECT 1")  # in a transaction: holds the backend cbmon released
            return psycopg.connect(dsn)

        @contextlib.contextmanager
        def bound(_: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
            if not rounds:
                borrower.commit()  # the backend back to the pool just before cbmon asks
            rounds.append(seconds)
            yield

        assert topology.pooling(conn, open_other, bound) == mode
        assert rounds  # the borrowed backend was given back while the probe ran


def test_no_session_setting_leaks_to_the_pools_other_clients(
    poolers: dict[str, Pgbouncer],
) -> None:
    """In transaction mode a SET outside a transaction stays on the backend, for whichever
    client gets it next: cbmon's read-only default would break the application's writes."""
    bouncer = poolers["transaction"]
    with connect(bouncer.dsn(), statement_timeout=1.5) as conn:
        conn.execute("SELECT 1")
        # The backend cbmon used last is the one pgbouncer hands out next.
        with psycopg.connect(bouncer.dsn(), autocommit=True) as other:
            row = other.execute(
                "SELECT current_setting('default_transaction_read_only'), "
                "current_setting('statement_timeout')"
            ).fetchone()
    assert row == ("off", "0")


@pytest.mark.parametrize("mode", ["direct", "session", "transaction"])
def test_cbmons_statements_are_not_jit_compiled(
    replicated: Replicated, poolers: dict[str, Pgbouncer], mode: str
) -> None:
    """The planner prices a burst's lifecycle probes high enough to JIT-compile them, which
    costs more than the work: off for the session, or for each transaction behind a pooler
    in transaction mode (and left alone for the pool's other clients)."""
    dsn = replicated.primary.dsn() if mode == "direct" else poolers[mode].dsn()
    with connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        local_settings(cur)
        assert cur.execute("SHOW jit").fetchone() == ("off",)
    with psycopg.connect(dsn, autocommit=True) as other:
        assert other.execute("SHOW jit").fetchone() == ("on",)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_polls_through_a_pooler_are_exact(
    replicated: Replicated, poolers: dict[str, Pgbouncer], mode: str
) -> None:
    """Out-of-order commits, polls moved between backends by another client that takes the
    backend cbmon used last: no statement prepared on one backend is asked of another."""
    pg = replicated.pg
    bouncer = poolers[mode]
    poller, state = Poller(pg.config(dsn=bouncer.dsn())), Store(500)
    with (
        connect(bouncer.dsn()) as conn,
        pg.connect(autocommit=False) as slow,
        psycopg.connect(bouncer.dsn()) as thief,
    ):
        poll_into(poller, state, conn)
        start = max_id(pg)
        for round_number in range(12):  # well past psycopg's prepare threshold of 5
            slow.execute(INSERT, ("slow", "COMPLETED", 7.0))
            pg.conn.execute(INSERT, ("fast", "FAILED" if round_number % 3 else "OK", 9.0))
            if round_number % 2:
                thief.execute("SELECT 1")  # holds a backend until its commit
            poll_into(poller, state, conn)
            thief.commit()
            slow.commit()
            poll_into(poller, state, conn)
        for _ in range(3):
            poll_into(poller, state, conn)
    assert_matches(state, truth(pg, start))
    assert poller.logs.open_gap_ids == 0


@pytest.mark.parametrize("attrs", ["read-write", "primary"])
def test_the_read_only_role_reaches_the_primary_in_every_target_mode(
    replicated: Replicated, reader_role: str, attrs: str
) -> None:
    """The role's transactions default to read only, which libpq's read-write test takes for
    a standby, even on the primary; cbmon asks for the primary instead."""
    replicated.replayed()
    hosts = conninfo.make_conninfo(
        host="127.0.0.1,127.0.0.1",
        port=f"{replicated.standby.port},{replicated.primary.port}",
        dbname="postgres",
        user=reader_role,
        target_session_attrs=attrs,
    )
    with connect(hosts) as conn:
        row: Any = conn.execute("SELECT pg_is_in_recovery(), inet_server_port()").fetchone()
    assert row == (False, replicated.primary.port)
