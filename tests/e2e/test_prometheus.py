"""alerts.yml and the dashboards against the real thing: Debian's Prometheus and Alertmanager,
``cbmon serve`` on the real PostgreSQL with traffic written into its tables, and a webhook
receiver behind Alertmanager, all on 127.0.0.1.

It proves what a user relies on: Prometheus scrapes cbmon and loads every rule of alerts.yml,
every query of every dashboard panel returns data, a breach of the baseline reaches the
receiver through Alertmanager, and cbmon's real exposition passes ``promtool check metrics``.
"""

from __future__ import annotations

import math
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import PgSchema, require_binary
from tests.support.processes import answers, free_port, running, serve_command, wait_for
from tests.support.promstack import ROOT, Prometheus, alertmanager, expand, prometheus, targets
from tests.support.receiver import Receiver, receiver

pytestmark = pytest.mark.slow

ALERTS = ROOT / "alerts.yml"
TRAFFIC = ROOT / "alerts-traffic.yml"
EVENT_TYPES = ("order_created", "payment_settled")


class Traffic:
    """Writes attempts into callback_logs every ``every`` seconds until stopped; a share of
    order_created attempts fails once ``failing`` is set."""

    def __init__(self, pg: PgSchema, every: float = 0.25) -> None:
        self.pg = pg
        self.every = every
        self.failing = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def batch(self) -> None:
        fail = 10 if self.failing.is_set() else 0  # of 40: a 75 % success rate for the type
        with self.pg.connect() as conn:
            conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "SELECT 'order_created', CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, "
                "20 + g * 2 FROM generate_series(1, 40) g",
                (fail,),
            )
            # Callbacks told apart: queued 200 ms before their first, delivering attempt, so
            # the callbacks' panels (tries, end to end, queue wait) have data too.
            conn.execute(
                "WITH queued AS ("
                " INSERT INTO callback_queue (event_type, created_at, processed_at, outcome)"
                " SELECT 'payment_settled', now() - interval '200 milliseconds', now(),"
                " 'delivered' FROM generate_series(1, 20) RETURNING id) "
                "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt) "
                "SELECT 'payment_settled', 'COMPLETED', 30 + id % 20, id, 1 FROM queued"
            )
            if fail:
                conn.execute(
                    "INSERT INTO callback_errors (event_type, error_message) "
                    "SELECT 'order_created', 'HTTP 503 from receiver' FROM generate_series(1, %s)",
                    (fail,),
                )

    def run(self) -> None:
        try:
            while not self.stop.wait(self.every):
                self.batch()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
            raise


@contextmanager
def traffic(pg: PgSchema) -> Iterator[Traffic]:
    writer = Traffic(pg)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stop.set()
        thread.join(timeout=10)
    if writer.error is not None:
        raise writer.error


def _write_cbmon_config(pg: PgSchema, path: Path) -> Path:
    config = {
        "tables": {table: {"schema": pg.name} for table in ("logs", "errors", "queue")},
        "slo": {"window": "1m", "for": "0s", "min_events": 1},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


def _firing(hook: Receiver, alertname: str, severity: str) -> tuple[Any, Any] | None:
    """The first notification (payload, alert) in which that alert fires."""
    for body in hook.bodies():
        for alert in body["alerts"]:
            labels = alert["labels"]
            if (
                alert["status"] == "firing"
                and labels["alertname"] == alertname
                and labels["severity"] == severity
            ):
                return body, alert
    return None


def _states(prom: Prometheus, alertname: str, severity: str) -> set[str]:
    """The states (pending, firing) Prometheus holds that alert in now."""
    return {
        alert["state"]
        for alert in prom.api("alerts")["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["labels"]["severity"] == severity
    }


def _all_dashboard_queries_return_data(
    prom: Prometheus, skip: set[str], timeout: float = 30.0
) -> None:
    """Rules need a few evaluations before their series exist: retry, then name the misses."""
    deadline = time.monotonic() + timeout
    missing = _dashboard_queries_without_data(prom, skip)
    while missing and time.monotonic() < deadline:
        time.sleep(1.0)
        missing = _dashboard_queries_without_data(prom, skip)
    assert missing == [], "\n".join(missing)


# The mechanism's sources and the names each feeds (docs/metrics.md#the-mechanism): its
# metrics, and the recorded series made of them.
MECHANISM_SOURCES = {
    "notify_queue": "cbmon_notify_queue_usage_ratio",
    "listeners": "cbmon_listener_up",
    "scheduler": "scheduler_job",
    "rate_limits": "cbmon_rate_limit",
    "router": "cbmon_route_problems",
    "handlers": "cbmon_handler_",
}


def _mechanism_off(prom: Prometheus) -> set[str]:
    """The queries of mechanism sources this database lacks (pg_cron, the router, function
    statistics): cbmon says which in cbmon_mechanism_source_state, and exports nothing else
    of them. The sources it found must still return data."""
    result = prom.query('cbmon_mechanism_source_state{state="ok"} == 1')
    found = {series["metric"]["source"] for series in result}
    assert "notify_queue" in found, found
    off = [name for source, name in MECHANISM_SOURCES.items() if source not in found]
    return {t.expr for t in targets() if any(name in t.expr for name in off)}


def _dashboard_queries_without_data(prom: Prometheus, skip: set[str]) -> list[str]:
    values = {
        "DS_PROMETHEUS": "prometheus",
        "job": ".+",  # the "All" value of the job variable
        "database": ".*",  # and of the database variable
        "event_type": "order_created",
        "__rate_interval": "15s",
        "__range": "5m",
    }
    missing = []
    for target in targets():
        if target.expr in skip:
            continue
        expr = expand(target.expr, values)
        if not _has_finite_value(prom.query(expr)):
            missing.append(f"{target.dashboard} / {target.panel} / {target.ref_id}: {expr}")
    return missing


def test_rules_dashboards_and_alert_delivery_against_cbmon(pg: PgSchema, tmp_path: Path) -> None:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager")
    promtool = require_binary("promtool")

    # Queue items waiting for a while, and one error row per type so every series exists
    # before the traffic starts (cbmon counts from the tables' tail when it starts).
    pg.conn.execute(
        "INSERT INTO callback_queue (event_type, created_at) "
        "SELECT 'order_created', now() - interval '90 seconds' FROM generate_series(1, 42)"
    )
    port = free_port()
    cbmon_url = f"http://127.0.0.1:{port}"
    config = _write_cbmon_config(pg, tmp_path / "cbmon.yml")
    serve = serve_command(pg.dsn, config, port, poll_interval="1s")
    with (
        receiver() as hook,
        running(serve, log=tmp_path / "cbmon.log"),
        alertmanager(alertmanager_bin, tmp_path / "alertmanager", hook.url) as am,
        prometheus(
            prometheus_bin,
            tmp_path / "prometheus",
            [f"127.0.0.1:{port}"],
            [ALERTS, TRAFFIC],
            alertmanager_url=am.url,
        ) as prom,
    ):
        wait_for(lambda: answers(f"{cbmon_url}/readyz"), timeout=30)
        for event_type in EVENT_TYPES:
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "VALUES (%s, 'COMPLETED', 40), (%s, 'FAILED', -1)",
                (event_type, event_type),
            )
            pg.conn.execute(
                "INSERT INTO callback_errors (event_type, error_message) VALUES (%s, 'timeout')",
                (event_type,),
            )

        # Prometheus scrapes cbmon.
        wait_for(lambda: prom.query('up{job="cbmon"} == 1'), timeout=30)
        wait_for(
            lambda: len(prom.query("cbmon_callback_attempts_total")) == len(EVENT_TYPES),
            timeout=30,
        )

        with traffic(pg) as writer:
            # Prometheus loaded every rule cbmon rules generated, and each evaluates without
            # error.
            expected = [
                group
                for path in (ALERTS, TRAFFIC)
                for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
            ]
            groups = prom.api("rules")["groups"]
            assert sorted(g["name"] for g in groups) == sorted(g["name"] for g in expected)
            assert sum(len(g["rules"]) for g in groups) == sum(len(g["rules"]) for g in expected)
            wait_for(
                lambda: all(
                    r["health"] == "ok" for g in prom.api("rules")["groups"] for r in g["rules"]
                ),
                timeout=15,
            )

            # cbmon's real exposition, under traffic, passes Prometheus's own lint.
            body = requests.get(f"{cbmon_url}/metrics", timeout=5).content
            lint = subprocess.run(
                [promtool, "check", "metrics"], input=body, capture_output=True, check=False
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr
            assert lint.stdout.strip() == b""
            assert lint.stderr.strip() == b""

            # The breach: a quarter of order_created attempts fail from now on.
            writer.failing.set()
            wait_for(
                lambda: prom.query(
                    'cbmon:callback_success_ratio:rate5m{event_type="order_created"} < 0.99'
                ),
                timeout=30,
            )
            # The alert waits out its `for: 1m` as pending before it may fire.
            first = wait_for(lambda: _states(prom, "CallbackSuccessRateLow", "critical"), 30)
            assert first == {"pending"}, first

            # While the alert waits out its `for`, every dashboard query must return data;
            # the firing-alerts table can only once an alert fires.
            alerts_table = {t.expr for t in targets() if t.expr.startswith("ALERTS")}
            assert alerts_table
            off = _mechanism_off(prom)
            _all_dashboard_queries_return_data(prom, skip=alerts_table | off)

            # Prometheus -> Alertmanager -> the webhook receiver.
            payload, alert = wait_for(
                lambda: _firing(hook, "CallbackSuccessRateLow", "critical"),
                timeout=100,
                every=0.5,
            )
            labels = alert["labels"]
            assert labels["job"] == "cbmon"
            assert labels.get("event_type") in ("order_created", None)
            # cbmon's own wording, with the value Prometheus filled in.
            summary = alert["annotations"]["summary"]
            assert re.fullmatch(r"Callback success rate [\d.]+% for .+ \(below 99\.00%\)", summary)
            assert "cbmon report --since 1h" in alert["annotations"]["description"]
            assert payload["version"] == "4"
            assert payload["receiver"] == "webhook"
            assert any(a["labels"]["alertname"] == "CallbackSuccessRateLow" for a in am.alerts())

            _all_dashboard_queries_return_data(prom, skip=off, timeout=10)
