"""``cbmon serve`` as a process: what only a process shows (signals, a database restart under
it, its imports, its exit code and last line)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import psycopg
import pytest
import requests

from cbmon.reference import schema
from tests.conftest import PgSchema
from tests.support.processes import (
    CBMON,
    answers,
    free_port,
    poll_errors,
    running,
    scrape,
    serve_command,
    wait_for,
    wait_for_polls,
    wait_for_sample,
)

pytestmark = pytest.mark.slow


def write_config(pg: PgSchema, path: Path) -> Path:
    path.write_text(
        "tables:\n"
        + "".join(f"  {t}: {{schema: {pg.name}}}\n" for t in ("logs", "errors", "queue"))
    )
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_serve_cleanly(pg: PgSchema, tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = pg.write_config(tmp_path / "cbmon.yml")
    log = tmp_path / "serve.log"
    with running(serve_command(pg.dsn, config, port), log=log) as proc:
        wait_for(lambda: answers(f"{base}/readyz"))
        pg.conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('s', 'COMPLETED')")
        wait_for_sample(f"{base}/metrics", 'cbmon_callback_attempts_total{event_type="s"}', 1)
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
    assert log.read_text().strip().splitlines()[-1].endswith("cbmon: stopped")


def test_counts_stay_exact_across_a_database_restart(tmp_path: Path) -> None:
    """Rows written before, during and after a restart are each counted once."""
    from cbmon.db.embedded import EmbeddedPostgres

    data = tmp_path / "pgdata"
    with EmbeddedPostgres(data) as db:
        schema.apply(db.dsn, schema="public", role=None)
        config = tmp_path / "cbmon.yml"
        config.write_text("poll_interval: 200ms\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        key = 'cbmon_callback_attempts_total{event_type="r"}'

        def insert(n: int) -> None:
            with psycopg.connect(db.dsn, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO callback_logs (event_type, status, execution_time) "
                    "SELECT 'r', 'COMPLETED', 5 FROM generate_series(1, %s)",
                    [n],
                )

        with running(serve_command(db.dsn, config, port), log=tmp_path / "serve.log"):
            wait_for(lambda: answers(url.replace("/metrics", "/readyz")))
            insert(100)
            wait_for(lambda: scrape(url).get(key) == 100)
            # An uncommitted writer holds a low id across the restart: it is rolled back.
            pending = psycopg.connect(db.dsn)
            pending.execute("INSERT INTO callback_logs (event_type, status) VALUES ('r', 'X')")
            insert(10)
            db.restart(mode="immediate")
            with pytest.raises(psycopg.OperationalError):
                pending.execute("SELECT 1")
            pending.close()
            insert(50)
            metrics = wait_for_sample(url, key, 160, timeout=30)
            assert metrics["cbmon_database_up"] == 1
            assert poll_errors(metrics) >= 1
            # Polls go on over the same rows; none of them counts a row twice.
            assert wait_for_polls(url, 5)[key] == 160
        with psycopg.connect(db.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM callback_logs").fetchone()
            assert row is not None
            assert row[0] == 160
    # The restarted server is stopped too: nothing runs on this data directory any more.
    assert not (data / "postmaster.pid").exists()
    running_here = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True)
    assert running_here.stdout == ""


def test_serve_does_not_import_pandas() -> None:
    code = (
        "import sys; from cbmon.cli import cli; cli.get_command(None, 'serve');"
        "import cbmon.sidecar.service; print('pandas' in sys.modules)"
    )
    out = subprocess.run([CBMON[0], "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_tables_are_one_clear_line(pg: PgSchema, tmp_path: Path) -> None:
    config = tmp_path / "cbmon.yml"
    config.write_text("tables: {logs: {schema: nowhere}}\n")
    result = subprocess.run(
        [*CBMON, "serve", "--dsn", pg.dsn, "--config", str(config), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('cbmon: schema "nowhere" does not exist')
    assert "tables.logs/errors/queue" in last
