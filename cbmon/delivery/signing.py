"""Standard Webhooks signatures (standardwebhooks.com), as the worker sends them.

``webhook-id`` is the receiver's idempotency key and must stay the same across retries of one
message; ``webhook-timestamp`` is the time of this attempt; ``webhook-signature`` is
``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). Secrets are ``whsec_`` + base64.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from cbmon.errors import CbmonError, ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret


class SignatureError(CbmonError):
    """A webhook's headers are missing, too old or too new, or no signature matches."""


def new_secret(nbytes: int = 24) -> str:
    """A fresh random secret in the ``whsec_`` form senders and receivers share."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


_FORMAT_HELP = (
    "webhook secret (--webhook-secret, CBMON_WEBHOOK_SECRET or alerting.secret_file) must be "
    "'whsec_' followed by the base64 of 24 to 64 random bytes; make one with "
    "python -c 'import cbmon.delivery.signing as s; print(s.new_secret())'"
)


def check_secret(secret: str) -> None:
    """Raise ConfigError unless ``secret`` is a Standard Webhooks secret: ``whsec_`` and the
    strict base64 of 24 to 64 bytes. The message never repeats the secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError(_FORMAT_HELP) from None
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(_FORMAT_HELP) from None
    if not 24 <= len(key) <= 64:
        raise ConfigError(_FORMAT_HELP) from None


def _webhook(secret: str) -> Webhook:
    check_secret(secret)
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError):
        raise ConfigError(_FORMAT_HELP) from None  # never echo the secret itself


def _text(body: str | bytes) -> str:
    return body.decode("utf-8") if isinstance(body, bytes) else body


def sign(secret: str, msg_id: str, timestamp: int | None, body: str | bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``; ``timestamp`` defaults to now."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signature = _webhook(secret).sign(
        msg_id=msg_id, timestamp=datetime.fromtimestamp(ts, tz=UTC), data=_text(body)
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }


def verify(secret: str, body: str | bytes, headers: dict[str, str]) -> Any:
    """The parsed JSON body if the headers carry a valid signature, else SignatureError.

    Comparison is constant-time and the timestamp must be within five minutes of now.
    """
    try:
        return _webhook(secret).verify(_text(body), dict(headers))
    except WebhookVerificationError as exc:
        raise SignatureError(f"webhook signature rejected: {exc}") from None
    except ValueError:
        # a malformed signature header (bad base64, no "v1," part) or a body that is not JSON
        raise SignatureError("webhook signature rejected: malformed header or body") from None
