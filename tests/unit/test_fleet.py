"""Several databases in one process: every sample, page, document and alert names its
database, and two databases' alerts never share an identity."""

from __future__ import annotations

import json
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from cbmon.delivery.alertmanager import postable
from cbmon.delivery.dispatcher import message_of
from cbmon.delivery.payload import build
from cbmon.slo.notification import Notification
from cbmon.slo.tracker import AlertTracker
from cbmon.web.exposition import Exposition, by_database
from cbmon.web.pages import FleetPages, worst_first
from cbmon.web.status import Snapshot
from tests.support.baselines import baseline
from tests.support.sidecar import callbacks
from tests.support.status import Pipeline
from tests.unit.test_payload import indicator


class _Fixed:
    def __init__(self, attempts: float, up: float) -> None:
        self.attempts, self.up = attempts, up

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("cbmon_callback_attempts", "h", labels=["event_type"])
        family.add_metric(["pay"], self.attempts)
        yield family
        yield GaugeMetricFamily("cbmon_database_up", "h", value=self.up)


def _registry(attempts: float, up: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_Fixed(attempts, up))
    return registry


def test_each_sample_carries_its_database_and_each_family_is_named_once() -> None:
    merged = by_database({"eu": _registry(3, 1), "us": _registry(5, 0)})
    text = generate_latest(merged).decode()
    assert text.count("# TYPE cbmon_callback_attempts_total counter") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    attempts = {s.labels["database"]: s.value for s in families["cbmon_callback_attempts"].samples}
    up = {s.labels["database"]: s.value for s in families["cbmon_database_up"].samples}
    assert attempts == {"eu": 3, "us": 5}
    assert up == {"eu": 1, "us": 0}
    assert (
        merged.get_sample_value(
            "cbmon_callback_attempts_total", {"database": "us", "event_type": "pay"}
        )
        == 5
    )


def test_process_metrics_are_exported_once_and_unlabelled() -> None:
    process = CollectorRegistry()
    process.register(_Fixed(1, 1))
    exposition = Exposition(by_database({"eu": _registry(3, 1)}), CollectorRegistry(), process)
    body, _ = exposition.render("text/plain")
    lines = [line for line in body.decode().splitlines() if line.startswith("cbmon_database_up")]
    assert lines == ['cbmon_database_up{database="eu"} 1.0', "cbmon_database_up 1.0"]


def _note() -> Notification:
    tracker = AlertTracker(baseline(for_=0, window=300), repeat_interval=600)
    return tracker.update(indicator(0.98, "order_created"), now=1_700_000_000)[0]


def test_webhooks_and_alertmanager_alerts_carry_the_database() -> None:
    note = _note()
    body = build(note, "http://cbmon:9863", "eu")
    assert body["groupLabels"]["database"] == "eu"
    assert body["commonLabels"]["database"] == "eu"
    assert body["alerts"][0]["labels"]["database"] == "eu"
    assert postable(note.alerts[0], 0.0, 60.0, "u", "cbmon", "eu")["labels"]["database"] == "eu"


def test_two_databases_never_share_an_alert_identity() -> None:
    note = _note()
    eu = message_of(note, "http://cbmon:9863", "eu", "eu")
    us = message_of(note, "http://cbmon:9863", "us", "us")
    assert eu.id != us.id
    fingerprints = {json.loads(m.body)["alerts"][0]["fingerprint"] for m in (eu, us)}
    assert len(fingerprints) == 2
    # stable: the same transition of the same database has the same id, whoever sends it
    assert message_of(note, "http://other:9863", "eu", "eu").id == eu.id


def test_a_single_unnamed_database_keeps_the_ids_it_had() -> None:
    note = _note()
    message = message_of(note, "http://cbmon:9863", "db:5432/app", None)
    assert message.id == note.id
    assert json.loads(message.body)["alerts"][0]["labels"]["database"] == "db:5432/app"


def _snapshots() -> list[Snapshot]:
    healthy = Pipeline(database={"name": "healthy"})
    healthy.poll({"pay": callbacks([0.05] * 100)})
    failing = Pipeline(database={"name": "failing"})
    failing.poll({"pay": callbacks([0.05] * 100, failures=10)})
    down = Pipeline(database={"name": "down"})
    return [healthy.snapshot(), failing.snapshot(), down.snapshot(database_up=False)]


def test_the_fleet_is_shown_worst_first() -> None:
    ordered = [s.database.name for s in worst_first(_snapshots())]
    assert ordered == ["down", "failing", "healthy"]
    page = FleetPages(_snapshots).answer("/")
    assert page is not None
    text = page.body.decode()
    assert text.index(">down<") < text.index(">failing<") < text.index(">healthy<")
    assert "DATABASE DOWN" in text
    assert 'href="/databases/failing/"' in text
    assert "fleet of 3 databases" in text
    one = FleetPages(lambda: _snapshots()[:1]).answer("/")
    assert one is not None
    assert "fleet of 1 database<" in one.body.decode()


def test_the_fleet_status_lists_each_database() -> None:
    page = FleetPages(_snapshots).answer("/api/v1/status")
    assert page is not None
    document = json.loads(page.body)
    assert [d["database"]["name"] for d in document["databases"]] == [
        "down",
        "failing",
        "healthy",
    ]
    alerts = FleetPages(_snapshots).answer("/api/v1/alerts")
    assert alerts is not None
    firing = json.loads(alerts.body)["alerts"]
    assert firing
    assert {a["database"] for a in firing} == {"failing"}


def test_each_database_has_its_own_page_and_documents() -> None:
    pages = FleetPages(_snapshots)
    page = pages.answer("/databases/failing/")
    assert page is not None
    assert "database failing" in page.body.decode()
    one = pages.answer("/databases/failing/api/v1/status")
    assert one is not None
    assert json.loads(one.body)["database"]["name"] == "failing"
    assert pages.answer("/databases/nowhere/") is None
