"""A value cbmon cannot read as a duration is that row's problem: the row is an attempt with an
invalid duration, counting goes on, and one log line names the column and shows the value
shortened. A poll that fails for another reason than the database not answering says why and
leaves ``cbmon_database_up`` at 1."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from cbmon.db.connect import poll_error_reason
from cbmon.domain import POLL_ERROR_REASONS
from cbmon.ingest.poller import Poller
from cbmon.ingest.store import Store
from cbmon.sidecar.service import Service
from cbmon.web.collector import CallbackCollector
from tests.conftest import PgSchema
from tests.support.counting import max_id, poll_into
from tests.support.processes import wait_for

HUGE = "1" + "0" * 400  # 1e400, written out as the server prints it
NUMERIC_VALUES = ["1e400", "-1e400", "NaN", "Infinity", "1e-400", "150", "2.5", "-3", None]
TEXT_VALUES = ["n/a", "", " 2.5 ", "150", "NaN", "Infinity", "1e400", HUGE, "12ms", "-1", None]

# The truth, by another method than cbmon's: the server's own float8 cast, its errors caught
# (an underflow is zero), and the same range as cbmon's (0 to max_execution_time, 1 h in ms).
TRY_FLOAT = """
CREATE FUNCTION try_float(t text) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
    RETURN t::float8;
EXCEPTION
    WHEN numeric_value_out_of_range THEN
        RETURN CASE WHEN abs(t::numeric) < 1 THEN 0 ELSE 'NaN'::float8 END;
    WHEN others THEN
        RETURN 'NaN'::float8;
END $$
"""
TRUTH = """
SELECT count(*),
       count(execution_time),
       count(*) FILTER (WHERE try_float(execution_time::text) BETWEEN 0 AND 3600000),
       coalesce(sum(try_float(execution_time::text)) FILTER (
           WHERE try_float(execution_time::text) BETWEEN 0 AND 3600000), 0) / 1000.0
FROM callback_logs WHERE id > %s AND event_type = 'v'
"""


def alter_duration(pg: PgSchema, type_name: str) -> None:
    pg.conn.execute("DROP VIEW callback_metrics")
    pg.conn.execute(
        f"ALTER TABLE callback_logs ALTER execution_time TYPE {type_name} "
        f"USING execution_time::{type_name}"
    )
    pg.conn.execute(TRY_FLOAT)


def insert_values(pg: PgSchema, values: list[str | None], type_name: str) -> None:
    for value in values:
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            f"VALUES ('v', 'COMPLETED', %s::{type_name})",
            [value],
        )


def truth(pg: PgSchema, after: int) -> tuple[int, int, int, float]:
    row = pg.conn.execute(TRUTH, [after]).fetchone()
    assert row is not None
    attempts, present, observed, total = row
    return int(attempts), int(observed), int(present) - int(observed), float(total)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("type_name", "values"), [("numeric", NUMERIC_VALUES), ("text", TEXT_VALUES)]
)
def test_values_that_are_no_duration_are_invalid_and_counting_goes_on(
    pg: PgSchema, caplog: pytest.LogCaptureFixture, type_name: str, values: list[str | None]
) -> None:
    alter_duration(pg, type_name)
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, caplog.at_level(logging.WARNING, logger="cbmon.ingest.poller"):
        poll_into(poller, state, conn)
        start = max_id(pg)
        insert_values(pg, values, type_name)
        poll_into(poller, state, conn)
        insert_values(pg, ["100"], type_name)  # the next poll counts on
        poll_into(poller, state, conn)
    attempts, observed, invalid, total = truth(pg, start)
    got = state.view().figures["v"]
    assert (got.attempts, got.observed, got.invalid) == (attempts, observed, invalid)
    assert got.sum_seconds == pytest.approx(total)
    assert invalid >= 5
    assert attempts == len(values) + 1
    assert state.view().database_up
    (line,) = warnings_of(caplog)  # once, for the poll that found them
    assert f"{pg.name}.callback_logs.execution_time" in line
    assert f"{invalid} rows of" in line
    assert len(line) < 400
    assert not re.search(r"[0-9]{30}", line)


def test_a_long_value_is_shown_short(pg: PgSchema, caplog: pytest.LogCaptureFixture) -> None:
    alter_duration(pg, "text")
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn, caplog.at_level(logging.WARNING, logger="cbmon.ingest.poller"):
        poll_into(poller, state, conn)
        insert_values(pg, [HUGE], "text")
        poll_into(poller, state, conn)
    (line,) = warnings_of(caplog)
    assert "'100000000000000000000000'... (401 characters)" in line


def test_text_durations_at_start_through_the_window_backfill(
    pg: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    alter_duration(pg, "text")
    insert_values(pg, ["n/a", "20", "n/a", "30"], "text")
    poller = Poller(pg.config(), backfill=300.0)
    with pg.connect() as conn, caplog.at_level(logging.WARNING, logger="cbmon.ingest.poller"):
        first = poller.poll(conn)
    figures = [slot.figures for slot in first.history]
    assert sum(f.attempts for f in figures) == 4
    assert sum(f.invalid for f in figures) == 2
    assert sum(f.sum_seconds for f in figures) == pytest.approx(0.05)
    (line,) = warnings_of(caplog)
    assert "callback_logs.execution_time" in line
    assert "'n/a'" in line


@contextmanager
def running(service: Service) -> Iterator[None]:
    service.stop_event.clear()
    thread = threading.Thread(target=service.run, name="poll loop", daemon=True)
    thread.start()
    try:
        yield
    finally:
        service.stop_event.set()
        service._nudge.set()
        thread.join(10)
    assert not thread.is_alive()


def poll_errors(service: Service) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(service.store))
    found: dict[str, float] = {}
    for reason in POLL_ERROR_REASONS:
        value = registry.get_sample_value("cbmon_poll_errors_total", {"reason": reason})
        assert value is not None, reason  # every reason is exported from the start
        found[reason] = value
    found["up"] = registry.get_sample_value("cbmon_database_up") or 0.0
    return found


def test_a_poll_refused_by_the_database_is_an_error_with_its_reason_not_a_database_down(
    pg: PgSchema,
) -> None:
    config = pg.config(poll_interval="100ms", database={"statement_timeout": "300ms"})
    service = Service(config)
    try:
        service.poll_once()
        assert poll_errors(service)["up"] == 1
        with pg.connect(autocommit=False) as locker:
            locker.execute("LOCK TABLE callback_queue IN ACCESS EXCLUSIVE MODE")
            with running(service):
                wait_for(lambda: poll_errors(service)["timeout"] >= 1)
                assert poll_errors(service)["up"] == 1
        pg.conn.execute("ALTER TABLE callback_queue RENAME processed_at TO done_at")
        with running(service):
            wait_for(lambda: poll_errors(service)["schema"] >= 1)
        errors = poll_errors(service)
        assert errors["up"] == 1
        assert errors["connection"] == 0
    finally:
        service.close()


def test_each_error_class_has_its_reason(pg: PgSchema) -> None:
    def reason_of(statement: str) -> str:
        with pg.connect() as conn:
            conn.execute("SET statement_timeout = '50ms'")
            with pytest.raises(psycopg.Error) as raised:
                conn.execute(statement)
        return poll_error_reason(raised.value)

    assert reason_of("SELECT pg_sleep(1)") == "timeout"
    assert reason_of("SELECT * FROM no_such_table") == "schema"
    assert reason_of("SELECT 'n/a'::float8") == "data"
    assert reason_of("SELECT 1/0") == "data"
    assert reason_of(f"SET ROLE pg_read_all_stats; SELECT * FROM {pg.name}.callback_logs") == (
        "permission"
    )
    assert reason_of("DO $$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = 'XX000'; END $$") == (
        "query"
    )
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("postgresql://root@127.0.0.1:1/test", connect_timeout=2)
    assert poll_error_reason(refused.value) == "connection"


def test_status_codes_and_attempt_numbers_held_as_text_fail_no_poll(pg: PgSchema) -> None:
    """An HTTP status held as text is read where it is a code and is no code elsewhere; an
    attempt number held as text turns the callback outcomes off, with the reason, instead of
    failing every poll."""
    pg.conn.execute("DROP VIEW callback_metrics")
    pg.conn.execute("ALTER TABLE callback_logs ALTER http_status TYPE text")
    pg.conn.execute("ALTER TABLE callback_logs ALTER attempt TYPE text")
    poller, state = Poller(pg.config()), Store(500)
    with pg.connect() as conn:
        poll_into(poller, state, conn)
        for status, code in (("FAILED", "404"), ("FAILED", " 503 "), ("FAILED", "n/a")):
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, "
                "attempt, http_status, target) VALUES ('v', %s, 10, 1, 'first', %s, 'https://t')",
                [status, code],
            )
        poll_into(poller, state, conn)
    assert not poller.features.outcomes
    assert any("attempt is text, not a number" in note for note in poller.features.notes)
    target = state.view().targets["https://t"]
    assert target.attempts == 3
    assert target.failures == (1, 1, 0, 1)  # 4xx, 5xx, timeout, other
    assert state.view().figures["v"].failures == 3
