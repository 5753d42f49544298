"""A fleet in this process (:class:`~cbmon.sidecar.fleet.Fleet`): two databases' tables on the
real PostgreSQL and one database that never answers, one HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cbmon import scope
from cbmon.cli import logs
from cbmon.config import load_config
from cbmon.sidecar.fleet import Fleet
from tests.conftest import PgSchema, reference_schema, require_binary
from tests.support.processes import free_port, scrape, wait_for
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


@pytest.mark.slow
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


@contextmanager
def fleet_log() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """cbmon's lines as the command writes them, in text and in JSON at once: the command's
    formatters, each with the filter that names the database."""
    text, as_json = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in ((text, logs.TextFormatter()), (as_json, logs.JsonFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(scope.DatabaseFilter())
        handlers.append(handler)
    cbmon_log = logging.getLogger("cbmon")
    level = cbmon_log.level
    cbmon_log.setLevel(logging.INFO)
    for handler in handlers:
        cbmon_log.addHandler(handler)
    try:
        yield text, as_json
    finally:
        for handler in handlers:
            cbmon_log.removeHandler(handler)
        cbmon_log.setLevel(level)


def test_every_thread_of_a_database_names_it_in_its_lines(
    pg: PgSchema, pg_dsn: str, tmp_path: Path
) -> None:
    """The webhook outbox, the Alertmanager sender, the LISTEN session and the reloader of
    each database say which one they are about, in text and in JSON."""
    hook, alertmanager = f"http://127.0.0.1:{free_port()}/hook", f"http://127.0.0.1:{free_port()}"
    with reference_schema(pg_dsn) as other, fleet_log() as (text, as_json):
        path = tmp_path / "fleet.yml"
        schemas = {"orders": pg.name, "billing": other.name}
        config = {
            "listen": "127.0.0.1:0",
            "poll_interval": "200ms",
            "slo": {"window": "1m", "for": "0s", "min_events": 10},
            "alerting": {"webhooks": [hook], "alertmanagers": [alertmanager]},
            "targets": [
                {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)},
                {"name": "billing", "dsn": other.dsn, "tables": _tables(other)},
            ],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        _insert(pg, ok=50, failed=50)
        _insert(other, ok=50, failed=50)
        kinds = {
            "outbox": "webhook http://127.0.0.1:",
            "alertmanager": "alertmanager http://127.0.0.1:",
            "listen": "no cbmon_wake trigger on ",
            "reload": "configuration reloaded (SIGHUP)",
        }

        def said() -> dict[str, dict[str, str]]:
            """Each kind's first line per database, from the JSON log."""
            found: dict[str, dict[str, str]] = {kind: {} for kind in kinds}
            for line in as_json.getvalue().splitlines():
                entry = json.loads(line)
                for kind, start in kinds.items():
                    if entry["msg"].startswith(start) and "database" in entry:
                        found[kind].setdefault(entry["database"], entry["msg"])
            return found

        with fleet_running(path) as fleet:
            fleet.request_reload("SIGHUP")

            def everywhere() -> dict[str, dict[str, str]] | None:
                found = said()
                return found if all(len(v) == 2 for v in found.values()) else None

            lines = wait_for(everywhere, timeout=20)
    for kind, by_database in lines.items():
        assert set(by_database) == {"orders", "billing"}, kind
    for database, schema in schemas.items():  # each LISTEN line is about its own tables
        assert f"{schema}.callback_logs" in lines["listen"][database]
    nameless = [
        entry
        for entry in map(json.loads, as_json.getvalue().splitlines())
        if entry["logger"] != "cbmon.sidecar.fleet" and "database" not in entry
    ]
    assert nameless == []  # every line a database's pipeline logs names it
    for kind, start in kinds.items():
        for database in schemas:
            assert any(
                f": database {database}: {start}" in line for line in text.getvalue().splitlines()
            ), (kind, database)


def test_a_reload_starts_the_databases_newly_listed_and_stops_those_no_longer_listed(
    pg: PgSchema, pg_dsn: str, tmp_path: Path
) -> None:
    """The file is read once: a target added polls and exports at once, one removed leaves
    /metrics and its page and frees its lock, one whose DSN changed polls again from the new
    one, and a file with an error changes nothing."""
    path = tmp_path / "fleet.yml"

    def write(targets: list[dict[str, Any]] | str) -> None:
        config: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "poll_interval": "100ms",
            "wake": {"listen": False},
            "slo": {"window": "1m", "for": "0s", "min_events": 10},
            "alerting": {"webhooks": ["http://127.0.0.1:9/hook"]},
            "targets": targets,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def databases(samples: dict[str, float]) -> set[str]:
        return {key.split('database="')[1].split('"')[0] for key in samples if 'database="' in key}

    with reference_schema(pg_dsn) as other, fleet_log() as (text, _):
        orders = {"name": "orders", "dsn": pg.dsn, "tables": _tables(pg)}
        billing = {"name": "billing", "dsn": other.dsn, "tables": _tables(other)}
        write([orders])
        _insert(pg, ok=50, failed=50)  # orders breaches: two alerts firing
        with fleet_running(path, lifecycle=True) as fleet:
            assert fleet.server is not None
            base = fleet.server.url
            metrics = base + "/metrics"
            until(
                metrics,
                lambda s: (
                    s.get(
                        'cbmon_alerts_firing{alertname="CallbackSuccessRateLow",'
                        'database="orders",severity="critical"}'
                    )
                    == 2
                ),
            )
            (leaving,) = fleet.services
            wait_for(lambda: leaving.dispatcher.is_leader)

            write([orders, billing])
            answer = requests.post(f"{base}/-/reload", timeout=10)
            assert answer.status_code == 200
            assert "billing: added" in answer.text
            until(metrics, lambda s: s.get('cbmon_database_up{database="billing"}') == 1)
            _insert(other, ok=7, failed=3)  # counted from the tail, as at a start
            until(
                metrics,
                lambda s: (
                    s.get('cbmon_callback_attempts_total{database="billing",event_type="pay"}')
                    == 10
                ),
            )
            page = requests.get(f"{base}/databases/billing/api/v1/status", timeout=5)
            assert page.status_code == 200

            write([billing])
            answer = requests.post(f"{base}/-/reload", timeout=10)
            assert answer.status_code == 200
            assert "orders: removed" in answer.text
            assert databases(scrape(metrics, database=True)) == {"billing"}
            assert requests.get(f"{base}/databases/orders/", timeout=5).status_code == 404
            assert [snapshot.database.name for snapshot in fleet.snapshots()] == ["billing"]
            # Its lock is free: another replica could take it now.
            assert leaving.leadership.key is not None
            taken = pg.conn.execute(
                "SELECT pg_try_advisory_lock(%s)", [leaving.leadership.key]
            ).fetchone()
            assert taken == (True,)
            pg.conn.execute("SELECT pg_advisory_unlock(%s)", [leaving.leadership.key])
            said = text.getvalue().splitlines()
            (warning,) = [line for line in said if "removed" in line]
            assert "WARNING" in warning
            assert "database orders: removed from the fleet" in warning
            assert "2 alert(s) it had firing" in warning
            assert any("database billing: added to the fleet" in line for line in said)

            polled = fleet.services[0]
            write([{**billing, "dsn": other.dsn + "?application_name=cbmon-moved"}])
            answer = requests.post(f"{base}/-/reload", timeout=10)
            assert answer.status_code == 200
            assert "billing: started again on its new DSN" in answer.text
            assert fleet.services[0] is not polled
            until(metrics, lambda s: s.get('cbmon_database_up{database="billing"}') == 1)
            _insert(other, ok=1, failed=0)
            until(
                metrics,
                lambda s: (
                    s.get('cbmon_callback_attempts_total{database="billing",event_type="pay"}') == 1
                ),
            )

            path.write_text("targets: [{name: x}\n", encoding="utf-8")  # not YAML
            answer = requests.post(f"{base}/-/reload", timeout=10)
            assert answer.status_code != 200
            after = scrape(metrics, database=True)
            assert databases(after) == {"billing"}
            assert after['cbmon_config_last_reload_successful{database="billing"}'] == 0
