"""The mechanism's probe judged and exported, on plain values: schedules, failing jobs, route
problems, the four indicators, the metric families and the status page's section."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from cbmon.config import load_config
from cbmon.domain import Bucket, HandlerStats, Job, Level, Mechanism, SourceState
from cbmon.ingest.mechanism import MechanismProbe, Settings, route_problems, schedule_interval
from cbmon.sidecar.reload import plan
from cbmon.slo import mechanism as judged
from cbmon.slo.objectives import DEFAULT, Limits
from cbmon.slo.tracker import AlertTracker
from cbmon.web import status_page
from cbmon.web.mechanism import MechanismCollector, summary
from tests.support.status import Pipeline

AT = 1_800_000_000.0
OK = tuple(
    SourceState(name, "ok") for name in ("notify_queue", "scheduler", "rate_limits", "router")
)


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("* * * * *", 60.0),
        ("*/5 * * * *", 300.0),
        ("0 * * * *", 3600.0),
        ("30 3 * * *", 86400.0),
        ("0 */6 * * *", 6 * 3600.0),
        ("30 seconds", 30.0),
        ("@hourly", 3600.0),
        ("sysdate + 1/1440", 60.0),
        ("sysdate + 1", 86400.0),
        ("0,30 * * * *", None),
        ("null", None),
    ],
)
def test_a_schedule_says_how_often_a_job_runs(schedule: str, seconds: float | None) -> None:
    assert schedule_interval(schedule) == seconds


def test_a_job_fails_after_missed_runs_of_its_interval_or_when_disabled() -> None:
    job = Job("drain", True, 60.0, last_success=AT - 100, since=AT - 100)
    assert judged.job_failing(job, AT + 79, 3) is None
    assert judged.job_failing(job, AT + 80, 3) is not None
    assert judged.job_failing(dataclasses.replace(job, enabled=False), AT, 3) == "disabled"
    unknown = dataclasses.replace(job, interval=None)
    assert judged.job_failing(unknown, AT + 10_000, 3) is None  # only its enabled flag


def state(**values: object) -> Mechanism:
    return dataclasses.replace(Mechanism(at=AT, sources=OK), **values)  # type: ignore[arg-type]


def levels(found: Mechanism, baseline: object = DEFAULT) -> dict[str, tuple[float | None, Level]]:
    return {
        i.slo: (i.value, i.state)
        for i in judged.indicators(found, baseline, 3)  # type: ignore[arg-type]
    }


def test_the_defaults_judge_as_the_issue_says() -> None:
    quiet = state(
        notify_usage=0.5,
        jobs=(Job("drain", True, 60.0, since=AT),),
        buckets=(Bucket("default", 5, 10, 0),),
        dropped_in_window=0,
        route_problems={"no_route": ()},
    )
    assert levels(quiet) == {
        "notify_queue_usage": (0.5, Level.WARNING),  # the boundary is a warning
        "scheduler_jobs_failing": (0.0, Level.OK),
        "rate_limited": (0.0, Level.OK),
        "route_problems": (0.0, Level.OK),
    }
    bad = dataclasses.replace(
        quiet,
        notify_usage=0.91,
        jobs=(Job("drain", False, 60.0, since=AT),),
        dropped_in_window=1,
        route_problems={"no_route": ("refund",), "disabled": ("refund", "legacy")},
    )
    assert levels(bad) == {
        "notify_queue_usage": (0.91, Level.CRITICAL),
        "scheduler_jobs_failing": (1.0, Level.CRITICAL),
        "rate_limited": (1.0, Level.WARNING),
        "route_problems": (2.0, Level.WARNING),  # event types, each counted once
    }
    assert levels(dataclasses.replace(quiet, notify_usage=0.49))["notify_queue_usage"][1] is (
        Level.OK
    )


def test_absent_sources_are_not_judged_and_unreadable_ones_are_unknown() -> None:
    found = Mechanism(
        at=AT,
        sources=(SourceState("notify_queue", "absent"), SourceState("router", "unreadable")),
    )
    assert levels(found) == {"route_problems": (None, Level.UNKNOWN)}


def test_the_notify_thresholds_come_from_the_configuration() -> None:
    config = load_config(
        overrides={"mechanism": {"notify_queue_usage": {"normal": "1%", "alert": "2%"}}},
        environ={},
    )
    assert config.baseline.limit("notify_queue_usage") == Limits(0.01, 0.02)
    assert levels(state(notify_usage=0.03), config.baseline)["notify_queue_usage"][1] is (
        Level.CRITICAL
    )


def test_mechanism_alerts_fire_at_once_whatever_slo_for_says() -> None:
    tracker = AlertTracker(dataclasses.replace(DEFAULT, for_=600.0))
    found = judged.indicators(state(dropped_in_window=3, buckets=()), DEFAULT, 3)
    notes = tracker.update(found, now=100.0)
    assert [(a.alertname, a.severity, a.status) for n in notes for a in n.alerts] == [
        ("CallbackRateLimited", "warning", "firing")
    ]
    assert "Callbacks dropped by the rate limiter: 3" in notes[0].alerts[0].summary


def test_route_problems_by_kind() -> None:
    settings = Settings("app", {}, 300.0, 3, {"pay": 5}, 60.0)
    routes = [
        {"event_type": "a", "enabled": True, "missing_handler": False, "max_retries": "3"},
        {"event_type": "b", "enabled": False, "missing_handler": True, "max_retries": "4"},
        {"event_type": "pay", "enabled": True, "missing_handler": False, "max_retries": "5"},
        {"event_type": "c", "enabled": True, "missing_handler": False, "max_retries": None},
    ]
    assert route_problems(routes, ["a", "z"], settings) == {
        "no_route": ("z",),
        "disabled": ("b",),
        "missing_handler": ("b",),
        "retries_above_policy": ("b",),  # pay may retry 5 times
    }


def test_every_family_is_exported_from_memory() -> None:
    probe = MechanismProbe(Settings("app", {}, 300.0, 3, {}, 60.0), lambda: 0.0)
    registry = CollectorRegistry()
    registry.register(MechanismCollector(probe))
    assert list(registry.collect()) == []  # before the first probe: nothing
    probe.state = state(
        notify_usage=0.25,
        listeners={"callback_queue": False},
        jobs=(Job("drain", True, 60.0, 4, 2, AT - 30, AT - 30),),
        buckets=(Bucket("default", 2.0, 10, 7),),
        dropped_in_window=1,
        route_problems={"no_route": ("x",), "missing_handler": ("y", "z")},
        handlers=(HandlerStats("app.route_callback", 9, 0.25),),
    )
    value = registry.get_sample_value
    assert value("cbmon_notify_queue_usage_ratio") == 0.25
    assert value("cbmon_listener_up", {"channel": "callback_queue"}) == 0
    assert (
        value("cbmon_scheduler_job_runs_total", {"job_name": "drain", "result": "succeeded"}) == 4
    )
    assert value("cbmon_scheduler_job_runs_total", {"job_name": "drain", "result": "failed"}) == 2
    assert (
        value("cbmon_scheduler_job_last_success_timestamp_seconds", {"job_name": "drain"})
        == AT - 30
    )
    assert value("cbmon_scheduler_job_enabled", {"job_name": "drain"}) == 1
    assert value("cbmon_scheduler_job_interval_seconds", {"job_name": "drain"}) == 60
    assert value("cbmon_rate_limit_tokens", {"bucket": "default"}) == 2
    assert value("cbmon_rate_limited_total", {"bucket": "default"}) == 7
    assert value("cbmon_route_problems", {"problem": "missing_handler"}) == 2
    assert value("cbmon_route_problems", {"problem": "disabled"}) == 0
    assert value("cbmon_handler_calls_total", {"function": "app.route_callback"}) == 9
    assert value("cbmon_handler_seconds_total", {"function": "app.route_callback"}) == 0.25
    assert value("cbmon_mechanism_source_state", {"source": "router", "state": "ok"}) == 1
    assert value("cbmon_mechanism_source_state", {"source": "router", "state": "absent"}) == 0


def test_the_summary_names_failing_jobs() -> None:
    found = state(jobs=(Job("drain", True, 60.0, since=AT - 180), Job("ok", True, 60.0, since=AT)))
    jobs = {j["job"]: j["failing"] for j in summary(found, 3)["jobs"]}  # type: ignore[index]
    assert jobs == {"drain": "no success in 3 of its intervals", "ok": None}
    assert summary(None, 3) is None


def test_the_status_page_names_the_failing_job_and_the_broken_routes() -> None:
    pipeline = Pipeline()
    probed = state(
        notify_usage=0.1,
        jobs=(Job("drain", False, 60.0, since=AT), Job("purge", True, 60.0, since=AT)),
        buckets=(Bucket("default", 5, 10, 0),),
        dropped_in_window=0,
        route_problems={"no_route": ("refund",), "missing_handler": ("chargeback",)},
    )
    pipeline.evaluator.mechanism = probed
    pipeline.poll()
    snapshot = dataclasses.replace(pipeline.snapshot(), mechanism=summary(probed, 3))
    page = status_page.render(snapshot)
    section = page[page.index('<section id="mechanism">') :]
    section = section[: section.index("</section>")]
    assert "drain: disabled" in section
    assert "purge" not in section  # ok, so not named
    assert "no route: refund" in section
    assert "handler function missing: chargeback" in section
    assert 'data-slo="scheduler_jobs_failing"' in section
    assert snapshot.indicator("scheduler_jobs_failing", "") is not None
    assert snapshot.state is Level.CRITICAL


def test_the_mechanisms_limits_reload_live() -> None:
    running = load_config(environ={})
    loaded = load_config(
        overrides={"mechanism": {"notify_queue_usage": {"normal": "10%", "alert": "20%"}}},
        environ={},
    )
    done = plan(running, loaded)
    assert done.changed == (
        "mechanism.notify_queue_usage.alert",
        "mechanism.notify_queue_usage.normal",
    )
    assert done.config.baseline.limit("notify_queue_usage") == Limits(0.1, 0.2)
