"""Reloading: what can change live applies, what cannot is named and kept, and the parts of
the sidecar follow the new configuration with what they hold (pending alerts, queues)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cbmon.config import Config, load_config
from cbmon.delivery.dispatcher import Dispatcher, Message
from cbmon.domain import Figures, PollResult
from cbmon.ingest.store import LabeledPoll, Store
from cbmon.sidecar.evaluator import Evaluator
from cbmon.sidecar.reload import ReloadStatus, plan
from cbmon.slo.notification import Notification
from cbmon.web.collector import ReloadCollector
from tests.support.sidecar import Leadership, ManualClock, callbacks, feed, poll_result

HOOK = "http://127.0.0.1:9/hook"
OTHER = "http://127.0.0.1:10/hook"
SECRET = "whsec_" + "A" * 32


def config(**keys: Any) -> Config:
    return load_config(overrides=keys, dsn="postgresql://cbmon@db/app", environ={})


def test_what_can_change_live_is_applied_and_named_as_the_file_names_it() -> None:
    running = config(slo={"for": "1m"}, alerting={"webhooks": [HOOK]})
    loaded = config(
        slo={"for": "0s", "window": "10m"},
        thresholds={"success_rate": {"alert": "98%"}},
        alerting={"webhooks": [HOOK, OTHER]},
    )
    outcome = plan(running, loaded)
    assert outcome.changed == (
        "alerting.webhooks",
        "slo.for",
        "slo.window",
        "thresholds.success_rate.alert",
    )
    assert outcome.kept == ()
    assert outcome.config.file == loaded.file
    assert outcome.summary() == (
        "alerting.webhooks, slo.for, slo.window, thresholds.success_rate.alert changed; "
        "applied at the next poll"
    )


def test_what_cannot_change_live_is_named_and_keeps_its_running_value() -> None:
    running = config(listen="127.0.0.1:9863")
    loaded = config(
        listen="0.0.0.0:9999",
        tables={"logs": {"schema": "app", "table": "attempts"}},
        thresholds={"slow_callback": "300ms"},
        slo={"for": "5m"},
    )
    outcome = plan(running, loaded)
    assert outcome.changed == ("slo.for",)
    assert outcome.kept == (
        "listen",
        "tables.logs.schema",
        "tables.logs.table",
        "thresholds.slow_callback",
    )
    file = outcome.config.file
    assert (file.listen, file.tables, file.thresholds.slow_callback) == (
        running.file.listen,
        running.file.tables,
        running.file.thresholds.slow_callback,
    )
    assert file.slo.for_ == 300
    assert outcome.summary() == (
        "slo.for changed; applied at the next poll; listen, tables.logs.schema, "
        "tables.logs.table, thresholds.slow_callback cannot change while cbmon runs and keep "
        "their running values until a restart"
    )


def test_secrets_are_compared_never_shown() -> None:
    running = config()
    loaded = load_config(dsn="postgresql://cbmon:new@db/app", webhook_secret=SECRET, environ={})
    outcome = plan(running, loaded)
    assert (outcome.changed, outcome.kept) == (("the webhook secret",), ("the DSN",))
    assert outcome.config.webhook_secret == SECRET
    assert outcome.config.dsn == running.dsn  # connections keep the DSN they started with
    assert "new" not in outcome.summary()
    assert SECRET not in outcome.summary()


def test_nothing_changed_says_so() -> None:
    outcome = plan(config(), config())
    assert (outcome.changed, outcome.kept) == ((), ())
    assert outcome.summary() == "nothing that can change live changed"


# -- the parts follow --------------------------------------------------------------------------


def pay(figures: Figures) -> PollResult:
    return poll_result({"pay": figures})


def test_a_pending_alert_fires_at_once_when_for_is_shortened() -> None:
    clock = ManualClock()
    evaluator = Evaluator(config(slo={"for": "10m", "min_events": 10}), clock=clock)
    result = pay(callbacks([0.04] * 90, failures=10))
    assert evaluator.observe(result, feed_store(result)) == []  # pending for 10m
    clock.advance(5)
    evaluator.reconfigure(config(slo={"for": "5s", "min_events": 10}))
    notes = evaluator.observe(pay(callbacks()), feed_store(pay(callbacks())))
    assert {alert.status for note in notes for alert in note.alerts} == {"firing"}


def test_stricter_thresholds_judge_the_window_already_held() -> None:
    clock = ManualClock()
    evaluator = Evaluator(config(slo={"for": "0s", "min_events": 10}), clock=clock)
    result = pay(callbacks([0.04] * 97, failures=3))  # 97%: critical by the baseline
    lenient = {"success_rate": {"normal": "95%", "alert": "90%"}}
    evaluator.reconfigure(config(slo={"for": "0s", "min_events": 10}, thresholds=lenient))
    assert evaluator.observe(result, feed_store(result)) == []
    clock.advance(5)
    evaluator.reconfigure(config(slo={"for": "0s", "min_events": 10}))
    assert evaluator.evaluate(0, clock.now)  # the same window, judged by the baseline: fires


def test_a_shorter_window_lets_its_oldest_slices_go() -> None:
    clock = ManualClock()
    evaluator = Evaluator(config(slo={"window": "10m"}), clock=clock)
    result = pay(callbacks([0.04] * 50))
    evaluator.observe(result, feed_store(result))
    clock.advance(120)
    evaluator.reconfigure(config(slo={"window": "1m"}))
    assert evaluator.window.totals(clock.now)[0].attempts == 0
    assert evaluator.tracker.no_data_resolve == 60


def feed_store(result: PollResult) -> LabeledPoll:
    return feed(Store(10), result)


def firing_note() -> Notification:
    clock = ManualClock()
    evaluator = Evaluator(config(slo={"for": "0s", "min_events": 10}), clock=clock)
    result = pay(callbacks([0.04] * 90, failures=10))
    return evaluator.observe(result, feed_store(result))[0]


def test_receivers_kept_keep_their_queue_new_ones_hear_what_fires_gone_ones_are_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leading = Leadership(True)
    dispatcher = Dispatcher.from_config(
        config(alerting={"webhooks": [HOOK, OTHER]}), leading, "http://cbmon:9863"
    )
    kept, gone = dispatcher.outboxes
    kept.send(Message("msg_waiting", b"{}"))
    gone.send(Message("msg_lost", b"{}"))
    note = firing_note()
    new_url = "http://127.0.0.1:11/hook"
    with caplog.at_level(logging.WARNING, logger="cbmon.delivery.dispatcher"):
        dispatcher.reconfigure(
            config(alerting={"webhooks": [HOOK, new_url], "timeout": "2s"}), lambda: [note]
        )
    assert [outbox.url for outbox in dispatcher.outboxes] == [HOOK, new_url]
    assert dispatcher.outboxes[0] is kept
    assert [m.id for m in kept.waiting()] == ["msg_waiting"]
    assert [m.id for m in dispatcher.outboxes[1].waiting()] == [note.id]
    assert kept.timeout == 2.0
    assert dispatcher.outboxes[1].name == "http://127.0.0.1:11"
    assert caplog.messages == [
        "webhook http://127.0.0.1:10 is no longer configured: 1 notification(s) waiting for "
        "it are dropped"
    ]
    assert dispatcher.dirty.is_set()  # the state file follows


def test_no_receivers_left_lets_go_of_the_leader_lock() -> None:
    closed: list[bool] = []

    class Held(Leadership):
        def close(self) -> None:
            closed.append(True)

    dispatcher = Dispatcher.from_config(
        config(alerting={"webhooks": [HOOK]}), Held(True), "http://cbmon:9863"
    )
    dispatcher.reconfigure(config())
    assert (dispatcher.outboxes, closed) == ([], [True])


def test_the_reload_metrics_are_named_as_prometheus_names_its_own() -> None:
    status = ReloadStatus(loaded_at=1_700_000_000.0)
    registry = CollectorRegistry()
    registry.register(ReloadCollector(status))
    assert registry.get_sample_value("cbmon_config_last_reload_successful") == 1
    status.failed()
    assert registry.get_sample_value("cbmon_config_last_reload_successful") == 0
    stamp = "cbmon_config_last_reload_success_timestamp_seconds"
    assert registry.get_sample_value(stamp) == 1_700_000_000.0
    status.succeeded(1_700_000_100.0)
    assert registry.get_sample_value("cbmon_config_last_reload_successful") == 1
    assert registry.get_sample_value(stamp) == 1_700_000_100.0
