"""The demo's local receivers over real HTTP on 127.0.0.1: signatures checked, answers and
counts as the scenario says."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from cbmon.delivery import signing
from cbmon.demo.receivers import AlertEvent, AlertReceiver, CallbackReceivers
from cbmon.demo.scenario import Phase


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return requests.post(url, data=body, headers=headers, timeout=5).status_code


@pytest.mark.slow
def test_callback_receivers_verify_signatures_and_fail_the_scenario_share() -> None:
    secret = signing.new_secret()
    phase = Phase("test", 1.0, 0.0, 0.25)
    receivers = CallbackReceivers(secret, lambda: phase, threading.Event())
    receivers.start()
    try:
        url = receivers.url("order_created")
        body = b'{"type":"order_created"}'
        assert _post(url, body, {"webhook-id": "msg_1"}) == 401
        forged = signing.sign(signing.new_secret(), "msg_2", None, body)
        assert _post(url, body, forged) == 401
        codes = [_post(url, body, signing.sign(secret, f"msg_{n}", None, body)) for n in range(8)]
        assert sorted(codes) == [200] * 6 + [500] * 2  # exactly a quarter fail
        counts = receivers.counts["/billing"]
        assert (counts.requests, counts.failed, counts.rejected) == (10, 2, 2)
    finally:
        receivers.close()


@pytest.mark.slow
def test_alert_receiver_counts_firing_and_resolved_once_per_notification() -> None:
    secret = signing.new_secret()
    events: list[AlertEvent] = []
    receiver = AlertReceiver(secret, events.append)
    receiver.start()
    try:
        firing = {
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "CallbackLatencyHigh", "severity": "warning"},
                    "annotations": {"summary": "slow"},
                }
            ],
        }
        resolved = json.loads(json.dumps(firing).replace('"firing"', '"resolved"'))
        for msg_id, payload in (("msg_a", firing), ("msg_a", firing), ("msg_b", resolved)):
            body = json.dumps(payload).encode()
            assert _post(receiver.url, body, signing.sign(secret, msg_id, None, body)) == 200
        body = json.dumps(firing).encode()
        assert _post(receiver.url, body, signing.sign("whsec_" + "A" * 32, "x", None, body)) == 401
        counts = receiver.snapshot()
        assert (counts.notifications, counts.fired, counts.resolved, counts.rejected) == (
            2,
            1,
            1,
            1,
        )
        assert counts.firing == []
        assert [e.status for e in events] == ["firing", "resolved"]
    finally:
        receiver.close()
