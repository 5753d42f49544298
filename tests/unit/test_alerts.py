"""Alert lifecycles on plain values: for, repeat, resolve, escalation, unknown."""

from __future__ import annotations

from cbmon.domain import Level
from cbmon.slo.judge import Indicator, judge_slo
from cbmon.slo.objectives import DEFAULT
from cbmon.slo.tracker import AlertTracker
from tests.support.baselines import baseline

T = DEFAULT


def indicator(rate: float, event_type: str = "pay") -> list[Indicator]:
    state = judge_slo("success_rate", rate, T)
    return [Indicator("success_rate", event_type, rate, state, 1000)]


def test_for_holds_a_state_before_it_fires_then_resolves_and_repeats() -> None:
    tracker = AlertTracker(baseline(for_=60, window=300), repeat_interval=600)
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
    tracker = AlertTracker(baseline(for_=0, window=300), repeat_interval=600)
    notes = tracker.update(indicator(0.993), now=0)
    assert [(a.status, a.severity) for a in notes[0].alerts] == [("firing", "warning")]


def test_a_short_blip_does_not_fire() -> None:
    tracker = AlertTracker(baseline(for_=60, window=300), repeat_interval=600)
    assert tracker.update(indicator(0.98), now=0) == []
    assert tracker.update(indicator(0.999), now=30) == []
    assert tracker.update(indicator(0.98), now=70) == []


def test_escalation_resolves_the_warning_and_fires_critical() -> None:
    tracker = AlertTracker(baseline(for_=0, window=300), repeat_interval=600)
    tracker.update(indicator(0.993), now=0)
    notes = tracker.update(indicator(0.95), now=10)
    assert [(a.status, a.severity) for a in notes[0].alerts] == [
        ("resolved", "warning"),
        ("firing", "critical"),
    ]
    assert tracker.firing_counts() == {("CallbackSuccessRateLow", "critical"): 1}


def test_unknown_changes_nothing() -> None:
    tracker = AlertTracker(baseline(for_=0, window=300), repeat_interval=600)
    tracker.update(indicator(0.95), now=0)
    unknown = [Indicator("success_rate", "pay", None, Level.UNKNOWN, 2)]
    assert tracker.update(unknown, now=10) == []
    assert tracker.firing_counts() == {("CallbackSuccessRateLow", "critical"): 1}
