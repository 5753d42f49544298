"""Generated data for the report tests, and ground truth computed by independent SQL.

The data covers what a report must get right: several event types (an empty and a NULL one
among them), success, failure and NULL statuses, NULL/negative/NaN/infinite/too-large
durations, errors with and without an event type, rows on both sides of the period's bounds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from cbmon.cli import cli
from tests.conftest import PgSchema

START = datetime(2026, 3, 1, 1, tzinfo=UTC)
END = datetime(2026, 3, 1, 11, tzinfo=UTC)
PERIOD = ["--from", "2026-03-01T01:00:00Z", "--to", "2026-03-01T11:00:00Z"]

# 12 hours, one attempt per second from 00:00; the period [01:00, 11:00) holds 36,000 of them.
LOGS = """
ALTER TABLE callback_logs ALTER COLUMN event_type DROP NOT NULL,
                          ALTER COLUMN status DROP NOT NULL;
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT (ARRAY['order_created', 'order_paid', 'refund', '', NULL])[1 + i % 5],
       CASE WHEN i % 37 = 0 THEN 'FAILED'
            WHEN i % 101 = 0 THEN NULL
            WHEN i % 53 = 0 THEN 'DONE'
            ELSE 'COMPLETED' END,
       CASE WHEN i % 29 = 0 THEN NULL
            WHEN i % 97 = 0 THEN -5
            WHEN i % 89 = 0 THEN 'NaN'::float8
            WHEN i % 83 = 0 THEN 'Infinity'::float8
            WHEN i % 79 = 0 THEN 4000000
            WHEN i % 5 = 1 THEN ((i * 7919) % 1000) / 10.0
            ELSE ((i * 7919) % 6000) / 10.0 END,
       timestamptz '2026-03-01 00:00:00Z' + i * interval '1 second'
FROM generate_series(0, 43199) AS i;
"""
ERRORS = """
INSERT INTO callback_errors (event_type, error_message, created_at)
SELECT (ARRAY['order_created', 'refund', NULL, '', 'only_errors'])[1 + i % 5],
       (ARRAY['timeout after 5s', 'HTTP 500', 'connection refused', NULL, 'HTTP 500'])
           [1 + i % 7 % 5],
       timestamptz '2026-03-01 00:00:00Z' + i * interval '17 seconds'
FROM generate_series(0, 2540) AS i;
"""
QUEUE = """
INSERT INTO callback_queue (event_type, created_at, processed_at)
SELECT 'order_created', now() - interval '1 hour' + i * interval '1 minute',
       CASE WHEN i < 3 THEN now() END
FROM generate_series(0, 9) AS i;
"""

VALID = (
    "execution_time IS NOT NULL AND execution_time <> 'NaN'::float8 "
    "AND execution_time BETWEEN 0 AND 3600000"
)


def load(pg: PgSchema) -> None:
    for statement in (LOGS, ERRORS, QUEUE):
        pg.conn.execute(statement)


def write_config(pg: PgSchema, path: Path, logs_extra: str = "", extra: str = "") -> Path:
    """A configuration pointing at the test's schema; ``logs_extra`` goes under tables.logs."""
    tables = "".join(f"  {t}:\n    schema: {pg.name}\n" for t in ("logs", "errors", "queue"))
    tables = tables.replace("  errors:", logs_extra + "  errors:")
    path.write_text(f"tables:\n{tables}{extra}", encoding="utf-8")
    return path


def run(pg: PgSchema, config: Path, *args: str) -> Result:
    """``cbmon report`` in process, as a user would type it."""
    return CliRunner().invoke(
        cli, ["report", "--dsn", pg.dsn, "--config", str(config), *args], catch_exceptions=False
    )


def report_json(pg: PgSchema, config: Path, *args: str) -> dict[str, Any]:
    result = run(pg, config, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def truth_logs(
    conn: psycopg.Connection[Any],
    group: str,
    success: tuple[str, ...] = ("COMPLETED",),
    where: str = "TRUE",
) -> dict[Any, dict[str, Any]]:
    """Every figure of the summary by independent SQL, keyed by ``group`` (an SQL expression)."""
    rows = conn.execute(
        f"""
        SELECT {group} AS key,
               count(*) AS calls,
               count(*) FILTER (WHERE status IS NULL OR NOT status = ANY(%(ok)s)) AS failures,
               count(*) FILTER (WHERE status = ANY(%(ok)s))::float8 / count(*) AS success_rate,
               count(*) FILTER (WHERE {VALID}) AS observed,
               avg(execution_time) FILTER (WHERE {VALID}) AS avg_ms,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY execution_time)
                   FILTER (WHERE {VALID}) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time)
                   FILTER (WHERE {VALID}) AS p95_ms,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY execution_time)
                   FILTER (WHERE {VALID}) AS p99_ms,
               max(execution_time) FILTER (WHERE {VALID}) AS max_ms,
               count(*) FILTER (WHERE {VALID} AND execution_time > 200)::float8
                   / nullif(count(*) FILTER (WHERE {VALID}), 0) AS slow_share
        FROM callback_logs
        WHERE created_at >= %(start)s AND created_at < %(end)s AND {where}
        GROUP BY 1
        """,
        {"ok": list(success), "start": START, "end": END},
    ).fetchall()
    names = [
        "calls",
        "failures",
        "success_rate",
        "observed",
        "avg_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "slow_share",
    ]
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}


def truth_errors(conn: psycopg.Connection[Any], group: str) -> dict[Any, int]:
    rows = conn.execute(
        f"SELECT {group}, count(*) FROM callback_errors "
        "WHERE created_at >= %s AND created_at < %s GROUP BY 1",
        [START, END],
    ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def assert_figures(actual: dict[str, Any], expected: dict[str, Any], errors: int) -> None:
    """Every figure equal; the mean to 1e-12 only, as summation order may differ."""
    for name, value in expected.items():
        if name == "avg_ms" and value is not None:
            assert actual[name] == pytest.approx(value, rel=1e-12), name
        else:
            assert actual[name] == value, name
    assert actual["errors"] == errors
