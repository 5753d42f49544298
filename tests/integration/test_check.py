"""``cbmon check`` as a monitoring agent runs it: the first line and the Nagios exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PgSchema
from tests.support.cli import cbmon
from tests.support.processes import free_port


@pytest.mark.parametrize(
    ("ok", "failed", "backlog", "code", "word"),
    [
        (1000, 0, 0, 0, "OK"),
        (993, 7, 0, 1, "WARNING"),
        (950, 50, 0, 2, "CRITICAL"),
        (1000, 0, 6000, 2, "CRITICAL"),
        (1, 1, 0, 0, "OK"),
    ],
)
def test_check_exit_codes(
    pg: PgSchema, tmp_path: Path, ok: int, failed: int, backlog: int, code: int, word: str
) -> None:
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 1m, for: 0s, min_events: 10}\n")
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT 'pay', CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [failed, ok + failed],
    )
    pg.conn.execute(
        "INSERT INTO callback_queue (event_type) SELECT 'q' FROM generate_series(1, %s)", [backlog]
    )
    args = ["check", "--dsn", pg.dsn, "--config", str(config)]
    table = cbmon(*args)
    assert table.code == code, table.stdout + table.stderr
    assert table.stdout.startswith(f"CBMON {word} - ")
    as_json = cbmon(*args, "--format", "json")
    assert as_json.code == code
    data = json.loads(as_json.stdout)
    assert data["exit_code"] == code
    overall = {i["slo"]: i for i in data["indicators"] if i["event_type"] is None}
    assert overall["backlog"]["value"] == backlog
    if ok + failed >= 10:
        assert overall["success_rate"]["value"] == pytest.approx(ok / (ok + failed))
    else:
        assert overall["success_rate"]["state"] == "unknown"  # too few events to judge


def test_check_unknown_when_the_database_is_away() -> None:
    result = cbmon("check", "--dsn", f"postgresql://root@127.0.0.1:{free_port()}/x")
    assert result.code == 3
    assert result.stdout.startswith("CBMON UNKNOWN - cannot connect")
    assert result.stdout.count("\n") == 1


INSERT_RECENT = """
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT (ARRAY['pay', 'ship', 'refund'])[1 + i % 3],
       CASE WHEN i % 41 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
       CASE WHEN i % 53 = 0 THEN NULL ELSE (i * 7919 % 10007) / 13.0 END,
       now() - (i % 240) * interval '1 second'
FROM generate_series(1, 245) AS i
"""


def test_check_gives_exact_percentiles_from_the_database(pg: PgSchema, tmp_path: Path) -> None:
    """p95 is percentile_cont over the window, per event type and overall, never a bucket
    estimate: the values are spread so that any interpolation between bucket edges differs."""
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 10m, min_events: 10}\n")
    pg.conn.execute(INSERT_RECENT)
    # Rows outside the window must not count.
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'COMPLETED', 99999, now() - interval '1 hour' FROM generate_series(1, 50)"
    )
    result = cbmon("check", "--dsn", pg.dsn, "--config", str(config), "--format", "json")
    data = json.loads(result.stdout)
    p95 = {i["event_type"]: i for i in data["indicators"] if i["slo"] == "p95_latency"}
    truth = dict(
        pg.conn.execute(
            "SELECT coalesce(event_type, 'all'), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time) / 1000 "
            "FROM callback_logs WHERE created_at > now() - interval '10 minutes' "
            "AND execution_time IS NOT NULL GROUP BY ROLLUP (event_type)"
        ).fetchall()
    )
    assert set(truth) == {"all", "pay", "ship", "refund"}
    for event_type, value in truth.items():
        got = p95[None if event_type == "all" else event_type]
        assert got["value"] == pytest.approx(value, rel=1e-12), event_type
        assert got["state"] is None  # shown, not judged: the baseline has no p95 rule
    overall = {i["slo"]: i for i in data["indicators"] if i["event_type"] is None}
    assert overall["success_rate"]["events"] == 245
    assert overall["p95_latency"]["events"] == 245 - 245 // 53  # NULL durations not observed
    table = cbmon("check", "--dsn", pg.dsn, "--config", str(config)).stdout
    line = next(x.split() for x in table.splitlines() if x.split()[:2] == ["p95_latency", "all"])
    assert line[2] == f"{truth['all'] * 1000:.1f}"


def test_check_nagios_output_as_an_agent_reads_it(pg: PgSchema, tmp_path: Path) -> None:
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 1m, min_events: 10}\n")
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT 'pay', CASE WHEN g <= 3 THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, 601) g"
    )
    result = cbmon("check", "--dsn", pg.dsn, "--config", str(config), "--format", "nagios")
    assert result.code == 0, result.stdout  # 598 of 601 is 99.5008 %: above 99.5 %, ok
    first, *rest = result.stdout.splitlines()
    status, perf = first.split(" | ")
    assert status.startswith("CBMON OK - ")
    assert "'success_rate'=99.500832%;@~:99.5;99:;0;100" in perf.split()
    assert "'avg_latency'=40ms;@150:;500;0" in perf.split()
    assert "'calls'=601;;;0" in perf.split()
    pay = next(line for line in rest if line.startswith("pay: "))
    assert pay.startswith("pay: success_rate 99.501% ok")  # never "99.50%": a warning
    assert "'success_rate[pay]'=99.500832%" in rest[-1]


def test_check_refuses_a_zero_window_instead_of_using_the_default(pg: PgSchema) -> None:
    result = cbmon("check", "--dsn", pg.dsn, "--window", "0s")
    assert result.code == 3
    assert result.stdout.startswith("CBMON UNKNOWN - ")
    assert "'0s' is not above 0s" in result.stdout


def test_check_counts_rows_a_little_ahead_of_the_clock_and_leaves_the_far_ones_out(
    pg: PgSchema, tmp_path: Path
) -> None:
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 5m, min_events: 5}\n")
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'FAILED', 10, now() + interval '1 day' FROM generate_series(1, 50)"
    )
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'COMPLETED', 10, now() + interval '30 seconds' FROM generate_series(1, 20)"
    )
    result = cbmon("check", "--dsn", pg.dsn, "--config", str(config), "--format", "json")
    data = json.loads(result.stdout)
    assert result.code == 0
    assert data["rows_dated_ahead"] == {"logs": 50, "errors": 0}
    overall = {i["slo"]: i for i in data["indicators"] if i["event_type"] is None}
    assert overall["success_rate"]["events"] == 20  # within slo.clock_skew (1m): counted


@pytest.mark.parametrize(
    ("objectives", "code", "word"),
    [
        ("", 2, "CRITICAL"),  # 99.5 %: 1.2 % failed spends the budget more than twice over
        ("objectives: {success_rate: {target: 98.5%}}\n", 1, "WARNING"),  # 80 % of it spent
        ("objectives: {success_rate: {target: 90%}}\n", 0, "OK"),
    ],
)
def test_check_judges_the_error_budget_over_the_period(
    pg: PgSchema, tmp_path: Path, objectives: str, code: int, word: str
) -> None:
    """Rows of the last 20 days, 1.2 % of them failed: the budget spent is exact from SQL."""
    config = pg.write_config(tmp_path / "c.yml", objectives)
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', CASE WHEN g % 250 < 3 THEN 'FAILED' ELSE 'COMPLETED' END, 40, "
        "now() - (g % 20) * interval '1 day' FROM generate_series(1, 5000) g"
    )
    pg.conn.execute(  # older than the period: left out
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'FAILED', 40, now() - interval '40 days' FROM generate_series(1, 500)"
    )
    args = ["check", "--budget", "--dsn", pg.dsn, "--config", str(config)]
    table = cbmon(*args)
    assert table.code == code, table.stdout + table.stderr
    assert table.stdout.startswith(f"CBMON {word} - ")
    document = json.loads(cbmon(*args, "--format", "json").stdout)
    overall = next(b for b in document["budgets"] if b["event_type"] is None)
    target = overall["target"]
    assert (overall["events"], overall["bad"]) == (5000, 60)
    assert overall["remaining"] == pytest.approx(1 - (60 / 5000) / (1 - target))
    nagios = cbmon(*args, "--format", "nagios").stdout
    assert "'budget_success_rate'=" in nagios
    assert ";25:;@~:0" in nagios


def test_check_budget_refuses_a_window(pg: PgSchema) -> None:
    ran = cbmon("check", "--budget", "--window", "5m", "--dsn", pg.dsn)
    assert ran.code == 3
    assert "--window cannot be used with --budget" in ran.stdout


def test_check_probes_the_mechanism_and_judges_it_as_serve_does(
    mech: PgSchema, tmp_path: Path
) -> None:
    """A limiter drained by a burst and a route whose handler function was dropped: each
    figure is the SQL that defines it, each indicator a line, the exit code the worst."""
    pg = mech
    pg.conn.execute(
        "INSERT INTO callback_limits (bucket_id, tokens, capacity, refill_per_second)"
        " VALUES ('order_created', 3, 3, 0)"
    )
    pg.conn.execute(
        "INSERT INTO orders (customer, amount) SELECT 'c', g FROM generate_series(1, 8) g"
    )
    pg.conn.execute(
        "CREATE FUNCTION refund_payload(p jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT p'"
    )
    pg.conn.execute(
        "INSERT INTO callback_router (event_type, handler_function, retry_policy, enabled)"
        " VALUES ('refund', 'refund_payload', '{\"max_retries\": 3}', true)"
    )
    pg.conn.execute("DROP FUNCTION refund_payload(jsonb)")
    config = pg.write_config(
        tmp_path / "c.yml",
        "slo: {window: 1m, min_events: 10}\n"
        "mechanism: {notify_queue_usage: {normal: 50%, alert: 90%}}\n",
    )
    args = ["check", "--dsn", pg.dsn, "--config", str(config)]
    missing = pg.conn.execute(
        "SELECT count(*) FROM callback_router r WHERE r.handler_function IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND p.proname = r.handler_function)",
        (pg.name,),
    ).fetchone()
    assert missing is not None
    dropped, tokens = one(pg, "SELECT dropped, tokens FROM callback_limits")
    assert (missing, dropped, tokens) == ((1,), 5, 0)  # the setup as the database has it

    data = json.loads(cbmon(*args, "--format", "json").stdout)
    assert data["exit_code"] == 1
    found = {i["slo"]: i for i in data["indicators"] if i["event_type"] is None}
    usage = one(pg, "SELECT pg_notification_queue_usage()::float8")[0]
    assert found["notify_queue_usage"]["value"] == usage
    assert found["notify_queue_usage"]["state"] == "ok"
    route = found["route_problems"]
    assert (route["value"], route["state"]) == (missing[0], "warning")
    # One probe cannot tell when the drops happened: not judged, never a made-up 0.
    assert (found["rate_limited"]["value"], found["rate_limited"]["state"]) == (None, "unknown")
    assert "scheduler_jobs_failing" not in found  # no pg_cron here: off, said once
    named = data["mechanism"]["named"]
    assert named["route_problems"] == "missing_handler: refund"
    assert named["rate_limited"] == f"order_created: {dropped} dropped in all, 0 of 3 tokens left"
    said = data["mechanism"]["said"]
    assert said.count("mechanism: scheduler is off: no pg_cron in this database") == 1

    result = cbmon(*args, "--format", "nagios")
    assert result.code == 1, result.stdout + result.stderr
    first, *rest = result.stdout.splitlines()
    status, perf = first.split(" | ")
    assert status == "CBMON WARNING - route_problems 1 (all)"
    assert f"'notify_queue_usage'={usage * 100:.6f}".rstrip("0").rstrip(".") in perf
    assert "'route_problems'=1;@1:;;0" in perf.split()
    assert "'rate_limited'=U;@1:;;0" in perf.split()
    lines = {line.split()[0]: line for line in rest}
    assert lines["route_problems"] == "route_problems 1 warning (missing_handler: refund)"
    assert lines["rate_limited"].startswith("rate_limited - unknown (order_created: 5 dropped")
    assert lines["notify_queue_usage"].endswith(" ok")
    off = [line for line in rest if line.startswith("mechanism: scheduler is off")]
    assert len(off) == 1


def test_check_leaves_the_mechanism_alone_when_it_is_disabled(
    mech: PgSchema, tmp_path: Path
) -> None:
    config = mech.write_config(tmp_path / "c.yml", "mechanism: {enabled: false}\n")
    result = cbmon("check", "--dsn", mech.dsn, "--config", str(config), "--format", "nagios")
    assert result.code == 0, result.stdout
    assert "mechanism" not in result.stdout
    assert "route_problems" not in result.stdout


def one(pg: PgSchema, query: str) -> Any:
    row = pg.conn.execute(query).fetchone()
    assert row is not None
    return row


@pytest.mark.slow
def test_check_finds_a_disabled_scheduler_job_critical(cron: PgSchema, tmp_path: Path) -> None:
    """On a cluster with pg_cron: the reference job disabled is critical at once."""
    pg = cron
    pg.conn.execute("SELECT cron.alter_job(jobid, active := false) FROM cron.job")
    inactive = one(pg, "SELECT count(*), min(jobname) FROM cron.job WHERE NOT active")
    assert inactive[0] == 1
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 1m}\n")
    result = cbmon("check", "--dsn", pg.dsn, "--config", str(config), "--format", "nagios")
    assert result.code == 2, result.stdout + result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("CBMON CRITICAL - scheduler_jobs_failing 1 (all) | ")
    assert f"'scheduler_jobs_failing'={inactive[0]};@1:;0;0" in first.split()
    job = next(line for line in rest if line.startswith("scheduler_jobs_failing"))
    assert job == f"scheduler_jobs_failing 1 critical ({inactive[1]}: disabled)"
    assert not [line for line in rest if line.startswith("mechanism: scheduler")]


def test_check_names_the_grant_a_source_needs_once(
    mech: PgSchema, read_only_dsn: str, tmp_path: Path
) -> None:
    pg = mech
    role = str(psycopg.conninfo.conninfo_to_dict(read_only_dsn)["user"])
    revoke = sql.SQL("REVOKE SELECT ON callback_router FROM {}")
    pg.conn.execute(revoke.format(sql.Identifier(role)))
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 1m}\n")
    result = cbmon("check", "--dsn", read_only_dsn, "--config", str(config), "--format", "nagios")
    assert result.code == 0, result.stdout + result.stderr  # what it cannot read is not a fault
    said = [line for line in result.stdout.splitlines() if "router is not readable" in line]
    assert len(said) == 1
    assert said[0].startswith("mechanism: router is not readable: permission denied")
    assert said[0].endswith(f"GRANT SELECT ON {pg.name}.callback_router TO {role}")
    assert "mechanism:" not in result.stderr  # said on stdout, not again in the log
    assert "route_problems - unknown" in result.stdout.splitlines()
