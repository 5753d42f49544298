"""Standard Webhooks signatures: what we sign a receiver can verify, anything else is refused,
and a bad secret is named without being shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import pytest

from cbmon.delivery.signing import SignatureError, check_secret, new_secret, sign, verify
from cbmon.errors import ConfigError

BODY = b'{"status": "firing", "alerts": []}'


def test_signed_body_verifies_and_comes_back_parsed() -> None:
    secret = new_secret()
    headers = sign(secret, "msg_1", None, BODY)
    assert headers["webhook-id"] == "msg_1"
    assert verify(secret, BODY, headers) == {"status": "firing", "alerts": []}
    assert verify(secret, BODY.decode(), headers) == {"status": "firing", "alerts": []}


def test_signature_is_the_standard_webhooks_hmac() -> None:
    # Computed here from the specification, so a receiver in any language agrees with it.
    key = b"0123456789abcdef01234567"  # 24 bytes, the least the specification allows
    secret = "whsec_" + base64.b64encode(key).decode()
    headers = sign(secret, "msg_1", 1_700_000_000, BODY)
    mac = hmac.new(key, b"msg_1.1700000000." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_new_secrets_are_whsec_base64_and_differ() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 24
    check_secret(first)


def test_a_wrong_secret_is_rejected() -> None:
    headers = sign(new_secret(), "msg_1", None, BODY)
    with pytest.raises(SignatureError, match="rejected"):
        verify(new_secret(), BODY, headers)


def test_a_changed_body_or_id_is_rejected() -> None:
    secret = new_secret()
    headers = sign(secret, "msg_1", None, BODY)
    with pytest.raises(SignatureError):
        verify(secret, BODY.replace(b"firing", b"resolved"), headers)
    with pytest.raises(SignatureError):
        verify(secret, BODY, {**headers, "webhook-id": "msg_2"})


def test_an_old_timestamp_is_rejected_as_a_replay() -> None:
    secret = new_secret()
    headers = sign(secret, "msg_1", int(time.time()) - 3600, BODY)
    with pytest.raises(SignatureError, match="too old"):
        verify(secret, BODY, headers)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": "garbage"},
        {"webhook-signature": "v1,!!!"},
        {"webhook-signature": ""},
        {"webhook-timestamp": "soon"},
        {"webhook-id": None},
        {"webhook-signature": None},
    ],
)
def test_malformed_or_missing_headers_are_a_signature_error(change: dict[str, str | None]) -> None:
    secret = new_secret()
    headers = sign(secret, "msg_1", None, BODY)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(SignatureError, match="rejected"):
        verify(secret, BODY, headers)


def test_a_body_that_is_not_json_is_a_signature_error() -> None:
    secret = new_secret()
    with pytest.raises(SignatureError, match="malformed"):
        verify(secret, b"not json", sign(secret, "msg_1", None, b"not json"))


def uses(secret: str) -> list[Callable[[], object]]:
    """Every way a secret is used: checked at start, signing, verifying."""
    return [
        lambda: check_secret(secret),
        lambda: sign(secret, "msg_1", None, BODY),
        lambda: verify(secret, BODY, {}),
    ]


@pytest.mark.parametrize("secret", ["whsec_hunte", "whsec_p\u00e4ssw\u00f6rd", "hunter2\u00e9"])
def test_a_bad_secret_is_a_config_error_that_never_shows_it(secret: str) -> None:
    for use in uses(secret):
        with pytest.raises(ConfigError, match="CBMON_WEBHOOK_SECRET") as caught:
            use()
        assert secret.removeprefix("whsec_") not in str(caught.value)
        assert caught.value.__cause__ is None  # nor in a chained traceback
        assert caught.value.__suppress_context__


@pytest.mark.parametrize("secret", ["", "whsec_"])
def test_an_empty_secret_is_a_config_error(secret: str) -> None:
    for use in uses(secret):
        with pytest.raises(ConfigError, match="must be 'whsec_' followed by the base64"):
            use()
