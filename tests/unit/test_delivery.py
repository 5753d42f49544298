"""Signed delivery: one reading of Retry-After, one POST that says what happened
without ever showing the URL, against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook

from cbmon.delivery.post import Attempt, parse_retry_after, post_signed
from cbmon.delivery.signing import new_secret
from tests.support.receiver import Receiver, Reply, receiver

NOW = 1_700_000_000.0
BODY = json.dumps({"status": "firing"}).encode()
TOKEN = "t0ken-in-the-path"


def http_date(at: float) -> str:
    return format_datetime(datetime.fromtimestamp(at, UTC), usegmt=True)


# -- Retry-After -------------------------------------------------------------------------------


@pytest.fixture
def far_from_gmt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 14 hours from GMT, so that a date read as local time is caught."""
    monkeypatch.setenv("TZ", "XST-14")  # POSIX notation: needs no time zone database
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (http_date(NOW + 30), 30.0),
        (http_date(NOW - 30), 0.0),  # a date already past: go now
        ("Tue, 14 Nov 2023 22:14:20", 60.0),  # no zone: GMT, as HTTP dates are
    ],
)
@pytest.mark.usefixtures("far_from_gmt")
def test_retry_after_is_delta_seconds_or_an_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "Tuesday at noon"])
def test_unreadable_retry_after_is_none(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


# -- post_signed -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[Receiver]:
    # One receiver for the module: stopping one waits out serve_forever's half-second poll.
    with receiver() as server:
        yield server


@pytest.fixture
def hook(shared_receiver: Receiver) -> Receiver:
    """The receiver with nothing received and every reply a plain 200."""
    with shared_receiver.lock:
        shared_receiver.requests.clear()
        shared_receiver.replies.clear()
        shared_receiver.default = Reply()
    return shared_receiver


def post(
    url: str,
    *,
    secret: str | None = None,
    timeout: float = 5.0,
    clock_now: float = NOW,
) -> Attempt:
    return post_signed(
        url, BODY, msg_id="msg_1", secret=secret, timeout=timeout, clock=lambda: clock_now
    )


@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_is_delivered(hook: Receiver, status: int) -> None:
    hook.default = Reply(status)
    attempt = post(hook.url)
    assert (attempt.delivered, attempt.status, attempt.error) == (True, status, None)
    (request,) = hook.requests
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "cbmon"


def test_a_server_error_is_not_delivered_and_its_retry_after_ignored(hook: Receiver) -> None:
    hook.default = Reply(500, {"Retry-After": "5"})
    attempt = post(hook.url)
    assert (attempt.delivered, attempt.status, attempt.error) == (False, 500, "HTTP 500")
    assert attempt.retry_after is None  # only 429 and 503 ask the sender to wait
    assert not attempt.timed_out


@pytest.mark.parametrize(
    ("status", "header", "wait"),
    [(429, "17", 17.0), (503, http_date(NOW + 45), 45.0), (429, None, None)],
)
def test_429_and_503_carry_the_wait_the_receiver_asked_for(
    hook: Receiver, status: int, header: str | None, wait: float | None
) -> None:
    hook.default = Reply(status, {"Retry-After": header} if header else {})
    attempt = post(hook.url)
    assert (attempt.delivered, attempt.status, attempt.retry_after) == (False, status, wait)


def test_a_non_ascii_digit_in_retry_after_is_not_a_crash(hook: Receiver) -> None:
    hook.default = Reply(429, {"Retry-After": "\u00b2"})  # one latin-1 byte, as a header may be
    assert post(hook.url).retry_after is None


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_says_so_without_the_url() -> None:
    url = f"http://user:pa55word@127.0.0.1:{free_port()}/hooks/{TOKEN}"
    attempt = post(url)
    assert (attempt.delivered, attempt.status, attempt.timed_out) == (False, None, False)
    assert attempt.error == "connection refused"


def test_no_reply_within_the_timeout_is_a_timeout(hook: Receiver) -> None:
    hook.default = Reply(200, delay=1.0)
    attempt = post(f"{hook.url}/{TOKEN}", timeout=0.2)
    assert attempt.timed_out
    assert not attempt.delivered
    assert attempt.error == "no complete answer within 200ms"


def test_the_sockets_own_timeout_running_out_first_is_the_same_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The socket's timeout and cbmon's deadline are the same length: whichever runs out
    first, the attempt timed out and says so in the same words."""
    import requests

    from cbmon.delivery import exchange

    def read_timeout(self: exchange._Exchange) -> None:
        self.failure = requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(exchange._Exchange, "run", read_timeout)
    attempt = post(f"http://127.0.0.1:9/{TOKEN}", timeout=0.2)
    assert (attempt.timed_out, attempt.delivered) == (True, False)
    assert attempt.error == "no complete answer within 200ms"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(500), id="500"),
        pytest.param(Reply(503, {"Retry-After": "1"}), id="503"),
        pytest.param(Reply(200, delay=1.0), id="timeout"),
    ],
)
def test_a_token_in_the_url_never_appears_in_the_error(hook: Receiver, reply: Reply) -> None:
    hook.default = reply
    url = hook.url.replace("127.0.0.1", f"alert:{TOKEN}@127.0.0.1") + f"/{TOKEN}?key={TOKEN}"
    attempt = post(url, timeout=0.2)
    assert not attempt.delivered
    assert attempt.error
    assert TOKEN not in attempt.error


def test_signed_headers_verify_with_standard_webhooks(hook: Receiver) -> None:
    secret = new_secret()
    assert post(hook.url, secret=secret, clock_now=time.time()).delivered
    (request,) = hook.requests
    assert request.headers["webhook-id"] == "msg_1"
    assert Webhook(secret).verify(request.body.decode(), request.headers) == {"status": "firing"}


def test_unsigned_sends_the_webhook_id_only(hook: Receiver) -> None:
    assert post(hook.url).delivered
    (request,) = hook.requests
    assert request.headers["webhook-id"] == "msg_1"
    assert "webhook-signature" not in request.headers
    assert "webhook-timestamp" not in request.headers


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed_nor_delivered(hook: Receiver, status: int) -> None:
    # Were the redirect followed, the second request would land here too, and get a 200.
    hook.replies.append(Reply(status, {"Location": f"{hook.url}/moved"}))
    attempt = post(hook.url)
    assert (attempt.delivered, attempt.status, attempt.error) == (False, status, f"HTTP {status}")
    assert len(hook.requests) == 1
