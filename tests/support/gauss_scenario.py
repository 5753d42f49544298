"""What cbmon must do on openGauss, as one scenario both openGauss tiers run: the emulation on
PostgreSQL (tests/integration/test_gauss_emulation.py) and a real server
(tests/integration/test_opengauss.py).

schema apply, the mechanism, the worker (delivering by polling alone), serve (in-process),
check and report, each through cbmon's own entry points.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from psycopg import sql

from cbmon.cli import cli
from cbmon.config import load_config
from cbmon.reference import mechanism
from cbmon.reference.worker import Worker, WorkerOptions
from cbmon.sidecar.service import Service
from cbmon.web.collector import CallbackCollector
from tests.support.receiver import Receiver

SCHEMA = "app"
ORDERS = 5


@dataclasses.dataclass
class Outcome:
    registry: CollectorRegistry
    worker: Worker
    check: Any
    report: Any
    delivered: int


def config_file(tmp: Path, state: Path) -> Path:
    path = tmp / "cbmon.yml"
    tables = {name: {"schema": SCHEMA} for name in ("logs", "errors", "queue")}
    path.write_text(
        json.dumps(
            {
                "listen": "127.0.0.1:9863",
                "tables": tables,
                "alerting": {"state_dir": str(state)},
                "slo": {"min_events": 1},
            }
        )
    )
    return path


def apply_schema(admin_dsn: str, role: str) -> None:
    result = CliRunner().invoke(
        cli, ["schema", "apply", "--dsn", admin_dsn, "--schema", SCHEMA, "--role", role]
    )
    assert result.exit_code == 0, result.output
    assert f"role {role!r}" in result.output


def run(admin_dsn: str, reader_dsn: str, executor: str, tmp: Path, receiver: Receiver) -> Outcome:
    """Everything after ``schema apply``: mechanism, worker, orders, serve, check, report."""
    mechanism.apply(admin_dsn, schema=SCHEMA, executor_role=executor)
    stop = threading.Event()
    worker = Worker(
        admin_dsn,
        schema=SCHEMA,
        options=WorkerOptions(default_url=receiver.url, poll_interval=0.2, timeout=5),
        stop=stop,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    config_path = config_file(tmp, tmp / "state")
    config = load_config(config_path, dsn=reader_dsn, environ={})
    service = Service(config)
    try:
        service.poll_once()  # the first poll starts at the tail
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
            for number in range(ORDERS):
                conn.execute(
                    "INSERT INTO orders (customer, amount) VALUES (%s, 10)", [f"c{number}"]
                )
        receiver.wait(ORDERS, timeout=30)
        deadline = time.monotonic() + 30
        while worker.stats.completed < ORDERS and time.monotonic() < deadline:
            time.sleep(0.1)
        service.poll_once()
        registry = CollectorRegistry()
        registry.register(CallbackCollector(service.store))
    finally:
        stop.set()
        thread.join(timeout=10)
        service.close()
    runner = CliRunner()
    check = runner.invoke(
        cli, ["check", "--dsn", reader_dsn, "--config", str(config_path), "--format", "json"]
    )
    report = runner.invoke(
        cli,
        [
            "report",
            "--dsn",
            reader_dsn,
            "--config",
            str(config_path),
            "--since",
            "1h",
            "--format",
            "json",
        ],
    )
    return Outcome(registry, worker, check, report, worker.stats.completed)
