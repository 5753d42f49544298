"""Notifications are Alertmanager's webhook payload, version 4."""

from __future__ import annotations

from cbmon.delivery.payload import ZERO_TIME, build
from cbmon.slo.judge import Indicator, judge_slo
from cbmon.slo.objectives import DEFAULT
from cbmon.slo.tracker import AlertTracker
from tests.support.baselines import baseline

T = DEFAULT


def indicator(rate: float, event_type: str = "pay") -> list[Indicator]:
    return [Indicator("success_rate", event_type, rate, judge_slo("success_rate", rate, T), 1000)]


def test_payload_is_alertmanager_version_4() -> None:
    tracker = AlertTracker(baseline(for_=0, window=300), repeat_interval=600)
    note = tracker.update(indicator(0.98, "order_created"), now=1_700_000_000)[0]
    body = build(note, "http://cbmon:9863")
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "cbmon"
    assert body["groupLabels"] == {
        "alertname": "CallbackSuccessRateLow",
        "event_type": "order_created",
        "slo": "success_rate",
    }
    alert = body["alerts"][0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["endsAt"] == ZERO_TIME
    assert alert["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert len(alert["fingerprint"]) == 16
    assert "98.00%" in alert["annotations"]["summary"]
    assert "below 99.00%" in alert["annotations"]["summary"]
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
