"""Two ``cbmon serve`` replicas on one database: one sends the alerts, and when its process is
killed the other takes over and re-sends what fires."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support.processes import (
    free_port,
    running,
    scrape_or_empty,
    serve_command,
    wait_for,
    wait_for_polls,
)
from tests.support.receiver import receiver

pytestmark = pytest.mark.slow

PAY_SUCCESS_STATE = 'cbmon_slo_state{event_type="pay",slo="success_rate"}'


def _one_leader(urls: list[str]) -> list[float] | None:
    values = [scrape_or_empty(u).get("cbmon_leader", -1.0) for u in urls]
    return values if sorted(values) == [0.0, 1.0] else None


def test_two_replicas_one_sender_and_failover(pg: PgSchema, tmp_path: Path) -> None:
    config = pg.write_config(
        tmp_path / "c.yml",
        "slo: {window: 1m, for: 0s, min_events: 10}\nalerting: {repeat_interval: 1h}\n",
    )
    ports = free_port(), free_port()
    with receiver() as hook:
        commands = [
            serve_command(pg.dsn, config, port, "--webhook", hook.url, poll_interval="250ms")
            for port in ports
        ]
        with running(commands[0]) as first, running(commands[1]) as second:
            urls = [f"http://127.0.0.1:{p}/metrics" for p in ports]
            leaders = wait_for(lambda: _one_leader(urls))
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "SELECT 'pay', CASE WHEN g <= 10 THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
                "FROM generate_series(1, 100) g"
            )
            hook.wait(2)  # overall and per event type
            # Both replicas have judged the breach several times over: still one sender.
            for url in urls:
                assert (
                    wait_for_polls(url, 3)['cbmon_slo_state{event_type="pay",slo="success_rate"}']
                    == 2
                )
            assert len(hook.requests) == 2
            leader = leaders.index(1.0)
            (first, second)[leader].send_signal(signal.SIGKILL)
            survivor = urls[1 - leader]
            wait_for(lambda: scrape_or_empty(survivor).get("cbmon_leader") == 1, timeout=10)
            # The new leader re-sends what fires rather than risk it being lost.
            requests = hook.wait(4)
    assert {a["status"] for r in requests[2:] for a in r.json["alerts"]} == {"firing"}
