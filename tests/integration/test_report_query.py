"""Every figure of ``cbmon report --format json`` equals independent SQL over the same rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support.report_data import (
    PERIOD,
    assert_figures,
    load,
    report_json,
    truth_errors,
    truth_logs,
    write_config,
)

EVENT_TYPE = "coalesce(nullif(event_type, ''), 'unknown')"


@pytest.fixture
def loaded(pg: PgSchema, tmp_path: Path) -> Path:
    load(pg)
    return write_config(pg, tmp_path / "cbmon.yml")


def test_every_figure_matches_sql(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD)
    per_type = truth_logs(pg.conn, EVENT_TYPE)
    errors = truth_errors(pg.conn, EVENT_TYPE)
    rows = {row["event_type"]: row for row in data["event_types"]}
    assert sorted(rows) == sorted({*per_type, *errors})
    assert set(rows) >= {"order_created", "order_paid", "refund", "unknown", "only_errors"}
    for event_type, expected in per_type.items():
        assert_figures(rows[event_type], expected, errors.get(event_type, 0))
    only_errors = rows["only_errors"]
    assert only_errors["calls"] == 0
    assert only_errors["errors"] == errors["only_errors"] > 0
    assert only_errors["success_rate"] is None
    assert only_errors["p95_ms"] is None

    (overall,) = truth_logs(pg.conn, "'all'").values()
    assert_figures(data["overall"], overall, sum(errors.values()))
    assert data["overall"]["calls"] == 36_000  # [01:00, 11:00): the 11:00:00 row is outside


def test_period_queue_and_top_errors(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--top", "3")
    assert data["period"]["from"] == "2026-03-01T01:00:00Z"
    assert data["period"]["to"] == "2026-03-01T11:00:00Z"
    assert data["period"]["seconds"] == 36_000
    assert data["period"]["empty"] is False

    backlog, oldest = pg.conn.execute(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 "
        "FROM callback_queue WHERE processed_at IS NULL"
    ).fetchone() or (None, None)
    assert data["queue"]["backlog"] == backlog == 7
    assert oldest is not None
    assert oldest - 30 <= data["queue"]["oldest_age_seconds"] <= oldest
    # The period ended long ago: today's queue is shown but not judged (see test_report_cli).
    assert data["queue"]["verdicts"] == {"backlog": "unknown"}

    expected = pg.conn.execute(
        "SELECT coalesce(error_message, ''), count(*), max(created_at) FROM callback_errors "
        "WHERE created_at >= '2026-03-01 01:00Z' AND created_at < '2026-03-01 11:00Z' "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3"
    ).fetchall()
    got = [
        (item["message"], item["count"], datetime.fromisoformat(item["last_seen"]))
        for item in data["top_errors"]
    ]
    assert got == [tuple(row) for row in expected]
    assert got[0][0] == "HTTP 500"


def test_event_type_filter(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--event-type", "refund", "--event-type", "unknown")
    assert [row["event_type"] for row in data["event_types"]] == ["refund", "unknown"]
    where = f"{EVENT_TYPE} IN ('refund', 'unknown')"
    (overall,) = truth_logs(pg.conn, "'all'", where=where).values()
    errors = truth_errors(pg.conn, EVENT_TYPE)
    assert_figures(data["overall"], overall, errors["refund"] + errors["unknown"])
    assert data["period"]["event_types"] == ["refund", "unknown"]


def test_series_by_hour_matches_sql(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--by", "hour")
    series = data["series"]
    assert len(series) == 10
    bucket = "date_trunc('hour', created_at AT TIME ZONE 'UTC')"
    overall = truth_logs(pg.conn, bucket)
    per_type = truth_logs(pg.conn, f"{bucket}::text || ' ' || {EVENT_TYPE}")
    errors = truth_errors(pg.conn, bucket)
    for point in series:
        start = datetime.fromisoformat(point["start"]).replace(tzinfo=None)
        assert_figures(point["overall"], overall[start], errors.get(start, 0))
        for row in point["event_types"]:
            key = f"{start:%Y-%m-%d %H:%M:%S} {row['event_type']}"
            if key in per_type:
                assert row["calls"] == per_type[key]["calls"]
                assert row["p99_ms"] == per_type[key]["p99_ms"]
    assert data["period"]["by"] == "hour"


def test_success_statuses_from_config(pg: PgSchema, tmp_path: Path) -> None:
    load(pg)
    config = write_config(pg, tmp_path / "cbmon.yml", "    success_statuses: [COMPLETED, DONE]\n")
    data = report_json(pg, config, *PERIOD)
    (overall,) = truth_logs(pg.conn, "'all'", success=("COMPLETED", "DONE")).values()
    assert data["overall"]["failures"] == overall["failures"]
    assert data["overall"]["success_rate"] == overall["success_rate"]


def test_own_table_and_column_names_in_seconds_and_zoneless_times(
    pg: PgSchema, tmp_path: Path
) -> None:
    pg.conn.execute(
        """
        CREATE TABLE attempts (n bigserial, kind text, outcome text, took_s numeric,
                               at timestamp);
        CREATE TABLE problems (n bigserial, kind text, what text, at timestamptz);
        CREATE TABLE jobs (n bigserial, kind text, queued timestamptz, done timestamptz);
        INSERT INTO attempts (kind, outcome, took_s, at)
        SELECT CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END,
               CASE WHEN i % 10 = 0 THEN 'bad' ELSE 'good' END,
               CASE WHEN i % 11 = 0 THEN NULL WHEN i % 13 = 0 THEN 5000 ELSE (i % 400) / 1000.0 END,
               timestamp '2026-03-01 02:00' + i * interval '1 second'
        FROM generate_series(1, 3000) AS i;
        INSERT INTO problems (kind, what, at) VALUES ('a', 'boom', '2026-03-01 03:00Z');
        INSERT INTO jobs (kind, queued, done) VALUES ('a', now(), NULL), ('b', now(), now());
        """
    )
    config = tmp_path / "own.yml"
    config.write_text(
        f"""
max_execution_time: 1h
tables:
  logs: {{schema: {pg.name}, table: attempts, event_type: kind, status: outcome,
          execution_time: took_s, created_at: at, success_statuses: [good],
          execution_time_unit: s}}
  errors: {{schema: {pg.name}, table: problems, event_type: kind, error_message: what,
            created_at: at}}
  queue: {{schema: {pg.name}, table: jobs, created_at: queued, processed_at: done}}
""",
        encoding="utf-8",
    )
    # A session zone far from UTC: the log's zoneless timestamps must still be read as UTC.
    tokyo = PgSchema(f"{pg.dsn}?options=-c%20TimeZone%3DAsia/Tokyo", pg.name, pg.conn)
    data = report_json(tokyo, config, *PERIOD)
    ms = "took_s::float8 * 1000"
    valid = "took_s BETWEEN 0 AND 3600"
    expected = pg.conn.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE outcome <> 'good'),
               count(*) FILTER (WHERE {valid}),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY {ms}) FILTER (WHERE {valid}),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY {ms}) FILTER (WHERE {valid}),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY {ms}) FILTER (WHERE {valid}),
               max({ms}) FILTER (WHERE {valid}),
               count(*) FILTER (WHERE {valid} AND {ms} > 200)
        FROM attempts
        """
    ).fetchone()
    assert expected is not None
    overall = data["overall"]
    got = (
        overall["calls"],
        overall["failures"],
        overall["observed"],
        overall["p50_ms"],
        overall["p95_ms"],
        overall["p99_ms"],
        overall["max_ms"],
    )
    assert got == tuple(expected[:7])
    assert overall["slow_share"] == expected[7] / expected[2]
    assert overall["errors"] == 1
    assert [row["event_type"] for row in data["event_types"]] == ["a", "b"]
    assert data["queue"]["backlog"] == 1


def test_series_by_day_within_one_day_equals_the_summary(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--by", "day")
    (day,) = data["series"]
    assert day["start"] == "2026-03-01T00:00:00Z"
    for name in ("calls", "failures", "observed", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert day["overall"][name] == data["overall"][name], name
    assert day["overall"]["avg_ms"] == pytest.approx(data["overall"]["avg_ms"], rel=1e-12)
    assert [row["event_type"] for row in day["event_types"]] == [
        row["event_type"] for row in data["event_types"]
    ]
