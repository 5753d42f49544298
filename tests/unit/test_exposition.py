"""The /metrics body: the format the scraper asked for, the polled part rendered once per poll,
the live part at every scrape."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from cbmon.config import load_config
from cbmon.delivery.alertmanager import AlertmanagerSender
from cbmon.delivery.dispatcher import Dispatcher, Outbox
from cbmon.ingest.store import Store
from cbmon.sidecar.evaluator import Evaluator
from cbmon.web.collector import (
    CallbackCollector,
    DeliveryCollector,
    EvaluatorCollector,
    QueueAgeCollector,
)
from cbmon.web.exposition import Exposition
from tests.conftest import require_binary
from tests.support.sidecar import Leadership, ManualClock, callbacks, feed, poll_result

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

NO_ALERTMANAGER = AlertmanagerSender(
    [], cluster="cbmon", external_url="http://cbmon:9863", timeout=1.0, resend_interval=60.0
)


@dataclass
class Sidecar:
    """The parts a scrape reads, wired as ``cbmon serve`` wires them, on a clock the test moves."""

    clock: ManualClock
    store: Store
    evaluator: Evaluator
    exposition: Exposition

    def poll(self, attempts: int, backlog: int) -> None:
        """A poll adding ``attempts`` 100 ms calls; the oldest waiting row 30 s old."""
        now = self.clock.now
        result = poll_result(
            {"pay": callbacks([0.1] * attempts)},
            backlog=backlog,
            db_now=now,
            oldest_created=now - 30,
        )
        self.evaluator.observe(result, feed(self.store, result))


def sidecar() -> Sidecar:
    clock = ManualClock()
    store = Store(max_event_types=10, clock=clock)
    evaluator = Evaluator(load_config(environ={}), clock=clock)
    dispatcher = Dispatcher(
        [Outbox("http://127.0.0.1:9/hook", None)], Leadership(True), "http://cbmon:9863"
    )
    polled, live = CollectorRegistry(), CollectorRegistry()
    polled.register(CallbackCollector(store))
    polled.register(EvaluatorCollector(evaluator, dispatcher))
    live.register(QueueAgeCollector(store))
    live.register(DeliveryCollector(dispatcher, NO_ALERTMANAGER))
    return Sidecar(clock, store, evaluator, Exposition(polled, live))


def parse(body: bytes, openmetrics: bool = False) -> Samples:
    # The OpenMetrics parser is strict: it refuses a body without "# EOF" as its last line.
    families = (openmetrics_families if openmetrics else text_string_to_metric_families)(
        body.decode("utf-8")
    )
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in families
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


ATTEMPTS = "cbmon_callback_attempts_total"
AGE = "cbmon_queue_oldest_age_seconds"


def test_text_format_by_default_and_for_browsers() -> None:
    side = sidecar()
    side.poll(attempts=2, backlog=4)
    for accept in ("", "text/html,application/xhtml+xml,*/*;q=0.8"):
        body, content_type = side.exposition.render(accept)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(body)
        assert value(samples, ATTEMPTS, event_type="pay") == 2
        assert value(samples, "cbmon_queue_backlog") == 4
        assert value(samples, AGE) == 30  # the live part, appended
        assert b"# EOF" not in body


def test_openmetrics_when_asked_with_one_eof_at_the_very_end() -> None:
    side = sidecar()
    side.poll(attempts=2, backlog=4)
    body, content_type = side.exposition.render(OPENMETRICS)
    assert content_type.startswith(OPENMETRICS)
    assert body.count(b"# EOF") == 1
    assert body.endswith(b"\n# EOF\n")
    samples = parse(body, openmetrics=True)
    assert value(samples, ATTEMPTS, event_type="pay") == 2
    # Live samples sit between the polled ones and the end marker.
    assert value(samples, AGE) == 30
    assert value(samples, "cbmon_alert_notifications_pending", receiver="http://127.0.0.1:9") == 0
    assert body.index(b"cbmon_queue_oldest_age_seconds") > body.index(b"cbmon_callback_attempts")


def test_polled_numbers_are_served_from_the_cache_until_refresh() -> None:
    side = sidecar()
    side.poll(attempts=2, backlog=4)
    side.exposition.refresh()
    side.exposition.render("")
    side.exposition.render(OPENMETRICS)

    side.poll(attempts=3, backlog=9)  # the state moves, but nobody has called refresh()
    for accept, openmetrics in (("", False), (OPENMETRICS, True)):
        samples = parse(side.exposition.render(accept)[0], openmetrics)
        assert value(samples, ATTEMPTS, event_type="pay") == 2
        assert value(samples, "cbmon_queue_backlog") == 4

    side.exposition.refresh()  # as the poll loop does after each poll
    for accept, openmetrics in (("", False), (OPENMETRICS, True)):
        samples = parse(side.exposition.render(accept)[0], openmetrics)
        assert value(samples, ATTEMPTS, event_type="pay") == 5
        assert value(samples, "cbmon_queue_backlog") == 9


def test_live_numbers_are_fresh_at_every_scrape() -> None:
    side = sidecar()
    side.poll(attempts=2, backlog=4)
    side.exposition.refresh()
    assert value(parse(side.exposition.render("")[0]), AGE) == 30
    side.clock.advance(12)  # no poll, no refresh: the oldest row has still waited longer
    assert value(parse(side.exposition.render("")[0]), AGE) == 42
    samples = parse(side.exposition.render(OPENMETRICS)[0], openmetrics=True)
    assert value(samples, AGE) == 42


def test_rendered_body_passes_promtool() -> None:
    promtool = require_binary("promtool")
    side = sidecar()
    side.poll(attempts=30, backlog=4)
    side.exposition.refresh()
    body, _ = side.exposition.render("")
    assert b'cbmon_slo_value{event_type="pay",slo="success_rate"} 1.0' in body  # every family
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
