"""Every metric family, read the way client_python tests its collectors: a fresh registry,
the collector registered, ``get_sample_value`` for what a scrape would show."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from cbmon import __version__
from cbmon.config import load_config
from cbmon.delivery.alertmanager import AlertmanagerSender
from cbmon.delivery.dispatcher import Dispatcher, Message, Outbox
from cbmon.domain import Assumption, Figures
from cbmon.ingest.store import Store
from cbmon.sidecar.evaluator import Evaluator
from cbmon.web.collector import (
    CallbackCollector,
    DeliveryCollector,
    EvaluatorCollector,
    QueueAgeCollector,
)
from tests.support.sidecar import Leadership, ManualClock, callbacks, feed, poll_result

NO_ALERTMANAGER = AlertmanagerSender(
    [], cluster="cbmon", external_url="http://cbmon:9863", timeout=1.0, resend_interval=60.0
)


def registry_with(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# -- callbacks ------------------------------------------------------------------------------


def test_attempts_failures_invalid_and_errors_add_up_per_event_type_across_polls() -> None:
    store = Store(max_event_types=10, clock=ManualClock())
    registry = registry_with(CallbackCollector(store))
    feed(
        store,
        poll_result(
            {
                "order_created": callbacks([0.04, 0.12], failures=2, invalid=1),
                "refund": Figures(errors=2),
            }
        ),
    )
    feed(store, poll_result({"order_created": callbacks([0.6], errors=1), None: callbacks([0.01])}))

    def per_type(name: str, event_type: str) -> float | None:
        return sample(registry, f"cbmon_callback_{name}_total", event_type=event_type)

    assert per_type("attempts", "order_created") == 4
    assert per_type("failures", "order_created") == 2
    assert per_type("invalid_durations", "order_created") == 1
    assert per_type("errors", "order_created") == 1
    # An event type seen only in the error table still has every series, at zero attempts.
    assert per_type("attempts", "refund") == 0
    assert per_type("errors", "refund") == 2
    assert per_type("attempts", "unknown") == 1


def test_duration_histogram_is_cumulative_with_prometheus_le_labels() -> None:
    store = Store(max_event_types=10, clock=ManualClock())
    registry = registry_with(CallbackCollector(store))
    feed(store, poll_result({"pay": callbacks([0.04, 0.12], invalid=2)}))
    feed(store, poll_result({"pay": callbacks([0.6, 7.0])}))
    buckets = {
        "0.05": 1,
        "0.1": 1,
        "0.15": 2,
        "0.2": 2,
        "0.3": 2,
        "0.5": 2,
        "1.0": 3,  # "1.0", not "1": le values are floats as client_python writes them
        "2.5": 3,
        "5.0": 3,
        "+Inf": 4,  # 7 s is above every bound and counted only here
    }
    for le, count in buckets.items():
        got = sample(registry, "cbmon_callback_duration_seconds_bucket", event_type="pay", le=le)
        assert got == count, le
    # Invalid durations are attempts, but not observations.
    assert sample(registry, "cbmon_callback_duration_seconds_count", event_type="pay") == 4
    assert sample(registry, "cbmon_callback_attempts_total", event_type="pay") == 6
    assert sample(
        registry, "cbmon_callback_duration_seconds_sum", event_type="pay"
    ) == pytest.approx(7.76)


# -- the queue -------------------------------------------------------------------------------


def test_backlog_is_the_last_polls_and_oldest_age_grows_between_polls() -> None:
    clock = ManualClock(1_000_000.0)
    store = Store(max_event_types=10, clock=clock)
    registry = registry_with(CallbackCollector(store), QueueAgeCollector(store))
    # The database's clock runs 10 s ahead of ours; the age is read on the database's clock.
    db_ahead = 10.0
    feed(
        store,
        poll_result(
            backlog=7, oldest_created=clock.now + db_ahead - 60, db_now=clock.now + db_ahead
        ),
    )
    assert sample(registry, "cbmon_queue_backlog") == 7
    assert sample(registry, "cbmon_queue_oldest_age_seconds") == 60

    clock.advance(15)  # no poll: the backlog stays, the oldest row has waited 15 s longer
    assert sample(registry, "cbmon_queue_backlog") == 7
    assert sample(registry, "cbmon_queue_oldest_age_seconds") == 75

    feed(store, poll_result(backlog=0, oldest_created=None, db_now=clock.now + db_ahead))
    assert sample(registry, "cbmon_queue_backlog") == 0
    assert sample(registry, "cbmon_queue_oldest_age_seconds") == 0


# -- cbmon's own health ------------------------------------------------------------------------


def test_a_failed_poll_marks_the_database_down_and_is_counted() -> None:
    clock = ManualClock(1_000_000.0)
    store = Store(max_event_types=10, clock=clock)
    registry = registry_with(CallbackCollector(store))
    assert sample(registry, "cbmon_database_up") == 0  # not polled yet
    assert sample(registry, "cbmon_last_poll_timestamp_seconds") == 0

    feed(store, poll_result(), duration=0.02)
    assert sample(registry, "cbmon_database_up") == 1
    assert sample(registry, "cbmon_last_poll_timestamp_seconds") == 1_000_000.0
    assert sample(registry, "cbmon_poll_duration_seconds_bucket", le="0.01") == 0
    assert sample(registry, "cbmon_poll_duration_seconds_bucket", le="0.025") == 1
    assert sample(registry, "cbmon_poll_duration_seconds_bucket", le="+Inf") == 1
    assert sample(registry, "cbmon_poll_duration_seconds_sum") == 0.02

    clock.advance(5)
    store.poll_failed()
    assert sample(registry, "cbmon_database_up") == 0
    assert sample(registry, "cbmon_polls_total") == 2
    assert sample(registry, "cbmon_poll_errors_total", reason="connection") == 1
    # The last *successful* poll, so an alert on its age fires while the database is away.
    assert sample(registry, "cbmon_last_poll_timestamp_seconds") == 1_000_000.0
    assert sample(registry, "cbmon_poll_duration_seconds_count") == 1

    feed(store, poll_result())
    assert sample(registry, "cbmon_database_up") == 1
    assert sample(registry, "cbmon_polls_total") == 3
    assert sample(registry, "cbmon_poll_errors_total", reason="connection") == 1


def test_reader_lag_and_open_gaps_are_the_last_polls_per_table() -> None:
    store = Store(max_event_types=10, clock=ManualClock())
    registry = registry_with(CallbackCollector(store))
    feed(store, poll_result(lag_rows={"logs": 1500, "errors": 3}, open_gaps={"logs": 2}))
    assert sample(registry, "cbmon_reader_lag_rows", table="logs") == 1500
    assert sample(registry, "cbmon_reader_lag_rows", table="errors") == 3
    assert sample(registry, "cbmon_reader_open_gaps", table="logs") == 2
    assert sample(registry, "cbmon_reader_open_gaps", table="errors") == 0
    feed(store, poll_result(lag_rows={"logs": 0, "errors": 0}, open_gaps={"logs": 0}))
    assert sample(registry, "cbmon_reader_lag_rows", table="logs") == 0
    assert sample(registry, "cbmon_reader_open_gaps", table="logs") == 0


def test_folded_and_truncated_event_types_are_counted() -> None:
    store = Store(max_event_types=3, clock=ManualClock(), max_event_type_length=16)
    registry = registry_with(CallbackCollector(store))
    feed(store, poll_result({"a": callbacks([0.1]), "b": callbacks([0.1]), "x" * 40: callbacks()}))
    feed(store, poll_result({"c": callbacks([0.1, 0.1]), "d": callbacks([0.1] * 3)}))
    assert sample(registry, "cbmon_event_types") == 3
    assert sample(registry, "cbmon_event_types_folded_total") == 2
    assert sample(registry, "cbmon_event_types_truncated_total") == 1
    assert sample(registry, "cbmon_callback_attempts_total", event_type="other") == 5
    assert sample(registry, "cbmon_callback_attempts_total", event_type="c") is None


def test_assumptions_and_rows_dated_ahead_checked_at_start_stay_exported() -> None:
    store = Store(max_event_types=10, clock=ManualClock())
    registry = registry_with(CallbackCollector(store))
    assumptions = (
        Assumption("logs", "ids_from_sequence", ok=True, detail=""),
        Assumption("logs", "sequence_cache_1", ok=False, detail="CACHE 20"),
    )
    feed(store, poll_result(assumptions=assumptions, ahead_rows={"logs": 3, "errors": 0}))
    feed(store, poll_result())  # later polls do not check again; the findings stay
    ok = "cbmon_reader_assumption_ok"
    assert sample(registry, ok, table="logs", check="ids_from_sequence") == 1
    assert sample(registry, ok, table="logs", check="sequence_cache_1") == 0
    assert sample(registry, "cbmon_rows_dated_ahead", table="logs") == 3
    assert sample(registry, "cbmon_rows_dated_ahead", table="errors") == 0


def test_build_info_names_the_version() -> None:
    registry = registry_with(CallbackCollector(Store(max_event_types=10)))
    assert sample(registry, "cbmon_build_info", version=__version__) == 1


# -- SLO evaluation ---------------------------------------------------------------------------


def evaluated(leading: bool = True, **overrides: object) -> tuple[CollectorRegistry, Leadership]:
    """An evaluator fed one poll (for 0s, so alerts fire at once) and its collector:

    order_created  100 attempts, 5 failed, 100 ms each: success rate critical
    refund         100 attempts, 300 ms each: average latency warning
    rare           3 attempts without a duration: too few to judge
    backlog        1200: warning
    """
    config = load_config(
        overrides={"slo": {"for": "0s", "min_events": 10}, **overrides}, environ={}
    )
    clock = ManualClock()
    store = Store(max_event_types=10, clock=clock)
    evaluator = Evaluator(config, clock=clock)
    result = poll_result(
        {
            "order_created": callbacks([0.1] * 100, failures=5),
            "refund": callbacks([0.3] * 100),
            "rare": callbacks(invalid=3),
        },
        backlog=1200,
    )
    evaluator.observe(result, store.label(result))
    leadership = Leadership(leading)
    dispatcher = Dispatcher([], leadership, "http://cbmon:9863")
    return registry_with(EvaluatorCollector(evaluator, dispatcher)), leadership


def test_slo_values_and_states_per_event_type_and_overall() -> None:
    registry, _ = evaluated()

    def value(slo: str, event_type: str = "") -> float | None:
        return sample(registry, "cbmon_slo_value", slo=slo, event_type=event_type)

    def state(slo: str, event_type: str = "") -> float | None:
        return sample(registry, "cbmon_slo_state", slo=slo, event_type=event_type)

    assert value("success_rate", "order_created") == 0.95
    assert state("success_rate", "order_created") == 2
    assert value("avg_latency", "refund") == pytest.approx(0.3)
    assert state("avg_latency", "refund") == 1
    assert state("success_rate", "refund") == 0
    # Overall is event_type="": 5 failures in 203 attempts.
    assert value("success_rate") == pytest.approx(198 / 203)
    assert state("success_rate") == 2
    assert (value("backlog"), state("backlog")) == (1200, 1)
    # Too few events: the value is shown, the state is unknown; no duration: no value at all.
    assert value("success_rate", "rare") == 1.0
    assert state("success_rate", "rare") == -1
    assert value("avg_latency", "rare") is None
    assert state("avg_latency", "rare") == -1
    # Extras are shown but not judged, so they have no state series.
    # p95 from the buckets, as histogram_quantile does: 95 % into the (0.2, 0.3] bucket.
    assert value("p95_latency", "refund") == pytest.approx(0.295)
    assert state("p95_latency", "refund") is None


def test_alerts_firing_are_counted_by_name_and_severity() -> None:
    registry, _ = evaluated()

    def firing(alertname: str, severity: str) -> float | None:
        return sample(registry, "cbmon_alerts_firing", alertname=alertname, severity=severity)

    assert firing("CallbackSuccessRateLow", "critical") == 2  # order_created and overall
    assert firing("CallbackLatencyHigh", "warning") == 2  # refund and overall (avg 200 ms)
    assert firing("CallbackBacklogHigh", "warning") == 1
    assert firing("CallbackSuccessRateLow", "warning") is None


def test_thresholds_are_the_configured_ones() -> None:
    registry, _ = evaluated(
        thresholds={
            "success_rate": {"normal": "99.9%", "alert": "98%"},
            "avg_latency": {"normal": "100ms", "alert": "1s"},
            "backlog": {"normal": 10, "alert": 20},
        }
    )
    expected = {
        ("success_rate", "normal"): 0.999,
        ("success_rate", "alert"): 0.98,
        ("avg_latency", "normal"): 0.1,
        ("avg_latency", "alert"): 1.0,
        ("backlog", "normal"): 10,
        ("backlog", "alert"): 20,
    }
    for (slo, level), threshold in expected.items():
        got = sample(registry, "cbmon_slo_threshold", slo=slo, level=level)
        assert got == pytest.approx(threshold), (slo, level)


def test_leader_follows_the_leadership_at_each_scrape() -> None:
    registry, leadership = evaluated(leading=True)
    assert sample(registry, "cbmon_leader") == 1
    leadership.is_leader = False
    assert sample(registry, "cbmon_leader") == 0


# -- alert delivery ---------------------------------------------------------------------------


def test_delivery_counters_and_pending_per_receiver_without_the_url_token() -> None:
    hooks = Outbox("http://hooks.example:8080/t/s3cr3t-token", None)
    other = Outbox("https://alerts.example/x", None)
    registry = registry_with(
        DeliveryCollector(
            Dispatcher([hooks, other], Leadership(True), "http://cbmon:9863"), NO_ALERTMANAGER
        )
    )
    hooks.counters.delivered, hooks.counters.failed, hooks.counters.retries = 3, 1, 4
    hooks.send(Message(id="msg_0", body=b"{}"))
    hooks.send(Message(id="msg_1", body=b"{}"))

    def delivery(name: str, outbox: Outbox) -> float | None:
        return sample(registry, name, receiver=outbox.name)

    delivered, failed = "cbmon_alert_notifications_total", "cbmon_alert_notifications_failed_total"
    retries, pending = "cbmon_alert_notification_retries_total", "cbmon_alert_notifications_pending"
    assert delivery(delivered, hooks) == 3
    assert delivery(failed, hooks) == 1
    assert delivery(retries, hooks) == 4
    assert delivery(pending, hooks) == 2
    assert [delivery(name, other) for name in (delivered, failed, retries, pending)] == [0] * 4
    hooks.send(Message(id="msg_2", body=b"{}"))  # read at each scrape, not once per poll
    assert delivery(pending, hooks) == 3
    # Webhook URLs often carry a token: the receiver label must not.
    labels = [value for m in registry.collect() for s in m.samples for value in s.labels.values()]
    assert labels
    assert not [label for label in labels if "s3cr3t" in label]
