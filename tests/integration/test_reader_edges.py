"""What the reader assumes is checked, and odd tables and rows never stop or skew counting:
sequences that hand out ids in blocks, ids without a sequence, partitioned logs and retention,
numbers too large for float8, rows dated in the future."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cbmon.check import run_check
from cbmon.domain import Level
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.sidecar.service import Service
from cbmon.web.collector import CallbackCollector
from tests.conftest import PgSchema
from tests.support.counting import INSERT, assert_matches, max_id, poll_into, truth


def registry_of(state: Store) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(state))
    return registry


def assumption(registry: CollectorRegistry, table: str, check: str) -> float | None:
    labels = {"table": table, "check": check}
    return registry.get_sample_value("cbmon_reader_assumption_ok", labels)


def test_the_reference_schema_meets_every_assumption(pg: PgSchema) -> None:
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
    registry = registry_of(state)
    for table in ("logs", "errors"):
        assert assumption(registry, table, "ids_from_sequence") == 1
        assert assumption(registry, table, "sequence_cache_1") == 1


def test_a_cached_sequence_is_a_warning_and_a_gauge(
    pg: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    pg.conn.execute("ALTER SEQUENCE callback_logs_id_seq CACHE 20")
    pg.conn.execute("ALTER TABLE callback_errors ALTER id DROP DEFAULT")
    service = Service(pg.config())
    try:
        with caplog.at_level(logging.WARNING, logger="cbmon.sidecar.service"):
            service.poll_once()
            service.poll_once()
    finally:
        service.close()
    registry = registry_of(service.store)
    assert assumption(registry, "logs", "ids_from_sequence") == 1
    assert assumption(registry, "logs", "sequence_cache_1") == 0
    assert assumption(registry, "errors", "ids_from_sequence") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once each, at start, not every poll
    assert any("CACHE 20" in line and "ALTER SEQUENCE" in line for line in warnings)
    assert any("callback_errors" in line and "no sequence" in line for line in warnings)
    assert all("\n" not in line for line in warnings)


def test_partitioned_log_read_exactly_and_retention_changes_no_counter(pg: PgSchema) -> None:
    pg.conn.execute("DROP TABLE callback_logs CASCADE")
    pg.conn.execute(
        """CREATE TABLE callback_logs (
               id bigserial, event_type text NOT NULL, status text NOT NULL,
               execution_time double precision, created_at timestamptz NOT NULL DEFAULT now()
           ) PARTITION BY RANGE (created_at)"""
    )
    pg.conn.execute("CREATE INDEX ON callback_logs (id)")
    pg.conn.execute(
        "CREATE TABLE logs_old PARTITION OF callback_logs FOR VALUES FROM (MINVALUE) TO (now())"
    )
    pg.conn.execute(
        "CREATE TABLE logs_new PARTITION OF callback_logs FOR VALUES FROM (now()) TO (MAXVALUE)"
    )
    old = "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
    old += "VALUES (%s, %s, %s, now() - interval '1 day')"
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, pg.connect(autocommit=False) as slow:
        poll_into(poller, state, conn)
        start = max_id(pg)
        slow.execute(old, ("late", "FAILED", 40.0))  # the lowest id, in the old partition
        for number in range(30):
            pg.conn.execute(old if number % 2 else INSERT, ("p", "COMPLETED", float(number)))
        poll_into(poller, state, conn)
        slow.commit()
        poll_into(poller, state, conn)
        poll_into(poller, state, conn)
        assert_matches(state, truth(pg, start))
        before = state.view().figures
        pg.conn.execute("DROP TABLE logs_old")  # retention: the oldest partition goes
        poll_into(poller, state, conn)
        assert state.view().figures == before
        for number in range(5):
            pg.conn.execute(INSERT, ("after", "COMPLETED", float(number)))
        poll_into(poller, state, conn)
    view = state.view().figures
    assert view["after"].attempts == 5
    assert view["p"] == before["p"]
    assert view["late"] == before["late"]
    registry = registry_of(state)
    assert assumption(registry, "logs", "sequence_cache_1") == 1


def to_numeric(pg: PgSchema) -> None:
    pg.conn.execute("DROP VIEW callback_metrics")
    pg.conn.execute("ALTER TABLE callback_logs ALTER execution_time TYPE numeric")


def test_a_numeric_too_large_for_float8_is_an_invalid_duration(pg: PgSchema) -> None:
    to_numeric(pg)
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        for value in ("1e400", "-1e400", "NaN", "150", "2.5"):
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "VALUES ('n', 'COMPLETED', %s::numeric)",
                [value],
            )
        pg.conn.execute(INSERT, ("n", "COMPLETED", None))
        poll_into(poller, state, conn)
    n = state.view().figures["n"]
    assert (n.attempts, n.observed, n.invalid) == (6, 2, 3)
    assert n.sum_seconds == pytest.approx(0.1525)
    assert state.view().database_up


def run_check_on(pg: PgSchema, **overrides: Any) -> Any:
    return run_check(pg.config(slo={"min_events": 5}, **overrides), 300.0)


def test_rows_dated_tomorrow_do_not_hold_a_verdict(pg: PgSchema) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'FAILED', 10, now() + interval '1 day' FROM generate_series(1, 50)"
    )
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'COMPLETED', 10, now() + interval '30 seconds' "
        "FROM generate_series(1, 20)"
    )
    result = run_check_on(pg)
    assert result.status is Level.OK
    assert result.ahead_rows == {"logs": 50, "errors": 0}
    poller, state = Poller(pg.config(), backfill=300.0), Store(500)
    with pg.connect() as conn:
        first = poller.poll(conn)
    assert first.ahead_rows == {"logs": 50, "errors": 0}
    attempts = sum(slot.figures.attempts for slot in first.history)
    assert attempts == 20  # within the allowed skew (1m), so counted
    state.apply(first, state.label(first), 0.0)
    assert registry_of(state).get_sample_value("cbmon_rows_dated_ahead", {"table": "logs"}) == 50


def test_the_report_reads_a_numeric_too_large_for_float8(pg: PgSchema) -> None:
    from cbmon.report import query
    from cbmon.report.progress import Progress

    to_numeric(pg)
    for value in ("1e400", "100", "200"):
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "VALUES ('n', 'COMPLETED', %s::numeric)",
            [value],
        )
    with pg.connect(autocommit=False) as conn, query.snapshot(conn):
        report = query.read_report(
            conn,
            pg.config(),
            query.ReportRequest(),
            progress=Progress.silent(io.StringIO()),
            timeout=5,
        )
    (row,) = report.event_types
    assert (row.figures.attempts, row.figures.observed) == (3, 2)
    assert row.avg_ms == pytest.approx(150.0)
