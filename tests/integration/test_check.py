"""``cbmon check`` as a monitoring agent runs it: the first line and the Nagios exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
