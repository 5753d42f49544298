"""The reference worker's pure parts: retry policies from the router, backoff, Retry-After and
a body that is the same bytes on every retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cbmon.delivery.post import parse_retry_after
from cbmon.delivery.retry import WORKER, RetryPolicy
from cbmon.reference.worker import Claim, build_body, policy_from_json


def no_jitter() -> float:
    return 0.0


def test_retry_policy_from_router_json() -> None:
    default = WORKER
    assert policy_from_json(None, default) == default
    assert policy_from_json({"max_retries": 9}, default).max_retries == 3
    assert policy_from_json({"max_retries": -1}, default).max_retries == 0
    assert policy_from_json({"max_retries": "x"}, default) == default
    fixed = policy_from_json({"backoff": "fixed", "backoff_seconds": 2}, default)
    assert [fixed.delay(n, rng=no_jitter) for n in (1, 2, 3)] == [2, 2, 2]
    assert policy_from_json({}, fixed) == fixed  # a fixed default stays fixed


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = policy_from_json({"backoff_seconds": 1, "max_backoff_seconds": 3}, WORKER)
    assert [policy.delay(n, rng=no_jitter) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
    assert policy.delay(1, rng=lambda: 1.0) == 0.5  # the jitter shortens a wait by up to half
    assert policy.delay(1, retry_after=2.5, rng=no_jitter) == 2.5
    assert policy.delay(1, retry_after=600, rng=no_jitter) == 3  # Retry-After up to the cap


def test_retry_after_never_beyond_300_seconds_whatever_the_router_cap() -> None:
    policy = policy_from_json({"max_backoff_seconds": 3600}, WORKER)
    assert policy.delay(1, retry_after=3600, rng=no_jitter) == 300
    assert isinstance(policy, RetryPolicy)


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=now) == 60


def test_body_is_the_same_bytes_on_every_retry() -> None:
    created = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = Claim(7, "order_created", {"b": 1, "a": [1, 2]}, 1, created)
    again = Claim(7, "order_created", {"a": [1, 2], "b": 1}, 3, created)
    assert build_body(first) == build_body(again)
    assert json.loads(build_body(first)) == {
        "type": "order_created",
        "timestamp": "2026-01-01T12:00:00Z",
        "data": {"a": [1, 2], "b": 1},
    }
