"""`cbmon serve` facing receivers that misbehave: one answers 200 MB, one drip-feeds its status
line a byte at a time, one presents a self-signed certificate, an Alertmanager drip-feeds
too. Memory stays flat, every attempt ends by its deadline (so each queue keeps moving), the
healthy receivers hear of every alert, and the TLS failure says how to trust the receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PgSchema, require_binary
from tests.support.attempts import insert
from tests.support.hostile import DRIP_STATUS, HUGE, HUGE_BODY, OK, hostile, server_context
from tests.support.processes import (
    answers,
    free_port,
    running,
    scrape_or_empty,
    serve_command,
    wait_for,
)
from tests.support.receiver import receiver
from tests.support.tls import make_self_signed

pytestmark = pytest.mark.slow


def peak_memory(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def origin(url: str) -> str:
    """``scheme://host:port`` of a receiver's URL: how cbmon names it in labels."""
    return url.split("/hook")[0]


def test_hostile_receivers_neither_grow_memory_nor_hold_a_queue(
    pg: PgSchema, tmp_path: Path
) -> None:
    require_binary("openssl")
    cert = make_self_signed(tmp_path / "tls")
    config = pg.write_config(
        tmp_path / "c.yml",
        "slo: {window: 5m, for: 0s, min_events: 10}\n"
        "alerting: {timeout: 2s, max_retries: 1, repeat_interval: 1h, resend_interval: 1s}\n",
    )
    port, log = free_port(), tmp_path / "serve.log"
    with (
        hostile(HUGE_BODY) as huge,
        hostile(DRIP_STATUS, interval=0.5) as drip,
        hostile(OK, tls=server_context(cert.cert, cert.key)) as self_signed,
        hostile(DRIP_STATUS, interval=0.5) as drip_alertmanager,
        receiver() as healthy,
        receiver() as alertmanager,
    ):
        hooks = [huge.url, drip.url, self_signed.url, healthy.url]
        managers = [origin(drip_alertmanager.url), origin(alertmanager.url)]
        args = serve_command(
            pg.dsn,
            config,
            port,
            *[arg for url in hooks for arg in ("--webhook", url)],
            *[arg for url in managers for arg in ("--alertmanager", url)],
        )
        with running(args, log=log) as serve:
            metrics = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
            before = peak_memory(serve.pid)
            insert(pg, "pay", ok=90, failed=10)
            wait_for(lambda: len(healthy.alerts()) >= 2, timeout=30)  # overall and pay
            # Each attempt ends by its deadline, and is tried again (by the old code, the
            # first one took 19 s and counted as delivered).
            retried = f'cbmon_alert_notification_retries_total{{receiver="{origin(drip.url)}"}}'
            wait_for(lambda: scrape_or_empty(metrics).get(retried, 0) >= 1, timeout=30)
            wait_for(lambda: huge.connections >= 2, timeout=30)  # overall and pay
            # Alertmanager is told every second although the other one drips.
            posts = len(alertmanager.requests)
            wait_for(lambda: len(alertmanager.requests) >= posts + 3, timeout=30)
            grown = peak_memory(serve.pid) - before
    assert grown < 64 << 20, f"peak memory grew by {grown >> 20} MiB"
    assert huge.sent < HUGE // 4
    assert self_signed.connections >= 1
    text = log.read_text()
    assert (
        "not delivered after 1 retries (TLS: certificate verify failed (self-signed "
        "certificate); to trust a private CA, set alerting.ca_file or REQUESTS_CA_BUNDLE)"
    ) in text
    assert "not delivered after 1 retries (no complete answer within 2s)" in text
    assert "t0ken-in-the-path" not in text
    assert "Traceback" not in text
