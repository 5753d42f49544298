"""The sidecar as ``cbmon serve`` wires it (:class:`~cbmon.sidecar.service.Service`), in this
process: a real database, real HTTP on 127.0.0.1, the test deciding when each poll runs."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from cbmon import __version__
from cbmon.config import Config
from cbmon.delivery.retry import RetryPolicy
from cbmon.delivery.signing import new_secret
from cbmon.errors import ConfigError
from cbmon.sidecar.service import Service
from tests.conftest import PgSchema, require_binary
from tests.support.forward import forwarder
from tests.support.processes import (
    answers,
    scrape,
    wait_for,
    wait_for_sample,
    wait_for_scrape,
)
from tests.support.receiver import receiver

LISTEN = "127.0.0.1:0"
PAY_ATTEMPTS = 'cbmon_callback_attempts_total{event_type="pay"}'


@contextmanager
def serving(config: Config) -> Iterator[Service]:
    """The service listening on a free port with its outboxes started; polls are the test's."""
    service = Service(config)
    try:
        service.start()
        yield service
    finally:
        service.close()


@contextmanager
def running(service: Service) -> Iterator[threading.Thread]:
    """:meth:`Service.run` in a thread, for what only its loop does (waiting out an outage)."""
    thread = threading.Thread(target=service.run, name="poll loop", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        service.stop_event.set()
        thread.join(10)
    assert not thread.is_alive()


def catch_up(service: Service) -> None:
    while not service.poll_once().caught_up:
        pass


def url(service: Service, path: str) -> str:
    assert service.server is not None
    return service.server.url + path


def status(address: str) -> int:
    return requests.get(address, timeout=5).status_code


def alerting(pg: PgSchema, hook_url: str, **overrides: Any) -> Config:
    """Judged over a minute, firing at once, with ``hook_url`` the one receiver."""
    return pg.config(
        listen=LISTEN,
        slo={"window": "1m", "for": "0s", "min_events": 10},
        alerting={"webhooks": [hook_url], "repeat_interval": "1h"},
        **overrides,
    )


def insert(pg: PgSchema, ok: int, failed: int, event_type: str = "pay") -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT %s, CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [event_type, failed, ok + failed],
    )


def test_exact_metrics_and_health(pg: PgSchema) -> None:
    with serving(pg.config(listen=LISTEN)) as service:
        assert status(url(service, "/healthz")) == 200
        assert status(url(service, "/readyz")) == 503  # alive, but nothing polled yet
        catch_up(service)
        assert status(url(service, "/readyz")) == 200
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "SELECT 'order_created', CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, "
            "g FROM generate_series(1, 1000) g"
        )
        pg.conn.execute("INSERT INTO callback_errors (event_type) VALUES ('order_created')")
        pg.conn.execute(
            "INSERT INTO callback_queue (event_type) SELECT 'x' FROM generate_series(1, 42)"
        )
        before = time.time()
        catch_up(service)
        after = time.time()
        metrics = scrape(url(service, "/metrics"))
    label = 'event_type="order_created"'
    assert metrics[f"cbmon_callback_attempts_total{{{label}}}"] == 1000
    assert metrics[f"cbmon_callback_failures_total{{{label}}}"] == 20
    assert metrics[f"cbmon_callback_errors_total{{{label}}}"] == 1
    assert metrics[f'cbmon_callback_duration_seconds_bucket{{{label},le="0.15"}}'] == 150
    assert metrics[f'cbmon_callback_duration_seconds_bucket{{{label},le="0.5"}}'] == 500
    assert metrics[f"cbmon_callback_duration_seconds_count{{{label}}}"] == 1000
    assert metrics[f"cbmon_callback_duration_seconds_sum{{{label}}}"] == pytest.approx(500.5)
    assert metrics["cbmon_queue_backlog"] == 42
    assert metrics["cbmon_database_up"] == 1
    assert metrics[f'cbmon_build_info{{version="{__version__}"}}'] == 1
    assert before <= metrics["cbmon_last_poll_timestamp_seconds"] <= after


def test_exposition_passes_promtool(pg: PgSchema) -> None:
    promtool = require_binary("promtool")
    with serving(pg.config(listen=LISTEN)) as service:
        catch_up(service)
        pg.conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "VALUES ('a', 'COMPLETED', 10), ('b', 'FAILED', NULL)"
        )
        catch_up(service)
        body = requests.get(url(service, "/metrics"), timeout=5).content
        database = service.database
    sample = f'cbmon_callback_attempts_total{{database="{database}",event_type="b"}} 1.0'
    assert sample.encode() in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b""
    assert result.stderr.strip() == b""


@pytest.mark.slow
def test_database_down_at_start_then_up(pg: PgSchema) -> None:
    """cbmon starts without its database, says so, and counts once the database answers."""
    with forwarder(pg.dsn) as database:
        config = pg.config(dsn=database.dsn, listen=LISTEN, poll_interval="200ms")
        with serving(config) as service:
            service.reconnect = RetryPolicy(initial=0.05, cap=0.1)  # tries again soon
            with running(service):
                metrics_url = url(service, "/metrics")
                metrics = wait_for_scrape(
                    metrics_url,
                    lambda m: m.get('cbmon_poll_errors_total{reason="connection"}', 0) >= 1,
                )
                assert metrics["cbmon_database_up"] == 0
                ready = requests.get(url(service, "/readyz"), timeout=5)
                assert (ready.status_code, ready.text) == (
                    503,
                    "database unreachable or not polled yet\n",
                )
                assert status(url(service, "/healthz")) == 200
                database.open()
                wait_for(lambda: answers(url(service, "/readyz")))
                insert(pg, ok=3, failed=0)
                metrics = wait_for_sample(metrics_url, PAY_ATTEMPTS, 3)
    assert metrics["cbmon_database_up"] == 1


def test_tables_the_first_poll_cannot_read_are_one_clear_error(pg: PgSchema) -> None:
    tables = {
        "logs": {"schema": "nowhere"},
        "errors": {"schema": pg.name},
        "queue": {"schema": pg.name},
    }
    with (
        serving(pg.config(listen=LISTEN, tables=tables)) as service,
        pytest.raises(ConfigError) as raised,
    ):
        service.run()
    message = str(raised.value)
    assert message.startswith('schema "nowhere" does not exist')
    assert "tables.logs/errors/queue" in message
    assert "\n" not in message


def test_a_read_only_role_is_enough_to_serve_and_lead(pg: PgSchema, read_only_dsn: str) -> None:
    config = pg.config(
        dsn=read_only_dsn, listen=LISTEN, alerting={"webhooks": ["http://127.0.0.1:9/unused"]}
    )
    with serving(config) as service:
        catch_up(service)
        insert(pg, ok=1, failed=0)
        catch_up(service)
        metrics = scrape(url(service, "/metrics"))
        assert status(url(service, "/readyz")) == 200
    assert metrics[PAY_ATTEMPTS] == 1
    assert metrics["cbmon_leader"] == 1  # the leader lock needs no write privilege either


def test_fires_a_signed_alert_then_resolves_it(pg: PgSchema) -> None:
    secret = new_secret()
    with receiver() as hook, serving(alerting(pg, hook.url, webhook_secret=secret)) as service:
        metrics_url = url(service, "/metrics")
        catch_up(service)
        assert scrape(metrics_url)["cbmon_leader"] == 1
        insert(pg, ok=95, failed=5)  # 95 % success: critical
        catch_up(service)
        fired_requests = hook.wait(2)  # the outboxes send from their own threads
        for request in fired_requests:
            Webhook(secret).verify(request.body, request.headers)  # raises unless signed right
        fired = [a for r in fired_requests for a in r.json["alerts"]]
        assert {
            (a["labels"]["alertname"], a["labels"].get("event_type"), a["status"]) for a in fired
        } == {
            ("CallbackSuccessRateLow", None, "firing"),  # overall
            ("CallbackSuccessRateLow", "pay", "firing"),
        }
        assert {a["labels"]["severity"] for a in fired} == {"critical"}
        metrics = scrape(metrics_url)
        assert metrics['cbmon_slo_state{event_type="pay",slo="success_rate"}'] == 2
        assert metrics['cbmon_slo_value{event_type="pay",slo="success_rate"}'] == 0.95
        firing = 'cbmon_alerts_firing{alertname="CallbackSuccessRateLow",severity="critical"}'
        assert metrics[firing] == 2
        insert(pg, ok=10_000, failed=0)  # 5 of 10 100: 99.95 %, ok again
        catch_up(service)
        requests_now = hook.wait(4)
        resolved = [a for r in requests_now[2:] for a in r.json["alerts"]]
        assert {a["status"] for a in resolved} == {"resolved"}
        assert all(a["endsAt"] != "0001-01-01T00:00:00Z" for a in resolved)
        name = hook.url.removesuffix("/hook")  # the path may hold a token: never exported
        wait_for_sample(metrics_url, f'cbmon_alert_notifications_total{{receiver="{name}"}}', 4)
        assert [outbox.pending() for outbox in service.dispatcher.outboxes] == [0]
        assert len(hook.requests) == 4


def test_a_restart_does_not_blind_the_window(pg: PgSchema) -> None:
    """Rows already in the window when cbmon starts are judged at the first evaluation."""
    insert(pg, ok=900, failed=100)
    with receiver() as hook, serving(alerting(pg, hook.url)) as service:
        service.poll_once()
        metrics = scrape(url(service, "/metrics"))
        assert metrics['cbmon_slo_value{event_type="",slo="success_rate"}'] == pytest.approx(0.9)
        assert metrics['cbmon_slo_state{event_type="pay",slo="success_rate"}'] == 2
        # ...while the counters start at the tail: history is not replayed into them.
        assert metrics.get(PAY_ATTEMPTS, 0) == 0
        alerts = [a for r in hook.wait(2) for a in r.json["alerts"]]
    assert {a["labels"]["severity"] for a in alerts} == {"critical"}
