"""Small helpers shared by tests: free ports, waiting, scraping, running cbmon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
CBMON = [sys.executable, "-m", "cbmon"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, every: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"gave up after {timeout}s; last value {last!r}")


def serve_command(
    dsn: str, config: Path, port: int, *extra: str, poll_interval: str = "200ms"
) -> list[str]:
    """``cbmon serve`` on 127.0.0.1:``port`` with a short poll interval."""
    return [
        *CBMON, "serve", "--dsn", dsn, "--config", str(config),
        "--listen", f"127.0.0.1:{port}", "--poll-interval", poll_interval, *extra,
    ]  # fmt: skip


def answers(url: str) -> bool:
    """True when ``url`` answers 200 (readiness probes); False while nothing listens."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def scrape_or_empty(url: str) -> dict[str, float]:
    """Like :func:`scrape`, but ``{}`` while the server is not up yet or has gone."""
    try:
        return scrape(url)
    except requests.RequestException:
        return {}


def poll_errors(samples: dict[str, float]) -> float:
    """``cbmon_poll_errors_total`` of a scrape, summed over its reasons."""
    return sum(v for k, v in samples.items() if k.startswith("cbmon_poll_errors_total{"))


def scrape(url: str, *, database: bool = False) -> dict[str, float]:
    """``/metrics`` as ``{'name{label="v"}': value}``, labels sorted. The ``database`` label,
    the same on every sample of one database's cbmon, is left out unless ``database``."""
    return samples_of(requests.get(url, timeout=5).text, database=database)


def samples_of(text: str, *, database: bool = False) -> dict[str, float]:
    """An exposition's samples as :func:`scrape` gives them."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            shown = {k: v for k, v in sample.labels.items() if database or k != "database"}
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for_scrape(
    url: str, holds: Callable[[dict[str, float]], bool], timeout: float = 15.0
) -> dict[str, float]:
    """Scrape ``url`` until ``holds(samples)``; return that scrape."""

    def check() -> dict[str, float] | None:
        metrics = scrape(url)
        return metrics if holds(metrics) else None

    return wait_for(check, timeout)


def wait_for_sample(url: str, key: str, value: float, timeout: float = 15.0) -> dict[str, float]:
    """Scrape ``url`` until sample ``key`` equals ``value``; return that scrape."""
    return wait_for_scrape(url, lambda metrics: metrics.get(key) == value, timeout)


def wait_for_polls(url: str, polls: int, timeout: float = 15.0) -> dict[str, float]:
    """A scrape taken once the server at ``url`` has run ``polls`` more polls than it had
    when called: what a negative check waits for instead of sleeping a guessed while."""
    start = scrape(url)["cbmon_polls_total"]
    return wait_for_scrape(url, lambda m: m.get("cbmon_polls_total", 0) >= start + polls, timeout)


@contextmanager
def running(
    args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in the background; SIGTERM it (then kill) when the block ends."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log:
            out.close()  # type: ignore[union-attr]
