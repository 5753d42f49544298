"""Alert delivery (:mod:`cbmon.delivery.dispatcher`) against real HTTP receivers on 127.0.0.1.

Outboxes send from threads of their own: the tests wait for what a receiver gets and assert
the order of events, never how many seconds something took.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from standardwebhooks import Webhook

from cbmon.delivery.dispatcher import Message, Outbox
from cbmon.delivery.retry import RetryPolicy
from cbmon.delivery.signing import new_secret
from tests.support.processes import wait_for
from tests.support.receiver import Reply, receiver

BODY = json.dumps({"version": "4", "status": "firing", "alerts": []}).encode()


class _Fanout:
    """Outboxes started together; one message to each."""

    def __init__(self, outboxes: list[Outbox]) -> None:
        self.sent = 0
        self.outboxes = outboxes
        for outbox in outboxes:
            outbox.start()

    def send(self, body: bytes) -> None:
        self.sent += 1
        message = Message(id=f"msg_test_{self.sent}", body=body)
        for outbox in self.outboxes:
            outbox.send(message)

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.stop()


def test_signed_and_the_id_is_stable_across_retries() -> None:
    secret = new_secret()
    with receiver() as hook:
        hook.replies = [Reply(500), Reply(502)]
        out = Outbox(hook.url, secret, retry=RetryPolicy(initial=0.05, max_retries=3))
        notifier = _Fanout([out])
        notifier.send(BODY)
        requests = hook.wait(3)
        notifier.close()
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        # An independent verifier accepts every attempt's signature.
        assert Webhook(secret).verify(request.body, request.headers)["version"] == "4"
    assert (out.counters.delivered, out.counters.retries, out.counters.failed) == (1, 2, 0)


def test_a_wrong_secret_does_not_verify() -> None:
    with receiver() as hook:
        notifier = _Fanout([Outbox(hook.url, new_secret())])
        notifier.send(BODY)
        request = hook.wait(1)[0]
        notifier.close()
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(new_secret()).verify(request.body, request.headers)


@pytest.mark.slow
def test_retry_budget_then_delivered_when_the_receiver_comes_back() -> None:
    back = threading.Event()
    with receiver() as hook:
        # One try and three retries fail; the next attempt is held until the test looks.
        hook.replies = [Reply(500)] * 4 + [Reply(200, gate=back)]
        out = Outbox(hook.url, None, retry=RetryPolicy(initial=0.05, max_retries=3), down_retry=0.2)
        notifier = _Fanout([out])
        try:
            notifier.send(BODY)
            hook.wait(5)
            # The fifth attempt came after the budget was spent, not as a fourth retry...
            assert (out.counters.retries, out.counters.failed, out.counters.delivered) == (3, 1, 0)
            assert out.pending() == 1  # ...and the message was not forgotten.
        finally:
            back.set()
        wait_for(lambda: out.counters.delivered == 1, timeout=5)
        notifier.close()
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(ids) == 5
    assert len(set(ids)) == 1
    assert out.pending() == 0


class _NoteWaits(Outbox):
    """An outbox that notes each wait it chooses and then goes on at once: what it would
    have slept is checked, without sleeping it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []

    def _wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return super()._wait(0)


def test_retry_after_is_honoured_and_backoff_grows() -> None:
    with receiver() as paced, receiver() as control:
        paced.replies = [Reply(429, {"Retry-After": "30"}), Reply(503, {"Retry-After": "7"})]
        control.replies = [Reply(500), Reply(500), Reply(500)]
        asked = _NoteWaits(paced.url, None, retry=RetryPolicy(initial=1.0))
        not_asked = _NoteWaits(control.url, None, retry=RetryPolicy(initial=1.0))
        notifier = _Fanout([asked, not_asked])
        notifier.send(BODY)
        wait_for(lambda: asked.counters.delivered == not_asked.counters.delivered == 1, timeout=5)
        notifier.close()
    assert asked.waits == [30.0, 7.0]  # what the receiver asked for, not the backoff
    assert len(not_asked.waits) == 3
    for attempt, waited in enumerate(not_asked.waits, start=1):
        ceiling = 2.0 ** (attempt - 1)  # 1 s, 2 s, 4 s, less up to half at random
        assert ceiling / 2 <= waited <= ceiling


def test_a_retry_after_longer_than_five_minutes_is_cut_to_five() -> None:
    with receiver() as hook:
        hook.replies = [Reply(503, {"Retry-After": "3600"}), Reply(429, {"Retry-After": "3600"})]
        out = _NoteWaits(hook.url, None, retry=RetryPolicy(initial=0.05, max_retries=1))
        notifier = _Fanout([out])
        notifier.send(BODY)
        wait_for(lambda: out.counters.delivered == 1, timeout=5)
        notifier.close()
    # a retry, then the retries spent: the pause before trying again is cut to 300 s too
    assert out.waits == [300.0, 300.0]


def test_a_hanging_receiver_delays_nobody_else() -> None:
    release = threading.Event()
    with receiver() as slow, receiver() as fast:
        slow.default = Reply(200, gate=release)
        # Its timeout outlasts the waits below: were the receivers served one after the
        # other, the fast one would hear nothing more once the slow one holds a request.
        hanging = Outbox(slow.url, None, timeout=60)
        notifier = _Fanout([hanging, Outbox(fast.url, None)])
        try:
            notifier.send(BODY)
            slow.wait(1)  # the slow receiver holds the first message...
            notifier.send(BODY)
            fast.wait(2)  # ...while the fast one gets both
            assert (len(slow.requests), hanging.counters.delivered) == (1, 0)
        finally:
            release.set()
        wait_for(lambda: hanging.counters.delivered == 2, timeout=5)
        notifier.close()


@pytest.mark.slow
def test_a_receiver_that_does_not_answer_times_out_and_is_retried() -> None:
    release = threading.Event()
    with receiver() as slow:
        slow.default = Reply(200, gate=release)
        out = Outbox(
            slow.url,
            None,
            timeout=0.3,
            retry=RetryPolicy(initial=0.05, max_retries=1),
            down_retry=60,
        )
        notifier = _Fanout([out])
        try:
            notifier.send(BODY)
            wait_for(lambda: out.counters.failed == 1, timeout=5)
            assert (out.counters.retries, out.counters.delivered, out.pending()) == (1, 0, 1)
            requests = slow.wait(2)
        finally:
            release.set()
            notifier.close()
    assert len(requests) == 2
    assert len({r.headers["webhook-id"] for r in requests}) == 1
