"""``cbmon serve`` as a user runs it: a real process, a real database, real HTTP."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql

from cbmon.reference import schema
from tests.conftest import PgSchema, require_binary
from tests.support.processes import (
    CBMON,
    answers,
    free_port,
    running,
    scrape,
    scrape_or_empty,
    serve_command,
    wait_for,
    wait_for_sample,
)


def write_config(pg: PgSchema, path: Path, extra: str = "") -> Path:
    path.write_text(
        "tables:\n"
        f"  logs: {{schema: {pg.name}}}\n"
        f"  errors: {{schema: {pg.name}}}\n"
        f"  queue: {{schema: {pg.name}}}\n" + extra
    )
    return path


def serve_args(dsn: str, config: Path, port: int) -> list[str]:
    return serve_command(dsn, config, port)


def test_serve_exports_exact_metrics_and_health(pg: PgSchema, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(pg, tmp_path / "cbmon.yml")
    url = f"http://127.0.0.1:{port}"
    with running(serve_args(pg.dsn, config, port), log=tmp_path / "serve.log") as proc:
        wait_for(lambda: answers(f"{url}/readyz"))
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "SELECT 'order_created', CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, "
            "g FROM generate_series(1, 1000) g"
        )
        pg.conn.execute("INSERT INTO callback_errors (event_type) VALUES ('order_created')")
        pg.conn.execute(
            "INSERT INTO callback_queue (event_type) SELECT 'x' FROM generate_series(1, 42)"
        )
        key = 'cbmon_callback_attempts_total{event_type="order_created"}'
        metrics = wait_for_sample(f"{url}/metrics", key, 1000)
        label = 'event_type="order_created"'
        assert metrics[f"cbmon_callback_failures_total{{{label}}}"] == 20
        assert metrics[f"cbmon_callback_errors_total{{{label}}}"] == 1
        assert metrics[f'cbmon_callback_duration_seconds_bucket{{{label},le="0.15"}}'] == 150
        assert metrics[f'cbmon_callback_duration_seconds_bucket{{{label},le="0.5"}}'] == 500
        assert metrics[f"cbmon_callback_duration_seconds_count{{{label}}}"] == 1000
        assert metrics[f"cbmon_callback_duration_seconds_sum{{{label}}}"] == pytest.approx(500.5)
        assert metrics["cbmon_queue_backlog"] == 42
        assert metrics["cbmon_database_up"] == 1
        assert metrics['cbmon_build_info{version="0.1.0"}'] == 1
        assert time.time() - metrics["cbmon_last_poll_timestamp_seconds"] < 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_exposition_passes_promtool(pg: PgSchema, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    port = free_port()
    config = write_config(pg, tmp_path / "cbmon.yml")
    with running(serve_args(pg.dsn, config, port)):
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "VALUES ('a', 'COMPLETED', 10), ('b', 'FAILED', NULL)"
        )
        wait_for(
            lambda: (
                'cbmon_callback_attempts_total{event_type="b"}'
                in scrape(f"http://127.0.0.1:{port}/metrics")
            )
        )
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).content
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b""
    assert result.stderr.strip() == b""


def test_database_down_at_start_then_up(tmp_path: Path, pg: PgSchema) -> None:
    """cbmon starts without its database, says so, and counts once the database answers."""
    port = free_port()
    config = write_config(pg, tmp_path / "cbmon.yml")
    url = f"http://127.0.0.1:{port}"
    dead = f"postgresql://root@127.0.0.1:{free_port()}/test"
    with running(serve_args(dead, config, port)):
        metrics = wait_for(lambda: scrape_or_empty(f"{url}/metrics"))
        assert metrics["cbmon_database_up"] == 0
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 503
        wait_for(lambda: scrape(f"{url}/metrics")["cbmon_poll_errors_total"] >= 1)
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


def test_read_only_role_is_enough_and_cannot_write(pg: PgSchema, tmp_path: Path) -> None:
    role = f"{pg.name}_ro"
    schema.apply(pg.dsn, schema=pg.name, role=role)
    ro_dsn = psycopg.conninfo.make_conninfo(pg.dsn, user=role)
    try:
        port = free_port()
        config = write_config(pg, tmp_path / "cbmon.yml")
        args = [*serve_args(ro_dsn, config, port), "--webhook", "http://127.0.0.1:9/unused"]
        with running(args):
            url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status) VALUES ('ro', 'COMPLETED')"
            )
            metrics = wait_for_sample(url, 'cbmon_callback_attempts_total{event_type="ro"}', 1)
            # The leader lock needs no write privilege either.
            assert metrics["cbmon_leader"] == 1
        with psycopg.connect(ro_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg.name)))
            # Sessions are read-only by default...
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('x', 'y')")
            # ...and a session that turns that off still has no right to write.
            conn.execute("SET default_transaction_read_only = off")
            for statement in (
                "INSERT INTO callback_logs (event_type, status) VALUES ('x', 'y')",
                "DELETE FROM callback_queue",
                "UPDATE callback_queue SET processed_at = now()",
                "TRUNCATE callback_errors",
                "CREATE TABLE stolen (x int)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


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

        with running(serve_args(db.dsn, config, port), log=tmp_path / "serve.log"):
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
            assert metrics["cbmon_poll_errors_total"] >= 1
            time.sleep(1)
            assert scrape(url)[key] == 160
        with psycopg.connect(db.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM callback_logs").fetchone()
            assert row is not None
            assert row[0] == 160
    # The restarted server is stopped too: nothing runs on this data directory any more.
    assert not (data / "postmaster.pid").exists()
    running_here = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True)
    assert running_here.stdout == ""


def test_sigint_stops_cleanly(pg: PgSchema, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(pg, tmp_path / "cbmon.yml")
    with running(serve_args(pg.dsn, config, port)) as proc:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_serve_does_not_import_pandas() -> None:
    code = (
        "import sys; from cbmon.cli import cli; cli.get_command(None, 'serve');"
        "import cbmon.sidecar.service; print('pandas' in sys.modules)"
    )
    python = shutil.which("python3") or "python3"
    del python
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
