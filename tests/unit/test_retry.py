"""The one retry policy of every sender: backoff, jitter, and the cap on Retry-After."""

from __future__ import annotations

import dataclasses

import pytest

from cbmon.delivery import retry
from cbmon.delivery.alertmanager import AlertmanagerSender
from cbmon.delivery.retry import RETRY_AFTER_CAP, RetryPolicy


def no_jitter() -> float:
    return 0.0


def test_backoff_doubles_from_the_initial_wait_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=1.0, cap=30.0)
    waits = [policy.backoff(n, rng=no_jitter) for n in range(1, 8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert RetryPolicy(initial=0.5).backoff(0, rng=no_jitter) == 0.5  # no attempt yet: initial


def test_a_factor_of_one_keeps_the_wait_fixed() -> None:
    policy = RetryPolicy(initial=2.0, factor=1.0)
    assert [policy.delay(n, rng=no_jitter) for n in (1, 2, 3, 9)] == [2.0, 2.0, 2.0, 2.0]


def test_a_receiver_down_for_ever_waits_the_cap_without_overflow() -> None:
    assert RetryPolicy(cap=30.0).backoff(5000, rng=no_jitter) == 30.0


@pytest.mark.parametrize(
    ("jitter", "draw", "wait"),
    [
        (0.5, 0.0, 8.0),  # no jitter drawn: the full wait
        (0.5, 0.5, 6.0),
        (0.5, 1.0, 4.0),  # at most half of it taken off
        (0.2, 1.0, 6.4),
        (1.0, 1.0, 0.0),
        (0.0, 0.9, 8.0),
    ],
)
def test_jitter_takes_off_up_to_its_share(jitter: float, draw: float, wait: float) -> None:
    policy = RetryPolicy(initial=1.0, cap=30.0, jitter=jitter)
    assert policy.backoff(4, rng=lambda: draw) == pytest.approx(wait)


def test_retry_after_is_waited_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(initial=1.0, cap=30.0)
    assert policy.delay(1, retry_after=7.0, rng=no_jitter) == 7.0
    assert policy.delay(5, retry_after=1.0, rng=no_jitter) == 16.0  # never sooner than backoff
    assert policy.delay(1, retry_after=-3.0, rng=no_jitter) == 1.0  # a date in the past


@pytest.mark.parametrize("asked", [301.0, 3600.0, 86_400.0 * 365])
def test_retry_after_is_honoured_up_to_300_seconds(asked: float) -> None:
    policy = RetryPolicy()
    assert RETRY_AFTER_CAP == 300.0
    assert policy.delay(1, retry_after=asked, rng=no_jitter) == 300.0
    assert policy.honoured(asked) == 300.0
    assert policy.honoured(299.5) == 299.5
    assert policy.honoured(None) is None


def test_a_policy_may_honour_less_but_the_shared_ones_honour_the_cap() -> None:
    assert RetryPolicy(retry_after_cap=5.0).delay(1, retry_after=60.0, rng=no_jitter) == 5.0
    shared = [retry.WEBHOOKS, retry.ALERTMANAGER, retry.RECONNECT, retry.WORKER]
    assert {p.retry_after_cap for p in shared} == {RETRY_AFTER_CAP}


def test_the_policy_is_a_frozen_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        retry.WEBHOOKS.cap = 1.0  # type: ignore[misc]
    assert dataclasses.replace(retry.WEBHOOKS, max_retries=5).max_retries == 5
    assert retry.WEBHOOKS.max_retries == 3


def test_alertmanager_retries_within_its_resend_interval() -> None:
    sender = AlertmanagerSender(
        [], cluster="c", external_url="http://cbmon", timeout=1.0, resend_interval=5.0
    )
    assert sender.retry is retry.ALERTMANAGER
    waits = [sender._retry_wait(n) for n in range(1, 8)]
    assert max(waits) <= 5.0  # a firing alert is posted again before its endsAt
    assert 0.5 <= waits[0] <= 1.0
