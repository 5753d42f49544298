"""``cbmon report`` as a user meets it: verdicts, exit codes, bad input, one line per error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support import cli
from tests.support.report_data import PERIOD, load, report_json, write_config

ATTEMPTS = """
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT %(event_type)s, CASE WHEN i <= %(failures)s THEN 'FAILED' ELSE 'COMPLETED' END,
       %(ms)s, timestamptz '2026-03-01 02:00Z' + i * interval '1 second'
FROM generate_series(1, %(calls)s) AS i
"""


def attempts(pg: PgSchema, event_type: str, calls: int, failures: int, ms: float) -> None:
    pg.conn.execute(
        ATTEMPTS, {"event_type": event_type, "calls": calls, "failures": failures, "ms": ms}
    )


def cbmon(*args: str) -> cli.Outcome:
    """``cbmon report ARGS...`` with no database from the environment."""
    return cli.cbmon("report", *args, env={"CBMON_DSN": ""})


@pytest.fixture
def config(pg: PgSchema, tmp_path: Path) -> Path:
    return write_config(pg, tmp_path / "cbmon.yml")


def test_verdicts_follow_the_baseline_boundaries(pg: PgSchema, config: Path) -> None:
    attempts(pg, "exactly_995", 1000, 5, 100)  # 99.5 % is not above normal: warning
    attempts(pg, "fine", 1000, 4, 149.9)
    attempts(pg, "slow", 100, 0, 500.0)  # exactly the alert limit: warning, not critical
    attempts(pg, "too_few", 5, 5, 900.0)  # below slo.min_events (20): not judged
    data = report_json(pg, config, *PERIOD)
    # These attempts name no callback: the callbacks' verdicts have nothing to judge.
    untold = {"callback_success_rate": "unknown", "dead_letters": "unknown"}
    untold["end_to_end_p95"] = "unknown"
    verdicts = {
        row["event_type"]: {k: v for k, v in row["verdicts"].items() if k not in untold}
        for row in data["event_types"]
    }
    assert all(
        {k: v for k, v in row["verdicts"].items() if k in untold} == untold
        for row in data["event_types"]
    )
    assert verdicts == {
        "exactly_995": {"success_rate": "warning", "avg_latency": "ok"},
        "fine": {"success_rate": "ok", "avg_latency": "ok"},
        "slow": {"success_rate": "ok", "avg_latency": "warning"},
        "too_few": {"success_rate": "unknown", "avg_latency": "unknown"},
    }
    assert data["verdict"] == "warning"


def test_fail_on_exit_codes(pg: PgSchema, config: Path) -> None:
    base = ["--dsn", pg.dsn, "--config", str(config), *PERIOD, "--format", "json"]
    attempts(pg, "good", 1000, 0, 50)
    assert cbmon(*base, "--fail-on", "warning").code == 0
    attempts(pg, "meh", 1000, 7, 50)  # 99.3 %: warning
    assert cbmon(*base, "--fail-on", "critical").code == 0
    warned = cbmon(*base, "--fail-on", "warning")
    assert warned.code == 3
    assert json.loads(warned.stdout)["verdict"] == "warning"  # the report is still written
    attempts(pg, "bad", 100, 20, 50)
    assert cbmon(*base, "--fail-on", "critical").code == 4
    assert cbmon(*base, "--fail-on", "warning").code == 4
    assert cbmon(*base).code == 0


def test_backlog_verdict_counts_for_fail_on(pg: PgSchema, config: Path) -> None:
    pg.conn.execute(
        "INSERT INTO callback_queue (event_type) SELECT 'x' FROM generate_series(1, 5001)"
    )
    result = cbmon(
        "--dsn", pg.dsn, "--config", str(config), "--format", "json", "--fail-on", "critical"
    )
    assert result.code == 4
    queue = json.loads(result.stdout)["queue"]
    assert queue["backlog"] == 5001
    assert queue["verdicts"] == {"backlog": "critical"}
    assert json.loads(result.stdout)["overall"]["verdicts"]["backlog"] == "critical"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--since", "5 minutes"], 2, "is not a duration"),
        (["--since", "0"], 2, "must be above 0s"),
        (["--from", "yesterday"], 2, "not an ISO time"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], 2, "is not before --to"),
        (["--since", "1h", "--from", "2026-03-01"], 2, "use one of them"),
        (["--format", "xml"], 2, "'xml' is not one of"),
        (["--by", "week"], 2, "'week' is not minute, hour, day or a duration"),
        (["--by", "1s", "--since", "30d"], 2, "buckets over the period"),
        (["--fail-on", "sometimes"], 2, "is not one of"),
        (["--event-type", "no_such_type"], 2, "'no_such_type' never appears"),
        (["--output", "/nonexistent/dir/report.txt"], 2, "--output: cannot write"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line(
    pg: PgSchema, config: Path, args: list[str], code: int, words: str
) -> None:
    load(pg)
    result = cbmon("--dsn", pg.dsn, "--config", str(config), *args)
    assert result.code == code, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("cbmon: ")
    assert words in result.stderr


def test_unreachable_database_and_missing_table(pg: PgSchema, tmp_path: Path) -> None:
    down = cbmon("--dsn", "postgresql://cbmon:secret@127.0.0.1:1/test")
    assert down.code == 1
    assert len(down.stderr.splitlines()) == 1
    assert "cannot connect" in down.stderr
    assert "secret" not in down.stderr

    missing = tmp_path / "missing.yml"
    missing.write_text(f"tables:\n  logs:\n    schema: {pg.name}\n    table: nope\n")
    result = cbmon("--dsn", pg.dsn, "--config", str(missing))
    assert result.code == 1
    assert len(result.stderr.splitlines()) == 1
    assert f'relation "{pg.name}.nope" does not exist' in result.stderr

    no_dsn = cbmon()
    assert no_dsn.code == 2
    assert "no database given" in no_dsn.stderr


def test_statement_timeout_is_one_line(pg: PgSchema, tmp_path: Path) -> None:
    pg.conn.execute(
        "CREATE VIEW slow_logs AS SELECT l.* FROM callback_logs AS l, pg_sleep(2) AS pause"
    )
    config = write_config(pg, tmp_path / "slow.yml", logs_extra="    table: slow_logs\n")
    result = cbmon("--dsn", pg.dsn, "--config", str(config), "--statement-timeout", "300ms")
    assert result.code == 1
    assert result.stderr.splitlines() == [
        f"cbmon: reading {pg.name}.slow_logs: stopped by the statement timeout (300ms); "
        "raise it with --statement-timeout"
    ]


def test_known_event_type_outside_the_period_is_an_empty_report(pg: PgSchema, config: Path) -> None:
    load(pg)
    data = report_json(
        pg,
        config,
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-01-02T00:00:00Z",
        "--event-type",
        "refund",
    )
    assert data["period"]["empty"] is True
    assert data["overall"]["calls"] == 0
