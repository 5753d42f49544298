"""Baseline judgement, the window, and alert lifecycles, on plain values."""

from __future__ import annotations

import pytest

from cbmon.alerting.payload import ZERO_TIME, build
from cbmon.config import load_config
from cbmon.sidecar.poller import BUCKETS, CallbackDelta
from cbmon.sidecar.window import Totals, Window, quantile
from cbmon.slo.alerts import AlertTracker, Indicator, evaluate
from cbmon.slo.judge import State, judge_avg_latency, judge_backlog, judge_success_rate

T = load_config(environ={}).thresholds


@pytest.mark.parametrize(
    ("rate", "state"),
    [
        (1.0, State.OK),
        (0.9951, State.OK),
        (0.995, State.WARNING),
        (0.992, State.WARNING),
        (0.99, State.WARNING),
        (0.9899, State.CRITICAL),
        (0.0, State.CRITICAL),
        (None, State.UNKNOWN),
    ],
)
def test_success_rate_boundaries(rate: float | None, state: State) -> None:
    assert judge_success_rate(rate, T) is state


@pytest.mark.parametrize(
    ("seconds", "state"),
    [
        (0.0, State.OK),
        (0.1499, State.OK),
        (0.15, State.WARNING),
        (0.3, State.WARNING),
        (0.5, State.WARNING),
        (0.5001, State.CRITICAL),
    ],
)
def test_latency_boundaries(seconds: float, state: State) -> None:
    assert judge_avg_latency(seconds, T) is state


@pytest.mark.parametrize(
    ("items", "state"),
    [
        (0, State.OK),
        (999, State.OK),
        (1000, State.WARNING),
        (5000, State.WARNING),
        (5001, State.CRITICAL),
    ],
)
def test_backlog_boundaries(items: int, state: State) -> None:
    assert judge_backlog(items, T) is state


def delta(attempts: int, failures: int, seconds: float) -> CallbackDelta:
    buckets = tuple(attempts if seconds <= bound else 0 for bound in BUCKETS)
    return CallbackDelta(
        attempts,
        failures,
        attempts,
        seconds * attempts,
        buckets,
        0,
        attempts if seconds > 0.2 else 0,
    )


def totals(attempts: int, failures: int, seconds: float) -> Totals:
    return Totals.of(delta(attempts, failures, seconds), 0)


def states(indicators: list[Indicator]) -> dict[tuple[str, str], State]:
    return {(i.slo, i.event_type): i.state for i in indicators}


def test_exactly_the_boundaries_are_warnings() -> None:
    # 995 of 1000 is exactly 99.5 %: a warning, not ok.
    got = states(evaluate(totals(1000, 5, 0.15), {}, 1000, T, min_events=20))
    assert got[("success_rate", "")] is State.WARNING
    assert got[("avg_latency", "")] is State.WARNING
    assert got[("backlog", "")] is State.WARNING


def test_too_few_events_are_not_judged() -> None:
    got = states(evaluate(totals(3, 1, 2.0), {"a": totals(3, 1, 2.0)}, 0, T, min_events=20))
    assert got[("success_rate", "")] is State.UNKNOWN
    assert got[("avg_latency", "a")] is State.UNKNOWN
    assert got[("backlog", "")] is State.OK  # the queue is always judged


def test_quantile_interpolates_like_histogram_quantile() -> None:
    # 100 observations: 50 in (0, 0.05], 50 in (0.05, 0.1]; p95 lies 90 % into the second.
    assert quantile(0.95, (0.05, 0.1), (50, 100), 100) == pytest.approx(0.095)
    assert quantile(0.5, (0.05, 0.1), (50, 100), 100) == pytest.approx(0.05)
    assert quantile(0.95, (0.05, 0.1), (0, 0), 10) == 0.1  # all above the last bound
    assert quantile(0.95, (0.05,), (0,), 0) is None


def test_window_forgets_what_slid_out() -> None:
    window = Window(60)
    window.add(100.0, {"a": (delta(10, 1, 0.1), 2)})
    window.add(130.0, {"a": (delta(10, 0, 0.1), 0), "b": (None, 5)})
    overall, per_type = window.totals(150.0)
    assert (overall.attempts, overall.failures, overall.errors) == (20, 1, 7)
    overall, per_type = window.totals(165.0)
    assert (overall.attempts, overall.failures, overall.errors) == (10, 0, 5)
    assert (per_type["b"].attempts, per_type["b"].errors) == (0, 5)


def indicator(rate: float, event_type: str = "pay") -> list[Indicator]:
    state = judge_success_rate(rate, T)
    return [Indicator("success_rate", event_type, rate, state, 1000)]


def test_for_holds_a_state_before_it_fires_then_resolves_and_repeats() -> None:
    tracker = AlertTracker(T, for_=60, repeat_interval=600, window=300)
    assert tracker.update(indicator(0.98), now=0) == []
    assert tracker.update(indicator(0.98), now=59) == []
    fired = tracker.update(indicator(0.98), now=60)
    assert [(a.status, a.severity, a.alertname) for a in fired[0].alerts] == [
        ("firing", "critical", "CallbackSuccessRateLow")
    ]
    assert tracker.update(indicator(0.98), now=300) == []
    repeat = tracker.update(indicator(0.98), now=660)
    assert repeat[0].repeat
    assert repeat[0].alerts[0].status == "firing"
    resolved = tracker.update(indicator(0.999), now=700)
    assert [(a.status, a.severity) for a in resolved[0].alerts] == [("resolved", "critical")]
    assert resolved[0].alerts[0].summary == (
        "Resolved: Callback success rate 99.90% for event type pay (was critical: below 99.00%)"
    )
    assert tracker.update(indicator(0.999), now=2000) == []


def test_for_zero_fires_at_the_first_evaluation() -> None:
    tracker = AlertTracker(T, for_=0, repeat_interval=600, window=300)
    notes = tracker.update(indicator(0.993), now=0)
    assert [(a.status, a.severity) for a in notes[0].alerts] == [("firing", "warning")]


def test_a_short_blip_does_not_fire() -> None:
    tracker = AlertTracker(T, for_=60, repeat_interval=600, window=300)
    assert tracker.update(indicator(0.98), now=0) == []
    assert tracker.update(indicator(0.999), now=30) == []
    assert tracker.update(indicator(0.98), now=70) == []


def test_escalation_resolves_the_warning_and_fires_critical() -> None:
    tracker = AlertTracker(T, for_=0, repeat_interval=600, window=300)
    tracker.update(indicator(0.993), now=0)
    notes = tracker.update(indicator(0.95), now=10)
    assert [(a.status, a.severity) for a in notes[0].alerts] == [
        ("resolved", "warning"),
        ("firing", "critical"),
    ]
    assert tracker.firing_counts() == {("CallbackSuccessRateLow", "critical"): 1}


def test_unknown_changes_nothing() -> None:
    tracker = AlertTracker(T, for_=0, repeat_interval=600, window=300)
    tracker.update(indicator(0.95), now=0)
    unknown = [Indicator("success_rate", "pay", None, State.UNKNOWN, 2)]
    assert tracker.update(unknown, now=10) == []
    assert tracker.firing_counts() == {("CallbackSuccessRateLow", "critical"): 1}


def test_payload_is_alertmanager_version_4() -> None:
    tracker = AlertTracker(T, for_=0, repeat_interval=600, window=300)
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


def test_window_memory_is_bounded_whatever_the_poll_rate() -> None:
    window = Window(60)
    for tick in range(6000):  # ten polls a second for ten minutes
        window.add(tick / 10, {"a": (delta(1, 0, 0.1), 0)})
    overall, _ = window.totals(600.0)
    assert len(window) <= Window.SLICES + 1
    assert 595 <= overall.attempts <= 605  # the last minute, to within one step
