"""``cbmon demo`` run as a user runs it: a process, its own or an existing database, signals."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.processes import CBMON, scrape, wait_for

pytestmark = pytest.mark.slow


class Demo:
    """``cbmon demo`` in a subprocess, its output collected line by line as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*CBMON, "demo", "--no-live", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CBMON_LOG_LEVEL": "warning", **(env or {})},
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        assert stream is not None
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def metrics_url(self) -> str:
        def found() -> str | None:
            match = re.search(r"metrics +(http://\S+/metrics)", self.output())
            return match.group(1) if match else None

        return wait_for(found, timeout=30, every=0.1)

    def wait(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(5)
        return code


def _attempts(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("cbmon_callback_attempts_total"))


def _port_closed(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return True
    return False


def _postgres_running_in(data_dir: Path) -> list[str]:
    """Command lines of live processes started on ``data_dir`` (the postmaster has -D DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found.append(cmdline)
    return found


def _summary_alerts(output: str) -> tuple[int, int]:
    match = re.search(r"alerts: (\d+) fired, (\d+) resolved \(", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def test_steady_demo_on_an_existing_database(pg_dsn: str, demo_schema: str) -> None:
    demo = Demo(
        "--dsn", pg_dsn, "--schema", demo_schema, "--scenario", "steady",
        "--duration", "12s", "--listen", "127.0.0.1:0", "--workers", "3",
    )  # fmt: skip
    url = demo.metrics_url()
    first = _attempts(scrape(url))
    moved = wait_for(lambda: _attempts(scrape(url)) > first + 20, timeout=15, every=0.5)
    assert moved
    code = demo.wait(timeout=40)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    assert f"schema {demo_schema}" in output
    summary = output[output.index("Summary") :]
    overall = next(line for line in summary.splitlines() if "(all)" in line).split()
    assert int(overall[1]) > 20
    assert overall[2] == "0"
    assert overall[3] == "100.00%"
    assert overall[-2:] == ["ok", "ok"]  # success rate and latency verdicts
    assert _summary_alerts(output) == (0, 0)
    assert "alert FIRING" not in output
    assert _port_closed(url)
    assert demo.errors == []


def test_degraded_demo_on_the_embedded_database_fires_and_resolves(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    demo = Demo(
        "--data-dir", str(data_dir), "--scenario", "degraded", "--duration", "60s",
        "--listen", "127.0.0.1:0",
    )  # fmt: skip
    url = demo.metrics_url()
    assert _postgres_running_in(data_dir)
    first = _attempts(scrape(url))
    wait_for(lambda: _attempts(scrape(url)) > first + 50, timeout=20, every=0.5)
    states = set()
    while demo.process.poll() is None and "stopping after" not in demo.output():
        try:
            metrics = scrape(url)
        except requests.ConnectionError:
            break
        states.add(metrics.get('cbmon_slo_state{event_type="",slo="avg_latency"}'))
        time.sleep(1)
    code = demo.wait(timeout=60)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    assert {0.0, 1.0, 2.0} <= states  # ok, warning and critical, as scraped from /metrics
    # critical reached: fired as such, or (the usual way) escalated from warning in one line
    assert re.search(
        r"alert (FIRING CallbackLatencyHigh \(critical\)"
        r"|ESCALATED CallbackLatencyHigh \(warning -> critical\)):",
        output,
    )
    assert re.search(r"alert RESOLVED CallbackLatencyHigh \((warning|critical)\):", output)
    fired, resolved = _summary_alerts(output)
    assert fired >= 2
    assert resolved == fired
    assert "rejected" not in output
    assert _port_closed(url)
    assert _postgres_running_in(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_embedded_database_and_every_thread(
    tmp_path: Path, signum: signal.Signals
) -> None:
    data_dir = tmp_path / "pgdata"
    demo = Demo("--data-dir", str(data_dir), "--scenario", "steady", "--listen", "127.0.0.1:0")
    url = demo.metrics_url()
    wait_for(lambda: _attempts(scrape(url)) > 10, timeout=20, every=0.5)
    demo.process.send_signal(signum)
    code = demo.wait(timeout=30)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    assert "stopping after" in output
    assert "Summary" in output
    assert _port_closed(url)
    assert _postgres_running_in(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()


def test_backlog_demo_grows_the_queue_past_5000_and_stops_with_receivers_stalled(
    pg_dsn: str, demo_schema: str
) -> None:
    demo = Demo(
        "--dsn", pg_dsn, "--schema", demo_schema, "--scenario", "backlog",
        "--duration", "30s", "--listen", "127.0.0.1:0",
    )  # fmt: skip
    url = demo.metrics_url()

    def backlog() -> float | None:
        value = scrape(url).get("cbmon_queue_backlog", 0.0)
        return value if value > 5000 else None

    assert wait_for(backlog, timeout=30, every=0.5) > 5000
    assert "phase stalled" in demo.output()
    demo.process.send_signal(signal.SIGTERM)  # receivers are stalled: the workers are mid-call
    code = demo.wait(timeout=30)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    assert re.search(r"alert FIRING CallbackBacklogHigh \((warning|critical)\)", output)
    queue_line = re.search(r"queue now: (\d+) waiting \(backlog critical\)", output)
    assert queue_line, output
    assert int(queue_line.group(1)) > 5000
    assert _port_closed(url)


def test_mechanism_demo_breaks_the_mechanism_and_each_alert_fires_and_resolves(
    cron_dsn: str, demo_schema: str
) -> None:
    """On a server with pg_cron preloaded, so that the scheduler's job is there to switch off;
    a private one, so that no other session's listener holds the NOTIFY queue."""
    demo = Demo(
        "--dsn", cron_dsn, "--schema", demo_schema, "--scenario", "mechanism",
        "--duration", "80s", "--listen", "127.0.0.1:0",
    )  # fmt: skip
    url = demo.metrics_url()

    def dropped() -> float | None:
        value = scrape(url).get('cbmon_rate_limited_total{bucket="order_created"}', 0.0)
        return value or None

    assert wait_for(dropped, timeout=40, every=0.5) > 0
    code = demo.wait(timeout=120)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    for alert, severity in (
        ("CallbackRateLimited", "warning"),
        ("CallbackRouteProblem", "warning"),
        ("CallbackNotifyQueueFilling", "warning"),
        ("CallbackSchedulerJobFailing", "critical"),
    ):
        assert re.search(rf"alert FIRING {alert} \({severity}\)", output), alert
        assert re.search(rf"alert RESOLVED {alert} \({severity}\)", output), alert
    assert "Event types with a routing problem: 1" in output
    assert _summary_alerts(output) == (4, 4)


@contextlib.contextmanager
def stopped_after_the_test() -> Iterator[list[Demo]]:
    """Demos started in the block are killed at its end, should an assertion stop it early."""
    demos: list[Demo] = []
    try:
        yield demos
    finally:
        for demo in demos:
            if demo.process.poll() is None:
                demo.process.kill()
            demo.wait(timeout=30)


def _overall(output: str) -> list[str]:
    summary = output[output.index("Summary") :]
    return next(line for line in summary.splitlines() if "(all)" in line).split()


def test_two_demos_at_once_each_have_their_own_server_and_leave_the_other_alone(
    tmp_path: Path,
) -> None:
    """The second demo, started as the "port taken" message suggests, gets a data directory
    and a port of its own; it neither recreates the first one's schema nor stops its server."""
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with stopped_after_the_test() as demos:
        _two_demos(tmp_path, cache, demos)


def _two_demos(tmp_path: Path, cache: dict[str, str], demos: list[Demo]) -> None:
    first = Demo("--scenario", "steady", "--duration", "40s", "--listen", "127.0.0.1:0", env=cache)
    demos.append(first)
    first_url = first.metrics_url()
    second = Demo("--scenario", "steady", "--duration", "15s", "--listen", "127.0.0.1:0", env=cache)
    demos.append(second)
    second_url = second.metrics_url()
    assert first_url != second_url
    pgdata = tmp_path / "cache" / "cbmon" / "pgdata"
    assert f"(data in {pgdata})" in first.output()
    assert f"(data in {pgdata}-2)" in second.output()
    assert _postgres_running_in(pgdata)
    assert second.wait(timeout=60) == 0, second.output() + "\n".join(second.errors)
    # The second has stopped its own server only; the first still counts callbacks.
    assert _postgres_running_in(Path(f"{pgdata}-2")) == []
    assert _postgres_running_in(pgdata)
    before = _attempts(scrape(first_url))
    assert wait_for(lambda: _attempts(scrape(first_url)) > before + 10, timeout=15, every=0.5)
    assert first.wait(timeout=60) == 0, first.output() + "\n".join(first.errors)
    for demo in (first, second):
        overall = _overall(demo.output())
        assert overall[3] == "100.00%", demo.output()  # steady: nothing failed in either
        # neither broke the other: no traceback, no table dropped under the other's feet
        stderr = "\n".join(demo.errors)
        assert "Traceback" not in stderr, stderr
        assert "does not exist" not in stderr, stderr
    assert _postgres_running_in(pgdata) == []


def test_a_data_directory_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    args = ("--data-dir", str(data_dir), "--scenario", "steady", "--listen", "127.0.0.1:0")
    with stopped_after_the_test() as demos:
        first = Demo(*args, "--duration", "60s")
        demos.append(first)
        url = first.metrics_url()
        second = Demo(*args)
        demos.append(second)
        assert second.wait(timeout=30) == 2
        assert second.lines == []
        (line,) = second.errors
        assert line.startswith(f"cbmon: --data-dir: {data_dir} is in use by another cbmon process")
        before = _attempts(scrape(url))
        assert wait_for(lambda: _attempts(scrape(url)) > before + 10, timeout=15, every=0.5)
        first.process.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.output() + "\n".join(first.errors)
    assert _postgres_running_in(data_dir) == []
