"""Polls woken by the database: a committed breach is read at once, with a poll interval of an
hour, shown by the polls counted and the order of events, never by the clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
import pytest

from cbmon.config import Config
from cbmon.delivery.retry import RetryPolicy
from cbmon.reference import schema
from cbmon.sidecar.service import Service
from tests.conftest import PgSchema, Replicated
from tests.support.attempts import insert
from tests.support.cluster import Pgbouncer
from tests.support.loop import polling
from tests.support.processes import wait_for

HOUR = "1h"  # no poll comes from the interval while a test runs


@contextmanager
def running(pg: PgSchema) -> Iterator[Service]:
    config = pg.config(
        listen="127.0.0.1:0", poll_interval=HOUR, slo={"for": "0s", "min_events": 10}
    )
    with polling(Service(config)) as service:
        yield service


def idle(service: Service) -> int:
    """Wait until the loop waits out the interval with every poll done; the polls so far."""
    assert service.listener is not None
    listener, pacer, store = service.listener, service.pacer, service.store

    def settled() -> bool:
        return (
            listener.listening.is_set()
            and pacer.due_in() > 60
            and store.view().polls_total == pacer.polls
        )

    wait_for(settled, timeout=30)
    return store.view().polls_total


def breach(pg: PgSchema) -> None:
    insert(pg, "pay", ok=95, failed=5)


def firing(service: Service) -> set[tuple[str, str, str]]:
    return {
        (a.alert.alertname, a.alert.event_type, a.alert.severity)
        for a in service.evaluator.tracker.active()
    }


def test_a_committed_breach_wakes_a_poll_that_fires_at_once(pg: PgSchema) -> None:
    schema.apply(pg.dsn, schema=pg.name, role=None, wake=True)
    with running(pg) as service:
        polls = idle(service)
        wakes = service.pacer.wakes
        # A notification about another schema's table (another replica's) wakes nothing.
        pg.conn.execute("SELECT pg_notify('cbmon_wake', 'elsewhere.callback_logs')")
        breach(pg)
        wait_for(lambda: service.store.view().polls_total > polls, timeout=30)
        assert ("CallbackSuccessRateLow", "pay", "critical") in firing(service)
        assert service.pacer.wakes == wakes + 1  # the breach's notification, not the other
        assert idle(service) == polls + 1  # one poll for it, and no more
        assert service.status().database.wake == "notify"


def test_a_burst_of_commits_costs_a_poll_per_floor_not_one_per_commit(pg: PgSchema) -> None:
    schema.apply(pg.dsn, schema=pg.name, role=None, wake=True)
    with running(pg) as service:
        polls, heard = idle(service), service.pacer.wakes
        with pg.connect() as writer:
            for _ in range(50):  # fifty commits, each notifying
                writer.execute(
                    "INSERT INTO callback_logs (event_type, status, execution_time) "
                    "VALUES ('pay', 'COMPLETED', 40)"
                )
        wait_for(lambda: service.evaluator.indicators()[0].events == 50, timeout=30)
        caused = idle(service) - polls
        # Polls at least wake.min_interval apart: a few, not fifty. And while a poll is due
        # the listener does not hear of more commits: a few notifications, not fifty.
        assert 1 <= caused < 50
        assert 1 <= service.pacer.wakes - heard < 50


@pytest.mark.slow
def test_the_listener_comes_back_after_its_session_is_ended(pg: PgSchema) -> None:
    schema.apply(pg.dsn, schema=pg.name, role=None, wake=True)
    with running(pg) as service:
        listener = service.listener
        assert listener is not None
        listener.retry = RetryPolicy(initial=0.05)  # reconnect soon: the test has no time to wait
        before = idle(service)
        ended = listener.backend_pid
        pg.conn.execute("SELECT pg_terminate_backend(%s)", [ended])
        # Back on a new session, it polls once for what was committed meanwhile...
        wait_for(lambda: listener.backend_pid not in (None, ended), timeout=30)
        polls = idle(service)
        assert polls == before + 1
        # ...and wakes for the next breach as before.
        breach(pg)
        wait_for(lambda: service.store.view().polls_total > polls, timeout=30)
        assert ("CallbackSuccessRateLow", "pay", "critical") in firing(service)


def test_without_the_trigger_it_says_so_and_polls_on_the_interval(
    pg: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cbmon.ingest.wake"), running(pg) as service:
        polls = idle(service)
        assert service.status().database.wake == "no_trigger"
        breach(pg)
        wakes = service.pacer.wakes
        # An explicit notification still wakes it: the listener works, the trigger is missing.
        pg.conn.execute("SELECT pg_notify('cbmon_wake', %s)", [f"{pg.name}.callback_logs"])
        wait_for(lambda: service.store.view().polls_total > polls, timeout=30)
        assert service.pacer.wakes == wakes + 1
    said = [r.getMessage() for r in caplog.records if "trigger" in r.getMessage()]
    assert said == [
        f"no cbmon_wake trigger on {pg.name}.callback_errors and {pg.name}.callback_logs: new "
        "rows there are read at the next poll interval (cbmon schema apply --wake installs it)"
    ]


def serving(config: Config) -> AbstractContextManager[Service]:
    return polling(Service(config))


@contextmanager
def replay_delayed(pair: Replicated, delay: str) -> Iterator[None]:
    """The standby applies each commit ``delay`` after the primary made it: a poll woken by
    the commit's notification would not see it yet."""
    with psycopg.connect(pair.standby_dsn(), autocommit=True) as admin:
        admin.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            admin.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            admin.execute("SELECT pg_reload_conf()")


@pytest.mark.slow  # a standby's replay waited for
@pytest.mark.standby
def test_on_a_standby_it_listens_on_the_primary_and_a_woken_poll_sees_the_commit(
    replicated: Replicated,
) -> None:
    """NOTIFY is sent on the primary and never replicated; the woken poll reads the standby
    once it has replayed the commit that notified."""
    pg = replicated.pg
    schema.apply(replicated.primary.dsn(), schema=pg.name, role=None, wake=True)
    config = pg.config(
        dsn=replicated.standby_dsn(),
        database={"primary_dsn": replicated.primary.dsn()},
        listen="127.0.0.1:0",
        poll_interval=HOUR,
        slo={"for": "0s", "min_events": 10},
    )
    with serving(config) as service, replay_delayed(replicated, "400ms"):
        idle(service)
        assert service.status().database.wake == "notify"
        breach(pg)
        wait_for(lambda: ("CallbackSuccessRateLow", "pay", "critical") in firing(service), 30)


@pytest.mark.parametrize("where", ["standby", "transaction pooler"])
@pytest.mark.standby
@pytest.mark.pooler
def test_where_no_notification_can_arrive_it_says_so_and_polls_on_the_interval(
    replicated: Replicated,
    poolers: dict[str, Pgbouncer],
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg = replicated.pg
    dsn = replicated.standby_dsn() if where == "standby" else poolers["transaction"].dsn()
    config = pg.config(dsn=dsn, listen="127.0.0.1:0", poll_interval="1s")
    with caplog.at_level(logging.INFO, logger="cbmon.ingest.wake"), serving(config) as service:
        wait_for(lambda: service.status().database.wake == "poll", timeout=30)
    said = [r.getMessage() for r in caplog.records if "poll interval" in r.getMessage()]
    assert len(said) == 1
    assert ("hot standby" if where == "standby" else "transaction mode") in said[0]
