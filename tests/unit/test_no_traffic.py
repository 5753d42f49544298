"""No traffic is a state: a firing alert without enough events enters "no data", is not sent
again with stale numbers, and resolves once a window has passed without data; and the
optional CallbackTrafficAbsent rule fires when attempts stop."""

from __future__ import annotations

from cbmon.domain import Level
from cbmon.slo import saved
from cbmon.slo.judge import Indicator, judge_slo, traffic
from cbmon.slo.objectives import DEFAULT
from cbmon.slo.tracker import AlertTracker
from tests.support.baselines import baseline
from tests.support.sidecar import callbacks
from tests.support.status import Pipeline

T = DEFAULT


def rate(value: float, event_type: str = "pay", events: int = 1000) -> Indicator:
    return Indicator("success_rate", event_type, value, judge_slo("success_rate", value, T), events)


def few(event_type: str = "pay", events: int = 3) -> Indicator:
    return Indicator("success_rate", event_type, 1.0, Level.UNKNOWN, events)


def tracker(
    for_: float = 0.0, repeat_interval: float = 600.0, traffic_absent_after: float = 0.0
) -> AlertTracker:
    judged_by = baseline(
        for_=for_, window=300.0, min_events=20, traffic_absent_after=traffic_absent_after
    )
    return AlertTracker(judged_by, repeat_interval)


def test_a_firing_alert_without_data_says_so_sends_nothing_stale_and_resolves() -> None:
    alerts = tracker(repeat_interval=60.0)
    [fired] = alerts.update([rate(0.95)], now=0)
    assert alerts.update([few()], now=10) == []  # entering no data sends nothing
    [active] = alerts.active()
    assert (active.alert.severity, active.no_data_since) == ("critical", 10)
    assert alerts.transitions()[0].change == "no_data"
    assert alerts.transitions()[0].summary == (
        "no traffic: 3 callback attempts for event type pay in the last 5m, "
        "fewer than the 20 needed to judge"
    )
    # The repeat interval passes: nothing is sent again with the numbers of t=0.
    assert alerts.update([few()], now=200) == []
    assert alerts.firing_counts() == {("CallbackSuccessRateLow", "critical"): 1}
    [resolved] = alerts.update([few(events=0)], now=310)  # a whole window without data
    [alert] = resolved.alerts
    assert (alert.status, alert.severity, alert.starts_at, alert.ends_at) == (
        "resolved",
        "critical",
        0,
        310,
    )
    assert alert.summary == (
        "Resolved for lack of data: no traffic: 0 callback attempts for event type pay in the "
        "last 5m, fewer than the 20 needed to judge (was critical: below 99.00%)"
    )
    assert "for 5m" in alert.description
    assert "Check that callbacks" in alert.description
    assert resolved.id != fired.id  # a notification of its own
    assert alerts.firing_counts() == {}
    assert alerts.active() == []
    assert alerts.transitions()[0].change == "resolved"
    assert alerts.update([few()], now=400) == []  # and stays quiet


def test_an_event_type_gone_from_the_window_has_no_data_too() -> None:
    alerts = tracker()
    alerts.update([rate(0.95, "pay"), rate(0.999, "ship")], now=0)
    assert alerts.update([rate(0.999, "ship")], now=10) == []  # "pay" has no indicator at all
    assert alerts.active()[0].no_data_since == 10
    [resolved] = alerts.update([rate(0.999, "ship")], now=310)
    assert resolved.alerts[0].event_type == "pay"
    assert resolved.alerts[0].summary.startswith(
        "Resolved for lack of data: no traffic: 0 callback attempts for event type pay"
    )


def test_traffic_back_within_the_window_keeps_the_incident_open() -> None:
    alerts = tracker()
    alerts.update([rate(0.95)], now=0)
    alerts.update([few()], now=10)
    assert alerts.update([rate(0.96)], now=100) == []  # still critical: the same alert goes on
    assert [t.change for t in alerts.transitions()] == ["data_back", "no_data", "fired"]
    assert alerts.active()[0].no_data_since is None
    assert alerts.update([few()], now=150) == []  # a new lull starts a new count
    assert alerts.update([few()], now=400) == []
    [resolved] = alerts.update([few()], now=450)
    assert resolved.alerts[0].ends_at == 450


def test_a_state_pending_when_data_runs_out_starts_over() -> None:
    alerts = tracker(for_=60.0)
    assert alerts.update([rate(0.95)], now=0) == []
    assert alerts.update([few()], now=30) == []
    assert alerts.update([rate(0.95)], now=40) == []
    assert alerts.update([rate(0.95)], now=99) == []  # 59s since it came back, not 99
    assert alerts.update([rate(0.95)], now=100)
    assert [t.change for t in alerts.transitions()] == ["fired"]  # nothing fired meanwhile


def test_no_data_survives_a_restart() -> None:
    alerts = tracker()
    alerts.update([rate(0.95)], now=0)
    alerts.update([few()], now=10)
    kept = saved.snapshot(alerts)
    again = tracker()
    assert saved.restore(again, kept) == 1
    assert again.active()[0].no_data_since == 10
    assert again.update([few()], now=309) == []
    assert again.update([few()], now=310)
    for item in kept:  # a state file written before no data existed
        del item["no_data_since"]
    older = tracker()
    saved.restore(older, kept)
    assert older.active()[0].no_data_since is None


def test_traffic_absence_is_judged_only_when_switched_on() -> None:
    assert judge_slo("last_attempt_age", 3600, baseline(traffic_absent_after=0)) is Level.UNKNOWN
    assert judge_slo("last_attempt_age", 599.9, baseline(traffic_absent_after=600)) is Level.OK
    assert judge_slo("last_attempt_age", 600, baseline(traffic_absent_after=600)) is Level.WARNING
    assert judge_slo("last_attempt_age", None, baseline(traffic_absent_after=600)) is Level.UNKNOWN
    assert traffic(12.0, baseline(traffic_absent_after=600)) == Indicator(
        "last_attempt_age", "", 12.0, Level.OK, 0
    )


def test_traffic_absent_fires_at_its_threshold_without_waiting_for_for() -> None:
    alerts = tracker(for_=60.0, traffic_absent_after=600.0)
    assert alerts.update([traffic(599, baseline(traffic_absent_after=600))], now=0) == []
    [fired] = alerts.update([traffic(600, baseline(traffic_absent_after=600))], now=1)
    [alert] = fired.alerts
    assert (alert.alertname, alert.severity, alert.event_type) == (
        "CallbackTrafficAbsent",
        "warning",
        "",
    )
    assert alert.summary == "No callback attempt logged for 10m (none for 10m or more)"
    assert "Check that callbacks are still being made" in alert.description
    [resolved] = alerts.update([traffic(0, baseline(traffic_absent_after=600))], now=5)
    assert resolved.alerts[0].status == "resolved"


def test_the_evaluator_counts_the_time_since_the_last_attempt() -> None:
    pipeline = Pipeline(slo={"for": "1m", "min_events": 10, "traffic_absent_after": "10m"})
    pipeline.poll()  # nothing yet: counted from the start, never from before it
    pipeline.clock.advance(300)
    pipeline.poll({"pay": callbacks([0.05] * 50)})
    pipeline.clock.advance(599)
    pipeline.poll()

    def age() -> float | None:
        found = [i for i in pipeline.evaluator.indicators() if i.slo == "last_attempt_age"]
        return found[0].value if found else None

    assert age() == 599
    assert pipeline.evaluator.tracker.active() == []
    pipeline.clock.advance(1)
    pipeline.poll()
    assert age() == 600
    [active] = pipeline.evaluator.tracker.active()
    assert active.alert.alertname == "CallbackTrafficAbsent"
    pipeline.poll({"pay": callbacks([0.05])})
    assert age() == 0
    assert pipeline.evaluator.tracker.active() == []
    assert Pipeline().evaluator.indicators() == []  # not polled yet; and off by default:
    off = Pipeline()
    off.poll({"pay": callbacks([0.05])})
    assert "last_attempt_age" not in {i.slo for i in off.evaluator.indicators()}
