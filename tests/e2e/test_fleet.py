"""A fleet for real: three private PostgreSQL clusters, one ``cbmon serve`` with ``targets:``,
and Debian's Prometheus scraping it with alerts.yml. One cluster is stopped mid-run: it
alerts (database down) while the others' polls go on without waiting for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from cbmon.reference import schema
from tests.conftest import require_binary
from tests.support.cluster import Cluster
from tests.support.processes import CBMON, answers, free_port, running, scrape, wait_for
from tests.support.promstack import ROOT, Prometheus, prometheus

pytestmark = pytest.mark.slow

NAMES = ("orders-eu", "orders-us", "billing")
STOPPED = "billing"


def _rules(path: Path) -> Path:
    """alerts.yml as it is, but for CbmonDatabaseDown's `for`: 5s rather than a minute, so
    the test waits seconds for what it checks."""
    rules = yaml.safe_load((ROOT / "alerts.yml").read_text(encoding="utf-8"))
    [down] = [
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "CbmonDatabaseDown"
    ]
    down["for"] = "5s"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def _insert(cluster: Cluster, count: int) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "SELECT 'pay', 'COMPLETED', 30 FROM generate_series(1, %s)",
            (count,),
        )


def _by_database(prom: Prometheus, expr: str) -> dict[str, float]:
    return {s["metric"].get("database", ""): float(s["value"][1]) for s in prom.query(expr)}


def _until(prom: Prometheus, expr: str, count: int = 3) -> dict[str, float]:
    """``expr``'s value per database once it has ``count`` databases."""

    def check() -> dict[str, float] | None:
        found = _by_database(prom, expr)
        return found if len(found) == count else None

    return wait_for(check, timeout=30)


def _last_polls(url: str) -> dict[str, float]:
    samples = scrape(url, database=True)
    return {
        name: samples[f'cbmon_last_poll_timestamp_seconds{{database="{name}"}}'] for name in NAMES
    }


def test_three_databases_in_one_prometheus_one_stopped(lab_root: Path, tmp_path: Path) -> None:
    prometheus_bin = require_binary("prometheus")
    clusters = {name: Cluster(lab_root, name).init().start() for name in NAMES}
    for cluster in clusters.values():
        schema.apply(cluster.dsn(), role=None)
    config: dict[str, Any] = {
        "poll_interval": "200ms",
        "database": {"connect_timeout": "2s", "statement_timeout": "2s"},
        "slo": {"window": "1m", "for": "0s", "min_events": 1},
        "targets": [{"name": name, "dsn": c.dsn()} for name, c in clusters.items()],
    }
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [*CBMON, "serve", "--config", str(path), "--listen", f"127.0.0.1:{port}"]
    with (
        running(serve, log=tmp_path / "cbmon.log"),
        prometheus(
            prometheus_bin,
            tmp_path / "prometheus",
            [f"127.0.0.1:{port}"],
            [_rules(tmp_path / "r.yml")],
        ) as prom,
    ):
        wait_for(lambda: answers(f"{url}/readyz"), timeout=30)
        wait_for(
            lambda: (
                scrape(f"{url}/metrics", database=True).get(
                    f'cbmon_database_up{{database="{STOPPED}"}}'
                )
                == 1
            ),
            timeout=30,
        )
        for count, cluster in enumerate(clusters.values(), start=1):
            _insert(cluster, 10 * count)

        # Each database is named in Prometheus' series, with its own counts.
        attempts = _until(prom, "cbmon_callback_attempts_total")
        assert attempts == {"orders-eu": 10, "orders-us": 20, "billing": 30}
        up = _until(prom, "cbmon_database_up")
        assert up == dict.fromkeys(NAMES, 1.0)
        recorded = _until(prom, 'cbmon:callback_attempts:rate5m{event_type=""}')
        assert set(recorded) == set(NAMES)  # the rules keep each database apart

        clusters[STOPPED].stop()
        wait_for(lambda: _by_database(prom, "cbmon_database_up").get(STOPPED) == 0, timeout=30)
        stopped_at = _last_polls(f"{url}/metrics")

        # The stopped database alerts, through Prometheus and on cbmon's own pages.
        firing = wait_for(
            lambda: prom.query('ALERTS{alertname="CbmonDatabaseDown",alertstate="firing"}'),
            timeout=60,
        )
        assert [a["metric"]["database"] for a in firing] == [STOPPED]

        # Meanwhile the others kept polling: their last polls advanced, the stopped one's not.
        later = _last_polls(f"{url}/metrics")
        assert later[STOPPED] == stopped_at[STOPPED]
        for name in ("orders-eu", "orders-us"):
            assert later[name] > stopped_at[name] + 1, name
        ages = _by_database(prom, "time() - cbmon_last_poll_timestamp_seconds")
        assert max(ages["orders-eu"], ages["orders-us"]) < 5, ages
        _insert(clusters["orders-eu"], 5)
        wait_for(lambda: _by_database(prom, "cbmon_callback_attempts_total").get("orders-eu") == 15)

        status = requests.get(f"{url}/api/v1/status", timeout=5).json()
        first = status["databases"][0]["database"]
        assert (first["name"], first["up"]) == (STOPPED, False)
        page = requests.get(f"{url}/", timeout=5).text
        assert page.index(f">{STOPPED}<") < page.index(">orders-eu<")
        assert "DATABASE DOWN" in page
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
