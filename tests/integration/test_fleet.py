"""A fleet in this process (:class:`~cbmon.sidecar.fleet.Fleet`): two databases' tables on the
real PostgreSQL and one database that never answers, one HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from cbmon.config import load_config
from cbmon.sidecar.fleet import Fleet
from tests.conftest import PgSchema, reference_schema, require_binary
from tests.support.processes import scrape, wait_for
from tests.support.receiver import Request, receiver


@contextmanager
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never says a word: a database that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def until(metrics: str, holds: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """The first scrape, database labels kept, of which ``holds`` is true."""

    def check() -> dict[str, float] | None:
        samples = scrape(metrics, database=True)
        return samples if holds(samples) else None

    return wait_for(check)


def _tables(pg: PgSchema) -> dict[str, dict[str, str]]:
    return {table: {"schema": pg.name} for table in ("logs", "errors", "queue")}


def test_each_database_is_polled_on_its_own_and_named_everywhere(
    pg: PgSchema, pg_dsn: str, tmp_path: Path
) -> None:
    with reference_schema(pg_dsn) as other, black_hole() as port:
        path = tmp_path / "fleet.yml"
        config = {
            "listen": "127.0.0.1:0",
            "poll_interval": "50ms",
            "wake": {"listen": False},
            "database": {"connect_timeout": "30s"},
            "targets": [
                {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)},
                {"name": "billing", "dsn": other.dsn, "tables": _tables(other)},
                {"name": "hung", "dsn": f"host=127.0.0.1 port={port} dbname=x user=x"},
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        fleet = Fleet(load_config(path, environ={}))
        server = fleet.start()
        thread = threading.Thread(target=fleet.run, daemon=True)
        thread.start()
        try:
            metrics = server.url + "/metrics"

            def polls(samples: dict[str, float], name: str) -> float:
                return samples.get(f'cbmon_polls_total{{database="{name}"}}', 0.0)

            # The hung database holds its poll for 30 s; the others poll every 50 ms.
            first = until(metrics, lambda s: polls(s, "billing") >= 2)
            later = until(
                metrics,
                lambda s: (
                    polls(s, "orders") >= polls(first, "orders") + 5
                    and polls(s, "billing") >= polls(first, "billing") + 5
                ),
            )
            assert later['cbmon_database_up{database="orders"}'] == 1
            assert later['cbmon_database_up{database="billing"}'] == 1
            assert later['cbmon_database_up{database="hung"}'] == 0
            assert polls(later, "hung") == 0
            # counted from the tail: a row committed after the first polls
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "VALUES ('pay', 'COMPLETED', 10)"
            )
            until(
                metrics,
                lambda s: (
                    s.get('cbmon_callback_attempts_total{database="orders",event_type="pay"}') == 1
                ),
            )
            assert 'cbmon_callback_attempts_total{database="billing",event_type="pay"}' not in later

            # One family per name, every database's samples in it: Prometheus' own lint agrees.
            body = requests.get(metrics, timeout=5).content
            lint = subprocess.run(
                [require_binary("promtool"), "check", "metrics"],
                input=body,
                capture_output=True,
                check=False,
            )
            assert (lint.returncode, lint.stdout, lint.stderr) == (0, b"", b"")

            status = requests.get(server.url + "/api/v1/status", timeout=5).json()
            names = [d["database"]["name"] for d in status["databases"]]
            assert names[0] == "hung"  # the worst first
            assert sorted(names) == ["billing", "hung", "orders"]
            page = requests.get(server.url + "/", timeout=5).text
            assert page.index(">hung<") < page.index(">billing<")
            one = requests.get(server.url + "/databases/orders/api/v1/status", timeout=5).json()
            assert one["database"] | {"name": "orders", "up": True} == one["database"]
            ready = requests.get(server.url + "/readyz", timeout=5)
            assert ready.status_code == 200
            assert "2 of 3 databases ready" in ready.text
            assert "hung" in ready.text
        finally:
            fleet.stop()
            thread.join(timeout=15)
            fleet.close()
        assert not thread.is_alive()


@contextmanager
def fleet_running(path: Path, **options: Any) -> Iterator[Fleet]:
    """``cbmon serve`` with ``targets:`` in this process: loaded from ``path`` (and again on
    a reload), serving, each database polled by its own thread."""
    fleet = Fleet(
        load_config(path, environ={}), reload_from=lambda: load_config(path, environ={}), **options
    )
    fleet.start()
    thread = threading.Thread(target=fleet.run, daemon=True)
    thread.start()
    try:
        yield fleet
    finally:
        fleet.stop()
        thread.join(timeout=15)
        fleet.close()
    assert not thread.is_alive()


def _insert(pg: PgSchema, ok: int, failed: int) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT 'pay', CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [failed, ok + failed],
    )


def test_the_same_alert_of_two_databases_is_two_alerts(
    pg: PgSchema, pg_dsn: str, tmp_path: Path
) -> None:
    with reference_schema(pg_dsn) as other, receiver() as hook:
        path = tmp_path / "fleet.yml"
        config = {
            "listen": "127.0.0.1:0",
            "poll_interval": "200ms",
            "slo": {"window": "1m", "for": "0s", "min_events": 10},
            "alerting": {"webhooks": [hook.url], "repeat_interval": "1h"},
            "targets": [
                {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)},
                {"name": "billing", "dsn": other.dsn, "tables": _tables(other)},
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        with fleet_running(path) as fleet:
            metrics = fleet.server.url + "/metrics" if fleet.server else ""
            until(
                metrics,
                lambda s: (
                    s.get('cbmon_polls_total{database="billing"}', 0) >= 1
                    and s.get('cbmon_polls_total{database="orders"}', 0) >= 1
                ),
            )
            _insert(pg, ok=50, failed=50)
            _insert(other, ok=50, failed=50)

            def both() -> list[Request] | None:
                requests = hook.requests[:]
                named = {r.json["commonLabels"].get("database") for r in requests}
                return requests if named >= {"orders", "billing"} else None

            sent = wait_for(both, timeout=20)
    firing = {
        r.json["commonLabels"]["database"]: r
        for r in sent
        if r.json["status"] == "firing"
        and r.json["groupLabels"]["alertname"] == "CallbackSuccessRateLow"
        and r.json["groupLabels"].get("event_type") is None
    }
    orders, billing = firing["orders"], firing["billing"]
    # the same alert, but two: their ids and fingerprints differ, their labels name each
    assert orders.headers["webhook-id"] != billing.headers["webhook-id"]
    assert orders.json["groupKey"] != billing.json["groupKey"]
    [a], [b] = orders.json["alerts"], billing.json["alerts"]
    assert a["fingerprint"] != b["fingerprint"]
    assert ({**a["labels"], "database": "billing"}) == b["labels"]


def test_a_reload_reaches_every_database(pg: PgSchema, tmp_path: Path) -> None:
    """Two names on the same tables, too: each is a database of its own, with its own state
    file and leader lock (both lead, neither waits on the other's lock)."""
    path = tmp_path / "fleet.yml"

    def write(alert: int) -> None:
        config = {
            "listen": "127.0.0.1:0",
            "poll_interval": "200ms",
            "alerting": {"webhooks": ["http://127.0.0.1:9/hook"]},
            "targets": [
                {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)},
                {
                    "name": "orders-copy",
                    "dsn": pg.dsn,
                    "tables": _tables(pg),
                    "thresholds": {"backlog": {"alert": alert}},
                },
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def backlog_alert(base: str, name: str) -> float | None:
        """The backlog's alert threshold the database's status shows; None before a poll."""
        document = requests.get(f"{base}/databases/{name}/api/v1/status", timeout=5).json()
        found = [i for i in document["indicators"] if i["slo"] == "backlog"]
        return float(found[0]["thresholds"]["alert"]) if found else None

    write(alert=6000)
    with fleet_running(path, lifecycle=True) as fleet:
        assert fleet.server is not None
        base = fleet.server.url
        wait_for(lambda: backlog_alert(base, "orders") and backlog_alert(base, "orders-copy"))
        assert (backlog_alert(base, "orders"), backlog_alert(base, "orders-copy")) == (5000, 6000)
        assert len({service.state.path for service in fleet.services}) == 2
        wait_for(lambda: all(service.dispatcher.is_leader for service in fleet.services))
        write(alert=7000)
        answer = requests.post(f"{base}/-/reload", timeout=10)
        assert answer.status_code == 200
        assert "orders-copy:" in answer.text
        wait_for(lambda: backlog_alert(base, "orders-copy") == 7000)
        assert backlog_alert(base, "orders") == 5000
