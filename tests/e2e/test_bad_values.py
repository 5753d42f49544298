"""``cbmon serve`` reading a duration column that holds values no duration can be: they are
counted as attempts with invalid durations, counting goes on, the database stays up and the
log says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support.processes import (
    answers,
    free_port,
    poll_errors,
    running,
    serve_command,
    wait_for,
    wait_for_sample,
)

pytestmark = pytest.mark.slow

ATTEMPTS = 'cbmon_callback_attempts_total{event_type="v"}'
INVALID = 'cbmon_callback_invalid_durations_total{event_type="v"}'
INSERT = (
    "INSERT INTO callback_logs (event_type, status, execution_time) VALUES ('v', 'COMPLETED', %s)"
)


def test_serve_counts_on_over_values_that_are_no_duration(pg: PgSchema, tmp_path: Path) -> None:
    pg.conn.execute("DROP VIEW callback_metrics")
    pg.conn.execute("ALTER TABLE callback_logs ALTER execution_time TYPE text")
    pg.conn.execute(INSERT, ["n/a"])  # before start: read by the window's backfill
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = pg.write_config(tmp_path / "cbmon.yml")
    log = tmp_path / "serve.log"
    with running(serve_command(pg.dsn, config, port), log=log) as proc:
        wait_for(lambda: answers(f"{base}/readyz"))
        for value in ("120", "n/a", "1" + "0" * 400, "80"):
            pg.conn.execute(INSERT, [value])
        metrics = wait_for_sample(f"{base}/metrics", ATTEMPTS, 4)
        assert metrics[INVALID] == 2
        assert metrics['cbmon_callback_duration_seconds_count{event_type="v"}'] == 2
        pg.conn.execute(INSERT, ["15"])  # and counting goes on
        metrics = wait_for_sample(f"{base}/metrics", ATTEMPTS, 5)
        assert metrics[INVALID] == 2
        assert metrics["cbmon_database_up"] == 1
        assert poll_errors(metrics) == 0
        assert proc.poll() is None
    text = log.read_text()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "cannot use" in line]
    assert lines, text
    assert all(f"{pg.name}.callback_logs.execution_time" in line for line in lines)
    assert any("'n/a'" in line for line in lines)
    assert all(len(line) < 500 for line in lines)
