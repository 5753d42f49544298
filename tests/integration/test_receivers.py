"""Hostile receivers on 127.0.0.1: every attempt ends by its deadline whatever the receiver
does, memory does not grow with what it sends, and a TLS failure says what failed and how to
trust a private CA."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from cbmon.delivery.dispatcher import Message, Outbox
from cbmon.delivery.exchange import MAX_ANSWER, TRUST_HINT
from cbmon.delivery.post import Attempt, post_signed
from cbmon.delivery.retry import RetryPolicy
from tests.conftest import require_binary
from tests.support.hostile import (
    DRIP_BODY,
    DRIP_STATUS,
    HUGE,
    HUGE_BODY,
    OK,
    SILENT,
    hostile,
    server_context,
)
from tests.support.processes import wait_for
from tests.support.receiver import receiver
from tests.support.tls import Certificates, make_certificates, make_self_signed

TOKEN = "t0ken-in-the-path"


def post(url: str, timeout: float = 1.0, ca_file: Path | None = None) -> Attempt:
    return post_signed(url, b"{}", msg_id="msg_1", secret=None, timeout=timeout, ca_file=ca_file)


@pytest.mark.parametrize("behaviour", [DRIP_STATUS, SILENT])
@pytest.mark.slow
def test_no_status_line_by_the_deadline_is_a_timeout_and_the_connection_is_cut(
    behaviour: str,
) -> None:
    # A byte every 100 ms: no single read ever waits long enough to time out.
    with hostile(behaviour, interval=0.1) as hook:
        attempt = post(hook.url, timeout=0.5)
        assert (attempt.delivered, attempt.timed_out) == (False, True)
        assert attempt.error == "no complete answer within 500ms"
        if behaviour == DRIP_STATUS:
            wait_for(lambda: hook.closed == 1)  # cut, not left dripping


@pytest.mark.slow
def test_a_2xx_whose_body_drips_is_delivered_and_cut_at_the_deadline() -> None:
    with hostile(DRIP_BODY, interval=0.1) as hook:
        attempt = post(hook.url, timeout=0.5)
        assert (attempt.delivered, attempt.status) == (True, 200)
        wait_for(lambda: hook.closed == 1)
        assert hook.sent < 1000


def test_a_200_mb_answer_is_read_up_to_64_kib_and_dropped() -> None:
    with hostile(HUGE_BODY) as hook:
        tracemalloc.start()
        try:
            attempt = post(hook.url, timeout=10.0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (attempt.delivered, attempt.status) == (True, 200)
        wait_for(lambda: hook.closed == 1)
    assert peak < 16 * MAX_ANSWER  # what was read, and the machinery around it
    assert hook.sent < HUGE // 4  # the rest never left: the connection was closed


@pytest.mark.slow  # waits out several deadlines
def test_an_outbox_facing_a_drip_feed_keeps_trying_and_says_why() -> None:
    with hostile(DRIP_STATUS, interval=0.1) as hook:
        outbox = Outbox(hook.url, None, timeout=0.3, retry=RetryPolicy(initial=0.05, max_retries=1))
        outbox.down_retry = 0.05
        outbox.start()
        try:
            outbox.send(Message("msg_1", b"{}"))
            # Each attempt ends by its deadline, so the next one comes: the queue moves.
            wait_for(lambda: hook.connections >= 4)
        finally:
            outbox.stop(timeout=2)
    assert outbox.counters.failed >= 1
    assert outbox.pending() == 1  # not delivered, not dropped


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificates]:
    require_binary("openssl")
    folder = tmp_path_factory.mktemp("tls")
    return {
        "self-signed": make_self_signed(folder / "self"),
        "private CA": make_certificates(folder / "ca"),
        "another name": make_certificates(folder / "other", names="DNS:hooks.example.com"),
    }


def test_a_self_signed_receiver_is_explained_and_trusted_by_alerting_ca_file(
    certificates: dict[str, Certificates],
) -> None:
    cert = certificates["self-signed"]
    with hostile(OK, tls=server_context(cert.cert, cert.key)) as hook:
        attempt = post(hook.url)
        assert attempt.error == (
            f"TLS: certificate verify failed (self-signed certificate); {TRUST_HINT}"
        )
        assert TOKEN not in attempt.error
        assert post(hook.url, ca_file=cert.ca).delivered


def test_a_private_ca_is_trusted_through_requests_ca_bundle(
    certificates: dict[str, Certificates], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = certificates["private CA"]
    with hostile(OK, tls=server_context(cert.cert, cert.key)) as hook:
        assert post(hook.url).error == (
            f"TLS: certificate verify failed (unable to get local issuer certificate); {TRUST_HINT}"
        )
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert.ca))
        assert post(hook.url).delivered


def test_a_certificate_for_another_name_says_so(certificates: dict[str, Certificates]) -> None:
    cert = certificates["another name"]
    with hostile(OK, tls=server_context(cert.cert, cert.key)) as hook:
        attempt = post(hook.url, ca_file=cert.ca)
    assert attempt.error is not None
    assert attempt.error.startswith(
        "TLS: the receiver's certificate is not valid for the URL's host (IP address mismatch"
    )
    assert attempt.error.endswith("use a URL with a name the certificate holds")


def test_https_to_a_plain_http_receiver_is_a_handshake_failure() -> None:
    with receiver() as plain:
        attempt = post(plain.url.replace("http://", "https://"))
    assert attempt.error == (
        "TLS handshake failed (wrong version number); is the receiver speaking TLS on that port?"
    )
