"""Alert delivery against real HTTP receivers, and alerts from a real `cbmon serve`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from cbmon.alerting.dispatcher import Outbox, new_message
from cbmon.signing import new_secret
from tests.conftest import PgSchema
from tests.support.processes import (
    CBMON,
    free_port,
    running,
    scrape,
    scrape_or_empty,
    serve_command,
    wait_for,
)
from tests.support.receiver import Reply, receiver

BODY = json.dumps({"version": "4", "status": "firing", "alerts": []}).encode()


class _Fanout:
    """Outboxes started together; one message to each."""

    def __init__(self, outboxes: list[Outbox]) -> None:
        self.outboxes = outboxes
        for outbox in outboxes:
            outbox.start()

    def send(self, body: bytes) -> None:
        message = new_message(body)
        for outbox in self.outboxes:
            outbox.send(message)

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.stop()


def test_signed_and_the_id_is_stable_across_retries() -> None:
    secret = new_secret()
    with receiver() as hook:
        hook.replies = [Reply(500), Reply(502)]
        out = Outbox(hook.url, secret, max_retries=3, backoff_base=0.05)
        notifier = _Fanout([out])
        notifier.send(BODY)
        requests = hook.wait(3)
        notifier.close()
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        # An independent verifier accepts every attempt's signature.
        assert Webhook(secret).verify(request.body, request.headers)["version"] == "4"
    assert (out.counters.delivered, out.counters.retries, out.counters.failed) == (1, 2, 0)


def test_a_wrong_secret_does_not_verify() -> None:
    with receiver() as hook:
        notifier = _Fanout([Outbox(hook.url, new_secret())])
        notifier.send(BODY)
        request = hook.wait(1)[0]
        notifier.close()
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_retry_budget_then_delivered_when_the_receiver_comes_back() -> None:
    with receiver() as hook:
        hook.default = Reply(500)
        out = Outbox(hook.url, None, max_retries=3, backoff_base=0.05, down_retry=1.0)
        notifier = _Fanout([out])
        notifier.send(BODY)
        hook.wait(4)
        time.sleep(0.5)
        assert len(hook.requests) == 4  # one try and three retries, then it waits
        assert out.counters.failed == 1
        assert out.pending() == 1  # not forgotten
        hook.default = Reply(200)
        wait_for(lambda: out.counters.delivered == 1, timeout=5)
        notifier.close()
    ids = {r.headers["webhook-id"] for r in hook.requests}
    assert len(ids) == 1
    assert out.pending() == 0


def test_retry_after_is_honoured() -> None:
    with receiver() as hook:
        hook.replies = [Reply(429, {"Retry-After": "1"})]
        notifier = _Fanout([Outbox(hook.url, None, backoff_base=0.01)])
        notifier.send(BODY)
        first, second = hook.wait(2)
        notifier.close()
    assert second.at - first.at >= 0.95


def test_a_hanging_receiver_delays_nobody_else() -> None:
    with receiver() as slow, receiver() as fast:
        slow.default = Reply(200, delay=3)
        hanging = Outbox(slow.url, None, timeout=0.3, max_retries=1, backoff_base=0.05)
        notifier = _Fanout([hanging, Outbox(fast.url, None)])
        started = time.monotonic()
        notifier.send(BODY)
        fast.wait(1)
        assert time.monotonic() - started < 1.0
        wait_for(lambda: hanging.counters.failed == 1, timeout=5)
        assert hanging.counters.retries == 1
        notifier.close()


def _config(pg: PgSchema, path: Path, extra: str = "") -> Path:
    path.write_text(
        "tables:\n"
        f"  logs: {{schema: {pg.name}}}\n"
        f"  errors: {{schema: {pg.name}}}\n"
        f"  queue: {{schema: {pg.name}}}\n"
        "slo: {window: 1m, for: 0s, min_events: 10}\n"
        "alerting: {repeat_interval: 1h}\n" + extra
    )
    return path


def _serve(pg: PgSchema, config: Path, port: int, hook_url: str) -> list[str]:
    return serve_command(pg.dsn, config, port, "--webhook", hook_url, poll_interval="250ms")


def _insert(pg: PgSchema, ok: int, failed: int, event_type: str = "pay") -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT %s, CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [event_type, failed, ok + failed],
    )


def test_serve_fires_a_signed_alert_then_resolves_it(pg: PgSchema, tmp_path: Path) -> None:
    secret = new_secret()
    port = free_port()
    config = _config(pg, tmp_path / "c.yml")
    with (
        receiver() as hook,
        running(
            _serve(pg, config, port, hook.url),
            env={"CBMON_WEBHOOK_SECRET": secret},
            log=tmp_path / "serve.log",
        ),
    ):
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: scrape_or_empty(url).get("cbmon_leader") == 1)
        breach = time.time()
        _insert(pg, ok=95, failed=5)  # 95 % success: critical
        first = hook.wait(1)[0]
        latency = first.at - breach
        Webhook(secret).verify(first.body, first.headers)  # raises unless signed right
        fired = [a for r in hook.wait(2) for a in r.json["alerts"]]
        assert {
            (
                a["labels"]["alertname"],
                a["labels"].get("event_type"),
                a["status"],
                a["labels"]["severity"],
            )
            for a in fired
        } == {
            ("CallbackSuccessRateLow", None, "firing", "critical"),  # overall
            ("CallbackSuccessRateLow", "pay", "firing", "critical"),
        }
        metrics = scrape(url)
        assert metrics['cbmon_slo_state{event_type="pay",slo="success_rate"}'] == 2
        assert metrics['cbmon_slo_value{event_type="pay",slo="success_rate"}'] == 0.95
        firing = 'cbmon_alerts_firing{alertname="CallbackSuccessRateLow",severity="critical"}'
        assert metrics[firing] == 2
        _insert(pg, ok=10_000, failed=0)  # 5 of 10 100: 99.95 %, ok again
        requests = hook.wait(4)
        resolved = [a for r in requests[2:] for a in r.json["alerts"]]
        assert {a["status"] for a in resolved} == {"resolved"}
        assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved)
        name = hook.url.removesuffix("/hook")  # the path may hold a token: never exported
        delivered = scrape(url)[f'cbmon_alert_notifications_total{{receiver="{name}"}}']
        assert delivered == 4
    print(f"breach to signed webhook: {latency * 1000:.0f} ms (poll interval 250 ms)")
    assert latency < 0.25 + 1.0


def _has(url: str, key: str) -> dict[str, float] | None:
    metrics = scrape_or_empty(url)
    return metrics if key in metrics else None


def _one_leader(urls: list[str]) -> list[float] | None:
    values = [scrape_or_empty(u).get("cbmon_leader", -1.0) for u in urls]
    return values if sorted(values) == [0.0, 1.0] else None


def test_two_replicas_one_sender_and_failover(pg: PgSchema, tmp_path: Path) -> None:
    config = _config(pg, tmp_path / "c.yml")
    ports = free_port(), free_port()
    with (
        receiver() as hook,
        running(_serve(pg, config, ports[0], hook.url)) as first,
        running(_serve(pg, config, ports[1], hook.url)) as second,
    ):
        urls = [f"http://127.0.0.1:{p}/metrics" for p in ports]
        leaders = wait_for(lambda: _one_leader(urls))
        _insert(pg, ok=90, failed=10)
        hook.wait(2)  # overall and per event type
        time.sleep(1.5)
        assert len(hook.requests) == 2  # one sender only
        leader = leaders.index(1.0)
        (first, second)[leader].send_signal(signal.SIGKILL)
        survivor = urls[1 - leader]
        killed = time.monotonic()
        wait_for(lambda: scrape_or_empty(survivor).get("cbmon_leader") == 1, timeout=10)
        # The new leader re-sends what fires rather than risk it being lost.
        requests = hook.wait(4)
        print(f"failover took {time.monotonic() - killed:.2f}s")
        assert {a["status"] for r in requests[2:] for a in r.json["alerts"]} == {"firing"}


@pytest.mark.parametrize(
    ("ok", "failed", "backlog", "code", "word"),
    [
        (1000, 0, 0, 0, "OK"),
        (993, 7, 0, 1, "WARNING"),
        (950, 50, 0, 2, "CRITICAL"),
        (1000, 0, 6000, 2, "CRITICAL"),
        (1, 1, 0, 0, "OK"),
    ],
)
def test_check_exit_codes(
    pg: PgSchema, tmp_path: Path, ok: int, failed: int, backlog: int, code: int, word: str
) -> None:
    config = _config(pg, tmp_path / "c.yml")
    _insert(pg, ok=ok, failed=failed)
    pg.conn.execute(
        "INSERT INTO callback_queue (event_type) SELECT 'q' FROM generate_series(1, %s)", [backlog]
    )
    result = subprocess.run(
        [*CBMON, "check", "--dsn", pg.dsn, "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout.startswith(f"CBMON {word} - ")
    data = json.loads(
        subprocess.run(
            [*CBMON, "check", "--dsn", pg.dsn, "--config", str(config), "--format", "json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert data["exit_code"] == code
    overall = {i["slo"]: i for i in data["indicators"] if i["event_type"] is None}
    assert overall["backlog"]["value"] == backlog
    if ok + failed >= 10:
        assert overall["success_rate"]["value"] == pytest.approx(ok / (ok + failed))
    else:
        assert overall["success_rate"]["state"] == "unknown"  # too few events to judge


def test_check_unknown_when_the_database_is_away(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CBMON, "check", "--dsn", f"postgresql://root@127.0.0.1:{free_port()}/x"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert result.stdout.startswith("CBMON UNKNOWN - cannot connect")


def test_a_restart_does_not_blind_the_window(pg: PgSchema, tmp_path: Path) -> None:
    """Rows already in the window when cbmon starts are judged at the first evaluation."""
    _insert(pg, ok=900, failed=100)
    port = free_port()
    config = _config(pg, tmp_path / "c.yml")
    with receiver() as hook, running(_serve(pg, config, port, hook.url)):
        url = f"http://127.0.0.1:{port}/metrics"
        key = 'cbmon_slo_value{event_type="",slo="success_rate"}'
        metrics = wait_for(lambda: _has(url, key))
        assert metrics[key] == pytest.approx(0.9)
        assert metrics['cbmon_slo_state{event_type="pay",slo="success_rate"}'] == 2
        # ...while the counters start at the tail: history is not replayed into them.
        assert metrics.get('cbmon_callback_attempts_total{event_type="pay"}', 0) == 0
        alerts = [a for r in hook.wait(2) for a in r.json["alerts"]]
        assert {a["labels"]["severity"] for a in alerts} == {"critical"}
