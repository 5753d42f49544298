"""The wall clock stepped under a running `cbmon serve` (libfaketime), both ways, while an alert
is pending and while it fires: no decision changes, and the step is said once with its size.

The database's clock is left alone, as it is when the host running cbmon is the one whose
clock is corrected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgSchema
from tests.support.attempts import insert
from tests.support.faketime import FakeTime
from tests.support.processes import (
    answers,
    free_port,
    running,
    serve_command,
    wait_for,
    wait_for_polls,
    wait_for_scrape,
)
from tests.support.receiver import Receiver, receiver

pytestmark = pytest.mark.slow

HOUR = 3600
PAY = 'cbmon_slo_state{event_type="pay",slo="success_rate"}'


def pay_alerts(hook: Receiver, status: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in hook.alerts()
        if alert["status"] == status and alert["labels"].get("event_type") == "pay"
    ]


def unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@contextmanager
def trickle(pg: PgSchema) -> Iterator[None]:
    """Healthy traffic, 20 attempts every 200 ms, until the block ends."""
    done = threading.Event()

    def run() -> None:
        with pg.connect() as conn:
            while not done.wait(0.2):
                conn.execute(
                    "INSERT INTO callback_logs (event_type, status, execution_time) "
                    "SELECT 'pay', 'COMPLETED', 40 FROM generate_series(1, 20)"
                )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def test_an_alert_pending_when_the_clock_steps_back_fires_on_time(
    pg: PgSchema, tmp_path: Path
) -> None:
    """Back by an hour while `for` runs: it fires when `for` has passed (by the old code, an
    hour later), dated by the clock as it reads now, and Alertmanager keeps being told."""
    clock = FakeTime(tmp_path)
    config = pg.write_config(
        tmp_path / "c.yml",
        "slo: {window: 30s, for: 3s, min_events: 10}\n"
        "alerting: {resend_interval: 1s, repeat_interval: 1h}\n",
    )
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with receiver() as hook, receiver() as alertmanager:
        am_url = f"http://127.0.0.1:{alertmanager.server_address[1]}"
        args = serve_command(pg.dsn, config, port, "--webhook", hook.url, "--alertmanager", am_url)
        with running(args, env=clock.env, log=log):
            wait_for(lambda: answers(f"{url}/readyz"))
            insert(pg, "pay", ok=90, failed=10)
            wait_for_scrape(f"{url}/metrics", lambda m: m.get(PAY) == 2)  # critical, pending
            assert pay_alerts(hook, "firing") == []
            clock.step(-HOUR)
            stepped = time.time()
            [fired] = wait_for(lambda: pay_alerts(hook, "firing"), timeout=30)
            # Resends to Alertmanager go on every second, on the stepped clock too.
            posts = len(alertmanager.requests)
            wait_for(lambda: len(alertmanager.requests) >= posts + 3, timeout=30)
            [posted] = [a for a in alertmanager.bodies()[-1] if a["labels"].get("event_type")]
    # Dated by the wall clock as it reads after the step: an hour behind the real one.
    assert abs(unix(fired["startsAt"]) - (stepped - HOUR)) < 30
    assert unix(posted["endsAt"]) > unix(posted["startsAt"])
    text = log.read_text()
    assert text.count("the wall clock stepped back by 1h;") == 1
    assert "Traceback" not in text


def test_a_clock_stepped_forward_and_back_never_freezes_the_window(
    pg: PgSchema, tmp_path: Path
) -> None:
    """Forward an hour while firing: nothing resolves for lack of data, /readyz stays ready.
    A breach logged meanwhile, then back an hour with healthy traffic: the breach leaves the
    window when the window has passed (by the old code, an hour later) and the alert
    resolves with healthy numbers."""
    clock = FakeTime(tmp_path)
    config = pg.write_config(tmp_path / "c.yml", "slo: {window: 10s, for: 0s, min_events: 10}\n")
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with (
        receiver() as hook,
        running(serve_command(pg.dsn, config, port, "--webhook", hook.url), env=clock.env, log=log),
    ):
        wait_for(lambda: answers(f"{url}/readyz"))
        insert(pg, "pay", ok=85, failed=15)
        wait_for(lambda: pay_alerts(hook, "firing"), timeout=30)
        clock.step(HOUR)
        insert(pg, "pay", ok=85, failed=15)
        wait_for_polls(f"{url}/metrics", 60)  # a window and two seconds, at 200 ms a poll
        assert answers(f"{url}/readyz")
        assert pay_alerts(hook, "resolved") == []
        clock.step(-HOUR)
        with trickle(pg):
            [resolved] = wait_for(lambda: pay_alerts(hook, "resolved"), timeout=40)
    assert resolved["annotations"]["summary"].startswith(
        "Resolved: Callback success rate 100.00% for event type pay"
    )
    text = log.read_text()
    assert text.count("the wall clock stepped forward by 1h;") == 1
    assert text.count("the wall clock stepped back by 1h;") == 1
    assert "Traceback" not in text
