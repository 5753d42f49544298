"""``cbmon demo``: its scenarios, receivers and view, and the whole demo run as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql

from cbmon import signing
from cbmon.demo.receivers import AlertEvent, AlertReceiver, CallbackReceivers
from cbmon.demo.run import EXECUTOR_ROLE, reserve_listen
from cbmon.demo.scenario import SCENARIOS, Phase, slo_window
from cbmon.demo.view import Snapshot, panel, status_line
from cbmon.domain import Level
from cbmon.errors import ConfigError
from cbmon.slo.judge import OVERALL, Indicator
from tests.support.processes import CBMON, scrape, wait_for

# -- scenarios ------------------------------------------------------------------------------


def _phases(name: str, cycle: float) -> list[Phase]:
    """The phases one sees sampling the scenario every 100 ms over one cycle."""
    seen: list[Phase] = []
    for step in range(int(cycle * 10)):
        phase = SCENARIOS[name].at(step / 10, cycle).phase
        if not seen or seen[-1] is not phase:
            seen.append(phase)
    return seen


def test_degraded_passes_through_warning_into_critical_and_recovers() -> None:
    phases = _phases("degraded", 120.0)
    assert [p.name for p in phases] == ["healthy", "warning", "critical", "recovered"]
    healthy, warning, critical, recovered = phases
    # the receivers' behaviour lands in each band of the baseline (150/500 ms, 99.5/99 %)
    assert healthy.latency < 0.15
    assert healthy.failure_rate == 0
    assert 0.15 < warning.latency < 0.5
    assert 0.005 < warning.failure_rate < 0.01
    assert critical.latency > 0.5
    assert critical.failure_rate > 0.01
    assert recovered.latency < 0.15
    assert recovered.failure_rate == 0


@pytest.mark.parametrize("cycle", [40.0, 60.0, 120.0, 600.0])
def test_recovery_outlasts_the_window_so_alerts_can_resolve(cycle: float) -> None:
    recovered = SCENARIOS["degraded"].phases[-1]
    critical = SCENARIOS["degraded"].phases[-2]
    recovery_seconds = (recovered.until - critical.until) * cycle
    assert recovery_seconds >= slo_window(cycle) + 5  # the window empties, plus a poll or two
    assert 10 <= slo_window(cycle) <= 30


def test_backlog_scenario_queues_more_than_5000_while_receivers_stall() -> None:
    cycle = 60.0
    scenario = SCENARIOS["backlog"]
    queued = 0.0
    for step in range(int(cycle * 10)):
        conditions = scenario.at(step / 10, cycle)
        if conditions.phase.name == "stalled":
            assert conditions.phase.latency >= 1.0  # workers drain a few rows a second at most
            queued += (conditions.orders_per_second + conditions.ships_per_second) / 10
    assert queued > 5000


def test_the_scenario_repeats_when_the_demo_runs_until_stopped() -> None:
    degraded = SCENARIOS["degraded"]
    assert degraded.at(5.0, 120.0).phase.name == "healthy"
    assert degraded.at(60.0, 120.0).phase.name == "critical"
    assert degraded.at(125.0, 120.0).phase.name == "healthy"


# -- the live view --------------------------------------------------------------------------


def _snapshot() -> Snapshot:
    indicators = [
        Indicator("success_rate", OVERALL, 0.9712, Level.CRITICAL, 400),
        Indicator("avg_latency", OVERALL, 0.212, Level.WARNING, 400),
        Indicator("p95_latency", OVERALL, 0.75, Level.UNKNOWN, 400),
        Indicator("success_rate", "order_created", 0.96, Level.CRITICAL, 200),
        Indicator("avg_latency", "order_created", 0.3, Level.WARNING, 200),
        Indicator("backlog", OVERALL, 12.0, Level.OK, 12),
    ]
    return Snapshot(
        elapsed=42.0,
        duration=120.0,
        scenario="degraded",
        phase="critical",
        phase_text="receivers answer in ~750 ms, 4.0% failing",
        indicators=indicators,
        calls={"order_created": (200, 8), "order_shipped": (150, 2)},
        backlog=12,
        database_up=True,
        fired=3,
        resolved=1,
        firing=[
            "CallbackLatencyHigh/warning",
            "CallbackLatencyHigh/warning[order_created]",
            "CallbackSuccessRateLow/critical[order_created]",
        ],
    )


def test_status_line_shows_indicators_states_and_alerts() -> None:
    assert status_line(_snapshot()) == (
        "[0:42/2:00 critical] calls 350 failed 10 | success 97.12% CRITICAL"
        " | avg 212ms WARNING | p95 750ms | backlog 12 ok | alerts fired 3 resolved 1"
    )


def test_panel_has_a_row_per_event_type_and_the_firing_alerts() -> None:
    lines = panel(_snapshot())
    assert lines[0].startswith("0:42/2:00  scenario degraded, phase critical")
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["(all)"][1:5] == ["350", "10", "97.12%", "CRITICAL"]
    assert rows["order_created"][1:7] == ["200", "8", "96.00%", "CRITICAL", "300ms", "WARNING"]
    assert rows["order_shipped"][1:4] == ["150", "2", "-"]  # no indicator yet: not judged
    assert lines[-2] == "  queue backlog 12 ok"
    assert lines[-1] == (
        "  alerts: 3 fired, 1 resolved;"
        " firing now: CallbackLatencyHigh/warning x2, CallbackSuccessRateLow/critical"
    )


# -- --listen -------------------------------------------------------------------------------


@contextmanager
def _listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_reserve_listen_picks_a_free_port_for_port_zero() -> None:
    host, _, port = reserve_listen("127.0.0.1:0").rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_a_taken_port_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with _listening() as port:
        with pytest.raises(ConfigError, match="address already in use"):
            reserve_listen(f"127.0.0.1:{port}")
        started = time.monotonic()
        result = subprocess.run(
            [*CBMON, "demo", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "pg")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"cbmon: --listen 127.0.0.1:{port}: address already in use; "
        "pass --listen 127.0.0.1:0 for a free port"
    ]
    assert not (tmp_path / "pg").exists()  # no database was started for nothing
    assert time.monotonic() - started < 10


# -- the receivers --------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return requests.post(url, data=body, headers=headers, timeout=5).status_code


def test_callback_receivers_verify_signatures_and_fail_the_scenario_share() -> None:
    secret = signing.new_secret()
    phase = Phase("test", 1.0, 0.0, 0.25)
    receivers = CallbackReceivers(secret, lambda: phase, threading.Event())
    receivers.start()
    try:
        url = receivers.url("order_created")
        body = b'{"type":"order_created"}'
        assert _post(url, body, {"webhook-id": "msg_1"}) == 401
        forged = signing.sign(signing.new_secret(), "msg_2", None, body)
        assert _post(url, body, forged) == 401
        codes = [_post(url, body, signing.sign(secret, f"msg_{n}", None, body)) for n in range(8)]
        assert sorted(codes) == [200] * 6 + [500] * 2  # exactly a quarter fail
        counts = receivers.counts["/billing"]
        assert (counts.requests, counts.failed, counts.rejected) == (10, 2, 2)
    finally:
        receivers.close()


def test_alert_receiver_counts_firing_and_resolved_once_per_notification() -> None:
    secret = signing.new_secret()
    events: list[AlertEvent] = []
    receiver = AlertReceiver(secret, events.append)
    receiver.start()
    try:
        firing = {
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "CallbackLatencyHigh", "severity": "warning"},
                    "annotations": {"summary": "slow"},
                }
            ],
        }
        resolved = json.loads(json.dumps(firing).replace('"firing"', '"resolved"'))
        for msg_id, payload in (("msg_a", firing), ("msg_a", firing), ("msg_b", resolved)):
            body = json.dumps(payload).encode()
            assert _post(receiver.url, body, signing.sign(secret, msg_id, None, body)) == 200
        body = json.dumps(firing).encode()
        assert _post(receiver.url, body, signing.sign("whsec_" + "A" * 32, "x", None, body)) == 401
        counts = receiver.snapshot()
        assert (counts.notifications, counts.fired, counts.resolved, counts.rejected) == (
            2,
            1,
            1,
            1,
        )
        assert counts.firing == []
        assert [e.status for e in events] == ["firing", "resolved"]
    finally:
        receiver.close()


# -- the whole demo, as a process -----------------------------------------------------------


class Demo:
    """``cbmon demo`` in a subprocess, its output collected line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CBMON, "demo", "--no-live", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CBMON_LOG_LEVEL": "warning"},
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


@pytest.fixture
def demo_schema(pg_dsn: str) -> Iterator[str]:
    name = f"cbmon_demo_{secrets.token_hex(4)}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        # The demo's NOLOGIN executor role is cluster-wide; leave it only if another schema
        # (a demo the user ran by hand) still grants it something.
        with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(EXECUTOR_ROLE)))


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


@pytest.mark.slow
def test_degraded_demo_on_the_embedded_database_fires_and_resolves(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    started = time.monotonic()
    demo = Demo(
        "--data-dir", str(data_dir), "--scenario", "degraded", "--duration", "60s",
        "--listen", "127.0.0.1:0",
    )  # fmt: skip
    url = demo.metrics_url()
    assert time.monotonic() - started < 20  # the first thing a newcomer sees comes quickly
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
    assert re.search(r"alert FIRING CallbackLatencyHigh \(critical\):", output)
    assert re.search(r"alert RESOLVED CallbackLatencyHigh \((warning|critical)\):", output)
    fired, resolved = _summary_alerts(output)
    assert fired >= 2
    assert resolved == fired
    assert "rejected" not in output
    assert _port_closed(url)
    assert _postgres_running_in(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()
    assert time.monotonic() - started < 90


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
    stopping = time.monotonic()
    demo.process.send_signal(signal.SIGTERM)  # receivers are stalled: the workers are mid-call
    code = demo.wait(timeout=30)
    output = demo.output()
    assert code == 0, output + "\n".join(demo.errors)
    assert time.monotonic() - stopping < 15
    assert re.search(r"alert FIRING CallbackBacklogHigh \((warning|critical)\)", output)
    queue_line = re.search(r"queue now: (\d+) waiting \(backlog critical\)", output)
    assert queue_line, output
    assert int(queue_line.group(1)) > 5000
    assert _port_closed(url)
