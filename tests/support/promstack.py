"""Real Prometheus and Alertmanager on 127.0.0.1 for tests, and the dashboards' queries.

Each server gets free ports and a temporary directory of its own, starts with short intervals
and is stopped (SIGTERM, then SIGKILL) when its ``with`` block ends. Nothing listens beyond
the loopback interface.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support.processes import free_port, running

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


@dataclass(frozen=True)
class Target:
    """One query of one panel, as a person finds it in the dashboard."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows included; rows themselves left out."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(paths: list[Path] | None = None) -> list[Target]:
    found = []
    for path in paths or DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append(
                    Target(
                        dashboard=dashboard["title"],
                        panel=panel["title"],
                        ref_id=target.get("refId", ""),
                        expr=target.get("expr", ""),
                        instant=bool(target.get("instant")) and not target.get("range"),
                    )
                )
    return found


def expand(expr: str, values: dict[str, str]) -> str:
    """Grafana's variable substitution: ``$name`` and ``${name}`` (longest names first)."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    leftover = re.search(r"\$\{?\w+", expr)
    if leftover:
        raise AssertionError(f"no value for {leftover[0]} in {expr}")
    return expr


# --- Prometheus and Alertmanager ----------------------------------------------------------


@dataclass(frozen=True)
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def query_range(self, expr: str, seconds: float, step: str = "1s") -> list[dict[str, Any]]:
        end = time.time()
        result: list[dict[str, Any]] = self.api(
            "query_range", query=expr, start=str(end - seconds), end=str(end), step=step
        )["result"]
        return result


@dataclass(frozen=True)
class Alertmanager:
    url: str

    def alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def _ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait_ready(url: str, process: Any, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited with {process.returncode}:\n{log.read_text()}")
        if _ready(url):
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{log.read_text()}")


@contextmanager
def alertmanager(binary: str, workdir: Path, webhook_url: str) -> Iterator[Alertmanager]:
    """Alertmanager routing every alert to ``webhook_url`` after a short group wait."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname", "severity"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one instance, no port beyond the loopback
        "--log.level=warn",
    ]
    log = workdir / "alertmanager.log"
    with running(args, log=log) as process:
        _wait_ready(f"{url}/-/ready", process, log)
        yield Alertmanager(url)


@contextmanager
def prometheus(
    binary: str,
    workdir: Path,
    scrape_targets: list[str],
    rule_files: list[Path],
    alertmanager_url: str | None = None,
    job: str = "cbmon",
    interval: str = "1s",
    scrape: dict[str, Any] | None = None,
) -> Iterator[Prometheus]:
    """Prometheus scraping ``scrape_targets`` (host:port) as ``job`` and evaluating the rules
    every ``interval``; ``scrape`` adds to the scrape config (scheme, tls_config, ...)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": scrape_targets}], **(scrape or {})}
        ],
    }
    if alertmanager_url:
        host = alertmanager_url.removeprefix("http://")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Without this the first notification of a new alert waits for the default minute.
        "--rules.alert.resend-delay=1s",
        "--log.level=warn",
    ]
    log = workdir / "prometheus.log"
    with running(args, log=log) as process:
        _wait_ready(f"{url}/-/ready", process, log)
        yield Prometheus(url)
