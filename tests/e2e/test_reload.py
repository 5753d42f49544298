"""Reloading a running `cbmon serve`, as an operator does: SIGHUP after editing the file, with
a good change and a bad one, and `POST /-/reload` with and without `--web.enable-lifecycle`.
A good change applies at the next poll and names what it had to keep; a bad one changes
nothing and says why in one line; SIGTERM after all that is still a clean stop."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import PgSchema, require_binary
from tests.support.attempts import insert
from tests.support.hostile import OK, hostile, server_context
from tests.support.processes import CBMON, answers, free_port, running, scrape, wait_for
from tests.support.receiver import Receiver, receiver
from tests.support.tls import make_self_signed

pytestmark = pytest.mark.slow

OK_KEY = "cbmon_config_last_reload_successful"
AT_KEY = "cbmon_config_last_reload_success_timestamp_seconds"
PAY_STATE = 'cbmon_slo_state{event_type="pay",slo="success_rate"}'
FIRING = 'cbmon_alerts_firing{alertname="CallbackSuccessRateLow",severity="critical"}'
LENIENT = "thresholds: {success_rate: {normal: 90%, alert: 80%}}\n"


class Deployment:
    """A configuration file and the `cbmon serve` reading it: everything from the file."""

    def __init__(self, pg: PgSchema, folder: Path) -> None:
        self.pg, self.folder = pg, folder
        self.path = folder / "cbmon.yml"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "serve.log"

    def write(
        self,
        extra: str = "",
        *,
        hooks: Sequence[str] = (),
        alerting: str = "",
        listen: int | None = None,
    ) -> None:
        self.pg.write_config(
            self.path,
            f"listen: 127.0.0.1:{listen or self.port}\npoll_interval: 200ms\n"
            "slo: {window: 5m, for: 0s, min_events: 10}\n"
            f"alerting: {{state_dir: {self.folder / 'state'}, repeat_interval: 1h, "
            f"webhooks: [{', '.join(hooks)}]{alerting}}}\n" + extra,
        )

    @contextmanager
    def serve(self, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
        args = [*CBMON, "serve", "--dsn", self.pg.dsn, "--config", str(self.path), *flags]
        with running(args, log=self.log) as process:
            wait_for(lambda: answers(f"{self.url}/readyz"))
            yield process

    def metrics(self) -> dict[str, float]:
        return scrape(f"{self.url}/metrics")

    def said(self, words: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if words in line]


def firing_pay(hook: Receiver) -> bool:
    return any(
        alert["status"] == "firing" and alert["labels"].get("event_type") == "pay"
        for alert in hook.alerts()
    )


def test_sighup_applies_a_good_change_and_a_bad_one_changes_nothing(
    pg: PgSchema, tmp_path: Path
) -> None:
    cbmon = Deployment(pg, tmp_path)
    with receiver() as first, receiver() as second:
        cbmon.write(LENIENT, hooks=[first.url])
        with cbmon.serve() as serve:
            insert(pg, "pay", ok=95, failed=5)  # 95 %: ok by the lenient thresholds
            wait_for(lambda: cbmon.metrics().get(PAY_STATE) == 0)
            started = cbmon.metrics()[AT_KEY]

            # The baseline's thresholds, a second receiver, and a key that needs a restart.
            cbmon.write(hooks=[first.url, second.url], listen=free_port())
            serve.send_signal(signal.SIGHUP)
            wait_for(lambda: firing_pay(first) and firing_pay(second), timeout=30)
            [line] = cbmon.said("configuration reloaded (SIGHUP)")
            assert (
                f"from {cbmon.path}: alerting.webhooks, thresholds.success_rate.alert, "
                "thresholds.success_rate.normal changed; applied at the next poll; listen "
                "cannot change while cbmon runs and keeps its running value until a restart"
            ) in line
            assert answers(f"{cbmon.url}/readyz")  # still where it listened
            reloaded = cbmon.metrics()
            assert (reloaded[OK_KEY], reloaded[AT_KEY] > started) == (1, True)

            # A mistake: nothing changes, and one line says what is wrong.
            cbmon.path.write_text("slo: {for: soon}\n")
            serve.send_signal(signal.SIGHUP)
            wait_for(lambda: cbmon.metrics()[OK_KEY] == 0)
            [error] = cbmon.said("configuration not reloaded (SIGHUP)")
            assert error.endswith(
                f"the running one is kept: {cbmon.path}: slo.for: 'soon' is not a duration; "
                "write it the Prometheus way, e.g. 500ms, 5s, 1m, 24h"
            )
            after = cbmon.metrics()
            assert after[AT_KEY] == reloaded[AT_KEY]
            assert after[FIRING] == 2  # overall and pay, as before the mistake
            assert answers(f"{cbmon.url}/readyz")
        assert serve.returncode == 0  # SIGTERM: a clean stop, as before any reload
    text = cbmon.log.read_text()
    assert "stopped" in text
    assert "Traceback" not in text
    assert list((tmp_path / "state").glob("alerts-*.json"))


def test_post_reload_is_refused_without_the_lifecycle_flag(pg: PgSchema, tmp_path: Path) -> None:
    cbmon = Deployment(pg, tmp_path)
    cbmon.write()
    with cbmon.serve():
        answer = requests.post(f"{cbmon.url}/-/reload", timeout=5)
        assert (answer.status_code, answer.text) == (403, "Lifecycle API is not enabled.\n")
    with cbmon.serve("--web.enable-lifecycle"):
        cbmon.write(LENIENT)
        answer = requests.post(f"{cbmon.url}/-/reload", timeout=5)
        assert (answer.status_code, answer.text) == (
            200,
            "thresholds.success_rate.alert, thresholds.success_rate.normal changed; applied at "
            "the next poll\n",
        )
        cbmon.path.write_text("poll_interval: 5\n")
        answer = requests.post(f"{cbmon.url}/-/reload", timeout=5)
        assert answer.status_code == 500
        assert answer.text == (
            f"{cbmon.path}: poll_interval: 5 has no unit; write it the Prometheus way, e.g. "
            "5s or 500ms\n"
        )
        assert cbmon.metrics()[OK_KEY] == 0


def test_a_private_ca_is_trusted_after_a_reload_without_a_restart(
    pg: PgSchema, tmp_path: Path
) -> None:
    require_binary("openssl")
    cert = make_self_signed(tmp_path / "tls")
    cbmon = Deployment(pg, tmp_path)
    with hostile(OK, tls=server_context(cert.cert, cert.key)) as self_signed:
        origin = self_signed.url.split("/hook")[0]
        delivered = f'cbmon_alert_notifications_total{{receiver="{origin}"}}'
        cbmon.write(hooks=[self_signed.url], alerting=", max_retries: 0")
        with cbmon.serve() as serve:
            insert(pg, "pay", ok=90, failed=10)
            wait_for(lambda: cbmon.said("self-signed certificate"), timeout=30)
            cbmon.write(hooks=[self_signed.url], alerting=f", max_retries: 0, ca_file: {cert.ca}")
            serve.send_signal(signal.SIGHUP)
            # At once, not after the 30 s a receiver that failed waits.
            wait_for(lambda: cbmon.metrics().get(delivered, 0) >= 2, timeout=15)
