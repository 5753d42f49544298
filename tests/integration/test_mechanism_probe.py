"""The mechanism's own health (cbmon/ingest/mechanism.py) on a real PostgreSQL: the token
bucket, the router, the NOTIFY queue and its listener, the handler statistics, a role that may
not read them; every figure compared with the SQL that defines it, and judged as serve does."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import sql

from cbmon.db.connect import connect
from cbmon.domain import Level
from cbmon.ingest.mechanism import MechanismProbe, Settings
from cbmon.reference import mechanism
from cbmon.sidecar.service import Service
from cbmon.slo import mechanism as judged
from cbmon.web import api
from cbmon.web.mechanism import MechanismCollector
from tests.conftest import PgSchema
from tests.support import cli


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mech(pg: PgSchema) -> Iterator[PgSchema]:
    executor = f"cbmon_exec_{secrets.token_hex(4)}"
    mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor)
    yield pg
    ident = sql.Identifier(executor)
    pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def probe_of(pg: PgSchema, **overrides: Any) -> tuple[MechanismProbe, Ticks]:
    ticks = Ticks()
    return MechanismProbe(Settings.of(pg.config(**overrides)), ticks), ticks


def one(pg: PgSchema, query: str, *params: object) -> Any:
    row = pg.conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_a_burst_drains_the_bucket_and_each_drop_is_counted(mech: PgSchema) -> None:
    pg = mech
    pg.conn.execute(
        "INSERT INTO callback_limits (bucket_id, tokens, capacity, refill_per_second)"
        " VALUES ('order_created', 3, 3, 0)"
    )
    probe, ticks = probe_of(pg)
    registry = CollectorRegistry()
    registry.register(MechanismCollector(probe))
    with connect(pg.dsn) as conn:
        before = probe.probe(conn)
        assert before.dropped_in_window == 0
        pg.conn.execute(
            "INSERT INTO orders (customer, amount) SELECT 'c', g FROM generate_series(1, 8) g"
        )
        ticks.now += 60
        after = probe.probe(conn)
    dropped = one(pg, "SELECT dropped FROM callback_limits WHERE bucket_id = 'order_created'")
    tokens = one(pg, "SELECT tokens FROM callback_limits WHERE bucket_id = 'order_created'")
    queued = one(pg, "SELECT count(*) FROM callback_queue WHERE event_type = 'order_created'")
    assert (dropped, tokens, queued) == (5, 0, 3)  # the burst itself, as the limiter saw it
    assert after.dropped_in_window == dropped
    sample = registry.get_sample_value
    assert sample("cbmon_rate_limited_total", {"bucket": "order_created"}) == dropped
    assert sample("cbmon_rate_limit_tokens", {"bucket": "order_created"}) == tokens
    found = {i.slo: i for i in judged.indicators(after, pg.config().baseline, 3)}
    assert found["rate_limited"].state is Level.WARNING
    assert found["rate_limited"].value == 5
    # Once the window has passed without drops, the warning ends.
    with connect(pg.dsn) as conn:
        ticks.now += 301
        probe.probe(conn)
        ticks.now += 60
        quiet = probe.probe(conn)
    assert quiet.dropped_in_window == 0
    found = {i.slo: i for i in judged.indicators(quiet, pg.config().baseline, 3)}
    assert found["rate_limited"].state is Level.OK


def test_router_rows_pointing_at_a_dropped_function_are_named(mech: PgSchema) -> None:
    pg = mech
    pg.conn.execute(
        "CREATE FUNCTION refund_payload(p jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT p'"
    )
    pg.conn.execute(
        "INSERT INTO callback_router (event_type, handler_function, retry_policy, enabled) VALUES"
        " ('refund', 'refund_payload', '{\"max_retries\": 3}', true),"
        " ('chargeback', 'order_created_payload', '{\"max_retries\": 7}', true),"
        " ('legacy', 'order_created_payload', '{\"max_retries\": 1}', false)"
    )
    pg.conn.execute("DROP FUNCTION refund_payload(jsonb)")
    pg.conn.execute(
        "CREATE TRIGGER order_deleted_callback AFTER DELETE ON orders FOR EACH ROW"
        " EXECUTE PROCEDURE route_callback('order_deleted')"
    )
    probe, _ = probe_of(pg)
    with connect(pg.dsn) as conn:
        state = probe.probe(conn)
    missing = pg.conn.execute(
        "SELECT r.event_type FROM callback_router r WHERE r.handler_function IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND p.proname = r.handler_function) ORDER BY 1",
        (pg.name,),
    ).fetchall()
    disabled = pg.conn.execute(
        "SELECT event_type FROM callback_router WHERE NOT enabled ORDER BY 1"
    ).fetchall()
    above = pg.conn.execute(
        "SELECT event_type FROM callback_router WHERE (retry_policy->>'max_retries')::int > 3"
    ).fetchall()
    assert state.route_problems == {
        "no_route": ("order_deleted",),
        "disabled": tuple(r[0] for r in disabled),
        "missing_handler": tuple(r[0] for r in missing),
        "retries_above_policy": tuple(r[0] for r in above),
    }
    assert state.route_problems["missing_handler"] == ("refund",)
    registry = CollectorRegistry()
    registry.register(MechanismCollector(probe))
    assert registry.get_sample_value("cbmon_route_problems", {"problem": "no_route"}) == 1
    found = {i.slo: i for i in judged.indicators(state, pg.config().baseline, 3)}
    assert (found["route_problems"].value, found["route_problems"].state) == (4, Level.WARNING)


def test_a_listener_that_stops_reading_fills_the_queue(quiet_pg: PgSchema) -> None:
    """On the private cluster, where no one else notifies: a listener idle in a transaction
    keeps every notification after it in the queue."""
    pg = quiet_pg
    name = f"cbmon-listener-{secrets.token_hex(3)}"
    listeners = [{"channel": "orders_ch", "application_name": name}]
    probe, _ = probe_of(
        pg,
        mechanism={
            "listeners": listeners,
            "notify_queue_usage": {"normal": "0.01%", "alert": "0.1%"},
        },
    )
    listener = psycopg.connect(pg.dsn, autocommit=True, application_name=name)
    try:
        listener.execute("LISTEN orders_ch")
        with connect(pg.dsn) as conn:
            assert probe.probe(conn).listeners == {"orders_ch": True}
        listener.execute("BEGIN")
        listener.execute("SELECT 1")  # idle in transaction: it reads no notification
        for _ in range(4):
            pg.conn.execute(
                "SELECT pg_notify('orders_ch', repeat('x', 7000) || g)"
                " FROM generate_series(1, 500) g"
            )
        with connect(pg.dsn) as conn:
            probe._next = None
            state = probe.probe(conn)
            usage = one(pg, "SELECT pg_notification_queue_usage()")
    finally:
        listener.close()
    assert state.listeners == {"orders_ch": False}
    assert state.notify_usage == usage
    assert usage > 0.001  # 2000 notifications of 7 kB: some 16 MB of the 8 GB
    registry = CollectorRegistry()
    registry.register(MechanismCollector(probe))
    assert registry.get_sample_value("cbmon_notify_queue_usage_ratio") == usage
    assert registry.get_sample_value("cbmon_listener_up", {"channel": "orders_ch"}) == 0
    baseline = pg.config(
        mechanism={"notify_queue_usage": {"normal": "0.01%", "alert": "0.1%"}}
    ).baseline
    found = {i.slo: i for i in judged.indicators(state, baseline, 3)}
    assert found["notify_queue_usage"].state is Level.CRITICAL


def test_handler_statistics_follow_pg_stat_user_functions(mech: PgSchema) -> None:
    pg = mech
    with psycopg.connect(pg.dsn, autocommit=True) as writer:
        writer.execute("SET track_functions = 'pl'")
        writer.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg.name)))
        writer.execute(
            "INSERT INTO orders (customer, amount) SELECT 'c', g FROM generate_series(1, 4) g"
        )
        writer.execute("SELECT pg_stat_force_next_flush()")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("SET track_functions = 'pl'")
        probe, _ = probe_of(pg)
        state = probe.probe(conn)
        rows = conn.execute(
            "SELECT schemaname || '.' || funcname, calls, total_time / 1000.0"
            " FROM pg_stat_user_functions WHERE schemaname = %s ORDER BY 1",
            (pg.name,),
        ).fetchall()
    assert state.handlers is not None
    assert [(h.function, h.calls, h.seconds) for h in state.handlers] == [
        (f, int(c), float(s)) for f, c, s in rows
    ]
    calls = {h.function: h.calls for h in state.handlers}
    assert calls[f"{pg.name}.route_callback"] == 4


def test_track_functions_off_is_explained(mech: PgSchema) -> None:
    with psycopg.connect(mech.dsn, autocommit=True) as conn:
        conn.execute("SET track_functions = 'none'")
        probe, _ = probe_of(mech)
        state = probe.probe(conn)
    handlers = state.source("handlers")
    assert handlers is not None
    assert handlers.state == "absent"
    assert "ALTER SYSTEM SET track_functions = 'pl'" in handlers.detail
    assert state.handlers is None


def test_a_role_that_may_not_read_the_router_gets_the_grant_once(
    mech: PgSchema, read_only_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg = mech
    role = str(psycopg.conninfo.conninfo_to_dict(read_only_dsn)["user"])
    # A role made before the mechanism was (schema apply grants it what exists).
    pg.conn.execute(
        sql.SQL("REVOKE SELECT ON callback_router, callback_limits FROM {}").format(
            sql.Identifier(role)
        )
    )
    probe, ticks = probe_of(pg)
    caplog.set_level(logging.INFO, "cbmon.ingest.mechanism")
    with connect(read_only_dsn) as conn:
        state = probe.probe(conn)
        ticks.now += 60
        probe.probe(conn)
    router, limits = state.source("router"), state.source("rate_limits")
    assert router is not None
    assert limits is not None
    assert (router.state, limits.state) == ("unreadable", "unreadable")
    grant = f"GRANT SELECT ON {pg.name}.callback_router TO {role}"
    assert grant in router.detail
    said = [r.getMessage() for r in caplog.records if "router is not readable" in r.getMessage()]
    assert len(said) == 1
    assert grant in said[0]
    assert state.route_problems is None
    found = {i.slo: i for i in judged.indicators(state, pg.config().baseline, 3)}
    assert found["route_problems"].state is Level.UNKNOWN
    notify = state.source("notify_queue")
    assert notify is not None
    assert notify.state == "ok"  # pg_notification_queue_usage() is everyone's


def test_apply_grants_the_reader_what_the_probes_read_and_audit_names_what_is_missing(
    pg: PgSchema, read_only_dsn: str
) -> None:
    role = str(psycopg.conninfo.conninfo_to_dict(read_only_dsn)["user"])
    executor = f"cbmon_exec_{secrets.token_hex(4)}"
    mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor)
    try:
        before = cli.cbmon("schema", "audit", "--dsn", pg.dsn, "--role", role)
        mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor, reader=role)
        after = cli.cbmon("schema", "audit", "--dsn", pg.dsn, "--role", role)
        probe, _ = probe_of(pg)
        with connect(read_only_dsn) as conn:
            state = probe.probe(conn)
    finally:
        ident = sql.Identifier(executor)
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    for table in ("callback_router", "callback_limits"):
        assert f'GRANT SELECT ON "{pg.name}"."{table}" TO "{role}";' in before.stdout
        assert f'"{pg.name}"."{table}"' not in after.stdout
    assert before.code == after.code  # reading more changes nothing about writing
    assert {s.name: s.state for s in state.sources}["router"] == "ok"
    assert state.route_problems is not None


def test_serve_fires_the_drop_alert_at_the_first_probe(mech: PgSchema) -> None:
    pg = mech
    pg.conn.execute(
        "INSERT INTO callback_limits (bucket_id, tokens, capacity, refill_per_second)"
        " VALUES ('default', 0, 1, 0)"
    )
    service = Service(pg.config(listen="127.0.0.1:0", slo={"for": "1m"}))
    try:
        service.poll_once()
        pg.conn.execute("INSERT INTO orders (customer, amount) VALUES ('c', 1)")
        assert service.mechanism is not None
        service.mechanism._next = None  # the next mechanism.interval, now
        service.poll_once()
        firing = {a.alert.alertname: a.alert.severity for a in service.evaluator.tracker.active()}
        document = api.status(service.status())
    finally:
        service.close()
    assert firing.get("CallbackRateLimited") == "warning"  # at once, without slo.for
    dropped = one(pg, "SELECT dropped FROM callback_limits WHERE bucket_id = 'default'")
    assert dropped == 1
    buckets = document["mechanism"]["buckets"]
    assert buckets == [{"bucket": "default", "tokens": 0.0, "capacity": 1, "dropped": dropped}]
    assert document["mechanism"]["dropped_in_window"] == dropped
