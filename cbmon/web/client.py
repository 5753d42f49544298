"""``cbmon check --from-url``: ask a running ``cbmon serve`` for its judgement, through the
JSON API (:mod:`cbmon.web.api`), instead of reading the database.

The whole exchange is bounded by one deadline: connecting, sending and reading the answer,
however slowly the other side trickles it. Anything that is not a version 1 answer from a
serve that reads its database is a :class:`~cbmon.check.CheckError` (UNKNOWN) of one line.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

import requests

from cbmon.check import CheckError, CheckResult, budget_verdict, verdict
from cbmon.delivery.dispatcher import display_name
from cbmon.durations import format_duration
from cbmon.web import api

DATABASES = "/databases/"  # where a fleet serves each database (cbmon.web.fleet_page)
MAX_ANSWER = 16 << 20  # bytes: a status with 500 event types is well under a megabyte


def status_url(url: str) -> str:
    """``url`` itself when it names the API; ``/api/v1/status`` of it when it is a base URL:
    a serve's, or one database's of a fleet (``http://HOST:9863/databases/NAME/``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CheckError("--from-url: must be an http:// or https:// URL of a cbmon serve")
    if parts.path.rstrip("/") in ("", "/"):
        parts = parts._replace(path=api.STATUS_PATH)
    elif parts.path.startswith(DATABASES) and not parts.path.endswith(api.STATUS_PATH):
        parts = parts._replace(path=parts.path.rstrip("/") + api.STATUS_PATH)
    return urllib.parse.urlunsplit(parts)


def fetch(url: str, timeout: float) -> bytes:
    """The body of a 200 answer to GET ``url``, within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    name = display_name(url)  # the URL may hold credentials: never shown
    outcome: list[bytes | str] = []

    def get() -> None:
        try:
            with requests.get(url, timeout=timeout, stream=True) as answer:
                if answer.status_code != 200:
                    outcome.append(f"{name} answered HTTP {answer.status_code}")
                    return
                body = b""
                for chunk in answer.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_ANSWER or time.monotonic() > deadline:
                        outcome.append(f"{name} sent too much, or too slowly")
                        return
                outcome.append(body)
        except requests.RequestException as exc:
            outcome.append(f"cannot reach {name}: {type(exc).__name__}")

    # A thread, so that the deadline holds however the answer trickles in; it is a daemon
    # and its own timeouts end it soon after.
    worker = threading.Thread(target=get, name="cbmon check --from-url", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise CheckError(f"no answer from {name} within {format_duration(timeout)}")
    if isinstance(outcome[0], str):
        raise CheckError(outcome[0])
    return outcome[0]


def check_from_url(url: str, timeout: float, *, budget: bool = False) -> CheckResult:
    """The verdict of the serve at ``url``: the same rule and message as ``cbmon check``."""
    target = status_url(url)
    name = display_name(target)
    try:
        document = api.decode(fetch(target, timeout))
        indicators = api.indicators(document)
        judged_by = api.baseline(document)
        database = document["database"]
        window = float(document["window_seconds"])
        up = bool(database["up"])
    except (api.ApiError, KeyError, TypeError, ValueError) as exc:
        raise CheckError(f"{name} did not answer with cbmon's status API: {exc}") from None
    if not up:
        last = database.get("last_poll") or "never"
        raise CheckError(f"cbmon at {name} cannot read its database (last poll: {last})")
    if budget:
        return budget_verdict(api.budgets(document), judged_by)
    return verdict(indicators, window, judged_by)
