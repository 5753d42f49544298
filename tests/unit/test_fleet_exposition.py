"""A fleet's ``/metrics``: each database's part rendered on its own poll, merged family by
family at the scrape, is what one registry of every database renders, in both formats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from cbmon.web.exposition import Exposition, by_database, merge_families

FORMATS = ["text/plain", "application/openmetrics-text; version=1.0.0"]


class _Families:
    """A database's families: some every database has, some only this one (a feature its
    tables have), one with no samples, and counts that change between polls."""

    def __init__(self, name: str, attempts: float, own: bool) -> None:
        self.name, self.attempts, self.own, self.collected = name, attempts, own, 0

    def collect(self) -> Iterator[Metric]:
        self.collected += 1
        attempts = CounterMetricFamily(
            "cbmon_callback_attempts", "Attempts.", labels=["event_type"], created=1.5
        )
        attempts.add_metric(["pay"], self.attempts, created=1.5)
        attempts.add_metric(['ship "x"\\n'], 2 * self.attempts, created=2.5)
        yield attempts
        if self.own:
            yield GaugeMetricFamily(f"cbmon_only_{self.name}", "Only here.", value=1)
        duration = HistogramMetricFamily(
            "cbmon_callback_duration_seconds", "Durations.", labels=["event_type"], unit="seconds"
        )
        duration.add_metric(["pay"], [("0.1", 1), ("+Inf", self.attempts)], sum_value=4.25)
        yield duration
        yield GaugeMetricFamily("cbmon_empty", "No samples.", labels=["x"])
        yield InfoMetricFamily("cbmon_build", "Build.", value={"version": "0.3.0"})
        yield GaugeMetricFamily("cbmon_database_up", "Up.", value=1)


def _fleet(*parts: tuple[str, float, bool]) -> dict[str, tuple[_Families, CollectorRegistry]]:
    found = {}
    for name, attempts, own in parts:
        families = _Families(name, attempts, own)
        registry = CollectorRegistry()
        registry.register(families)
        found[name] = (families, registry)
    return found


@pytest.mark.parametrize("accept", FORMATS)
def test_the_merged_parts_are_one_registry_of_every_database(accept: str) -> None:
    fleet = _fleet(("eu", 3, True), ("us", 5, False), ("ap", 7, True))
    registries = {name: registry for name, (_, registry) in fleet.items()}
    encoder, _ = choose_encoder(accept)
    whole = encoder(by_database(registries))
    parts = [encoder(by_database({name: r})) for name, r in registries.items()]
    assert merge_families(parts) == whole


@pytest.mark.parametrize("accept", FORMATS)
def test_a_poll_renders_its_own_database_alone_and_the_scrape_shows_it(accept: str) -> None:
    fleet = _fleet(("eu", 3, True), ("us", 5, False))
    registries = {name: registry for name, (_, registry) in fleet.items()}
    exposition = Exposition(registries, CollectorRegistry())
    encoder, _ = choose_encoder(accept)
    assert exposition.render(accept)[0] == encoder(by_database(registries))
    eu, us = fleet["eu"][0], fleet["us"][0]
    before = (eu.collected, us.collected)
    us.attempts = 11
    exposition.refresh("us")  # as us's poll thread does after its poll
    assert (eu.collected, us.collected) == (before[0], before[1] + 1)
    body, _ = exposition.render(accept)
    assert (eu.collected, us.collected) == (before[0], before[1] + 1)  # the scrape renders none
    assert body == encoder(by_database(registries))
    assert b'cbmon_callback_attempts_total{database="us",event_type="pay"} 11.0' in body


def test_a_database_gone_from_the_fleet_leaves_the_body() -> None:
    fleet = _fleet(("eu", 3, True), ("us", 5, True))
    registries = {name: registry for name, (_, registry) in fleet.items()}
    exposition = Exposition(registries, CollectorRegistry())
    assert b'database="us"' in exposition.render("text/plain")[0]
    exposition.set_polled({"eu": registries["eu"]})
    body, _ = exposition.render("text/plain")
    assert b'database="us"' not in body
    assert b"cbmon_only_us" not in body
    assert body == choose_encoder("text/plain")[0](by_database({"eu": registries["eu"]}))
