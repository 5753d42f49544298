"""Alertmanager as a receiver: the real Debian prometheus-alertmanager, started here, gets
cbmon's alerts through /api/v2/alerts, routes them to a webhook, and resolves them by itself
when cbmon dies while they fire."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgSchema, require_binary
from tests.support.processes import free_port, running, scrape_or_empty, serve_command, wait_for
from tests.support.promstack import alertmanager
from tests.support.receiver import Receiver, receiver

pytestmark = pytest.mark.slow


def config(pg: PgSchema, path: Path) -> Path:
    return pg.write_config(
        path,
        "slo: {window: 1m, for: 0s, min_events: 10}\n"
        # re-sent every second, so endsAt is 4 s ahead while firing
        "alerting: {resend_interval: 1s, cluster: shop}\n",
    )


def insert(pg: PgSchema, ok: int, failed: int) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT 'pay', CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [failed, ok + failed],
    )


def routed(hook: Receiver, status: str) -> list[dict[str, Any]] | None:
    """The alerts Alertmanager's webhook delivered with ``status``, for both scopes."""
    alerts = [a for body in hook.bodies() for a in body["alerts"] if a["status"] == status]
    scopes = {a["labels"].get("event_type", "all") for a in alerts}
    return alerts if scopes >= {"all", "pay"} else None


def test_alerts_reach_alertmanager_resolve_and_expire_when_cbmon_dies(
    pg: PgSchema, tmp_path: Path
) -> None:
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    with receiver() as hook, alertmanager(binary, tmp_path / "am", hook.url) as am:
        args = serve_command(
            pg.dsn, config(pg, tmp_path / "c.yml"), port, "--alertmanager", am.url,
            poll_interval="250ms",
        )  # fmt: skip
        with running(args, log=tmp_path / "serve.log"):
            wait_for(lambda: scrape_or_empty(metrics).get("cbmon_database_up") == 1)
            insert(pg, ok=95, failed=5)
            firing = wait_for(lambda: routed(hook, "firing"), timeout=30)
            labels = {a["labels"]["alertname"] for a in firing}
            assert labels == {"CallbackSuccessRateLow"}
            assert {a["labels"]["cluster"] for a in firing} == {"shop"}
            assert {a["labels"]["severity"] for a in firing} == {"critical"}
            assert any("95.00%" in a["annotations"]["summary"] for a in firing)
            insert(pg, ok=20_000, failed=0)
            wait_for(lambda: routed(hook, "resolved"), timeout=30)
            name = am.url.removeprefix("http://")
            posted = scrape_or_empty(metrics)[
                f'cbmon_alertmanager_posts_total{{alertmanager="http://{name}"}}'
            ]
            assert posted >= 2
        # Firing again, then cbmon is killed: nobody will ever say "resolved"...
        with running(args, log=tmp_path / "serve2.log") as second:
            insert(pg, ok=0, failed=5000)  # 20,095 of 25,100 over the window: 80 %
            wait_for(lambda: [a for a in am.alerts() if a["status"]["state"] == "active"])
            hook.requests.clear()
            second.send_signal(signal.SIGKILL)
            second.wait()
        # ...so Alertmanager resolves it itself once endsAt (4 resend intervals) has passed.
        resolved = wait_for(lambda: routed(hook, "resolved"), timeout=30)
        assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved)
        assert not [a for a in am.alerts() if a["labels"].get("cluster") == "shop"]
