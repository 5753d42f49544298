"""The SLO evaluator inside ``cbmon serve``: fed after every poll, it keeps the window,
judges the baseline, tracks alerts, hands notifications to the notifier when this replica
leads, and exports what it knows as metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cbmon import signing
from cbmon.alerting import payload
from cbmon.alerting.dispatcher import Notifier, Receiver
from cbmon.alerting.leader import Leadership, lock_key
from cbmon.config import Config
from cbmon.sidecar.poller import CallbackDelta, PollResult
from cbmon.sidecar.window import Window
from cbmon.slo.alerts import AlertTracker, Indicator, Notification, evaluate

log = logging.getLogger(__name__)


class Evaluator:
    def __init__(
        self,
        config: Config,
        external_url: str,
        label: Callable[[str | None], str],
        *,
        leadership: Leadership | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        slo, alerting = config.file.slo, config.file.alerting
        if config.webhook_secret is not None:
            signing.check_secret(config.webhook_secret)  # one clear line now, not at 3 a.m.
        self.config = config
        self.external_url = external_url
        self.window = Window(slo.window)
        self.tracker = AlertTracker(
            config.thresholds, slo.for_, alerting.repeat_interval, slo.window
        )
        self.notifier = Notifier(
            [
                Receiver(
                    url,
                    config.webhook_secret,
                    timeout=alerting.timeout,
                    max_retries=alerting.max_retries,
                )
                for url in alerting.webhooks
            ]
        )
        logs = config.tables.logs
        self.leadership = leadership or Leadership(
            config.require_dsn(),
            lock_key(logs.table_schema, logs.table),
            connect_timeout=config.file.database.connect_timeout,
        )
        self._label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._indicators: list[Indicator] = []
        self._was_leader = False

    # -- PollObserver ------------------------------------------------------------------------
    def observe(
        self, result: PollResult, deltas: dict[str, tuple[CallbackDelta | None, int]]
    ) -> None:
        now = self._clock()
        offset = now - result.queue.db_now  # history slots are on the database's clock
        for at, raw, delta, errors in result.history:
            self.window.add(at + offset, {self._label(raw): (delta, errors)})
        self.window.add(now, deltas)
        self.evaluate(result.queue.backlog, now)

    def evaluate(self, backlog: int, now: float) -> list[Notification]:
        overall, per_type = self.window.totals(now)
        slo = self.config.file.slo
        indicators = evaluate(overall, per_type, backlog, self.config.thresholds, slo.min_events)
        notes = self.tracker.update(indicators, now)
        with self._lock:
            self._indicators = indicators
        leader = self.leadership.check() if self.notifier.receivers else False
        if leader and not self._was_leader:
            # A replica taking over re-sends what fires, rather than risk it being lost.
            notes = [n for n in notes if n.status == "resolved"] + self.tracker.firing(now)
        self._was_leader = leader
        if leader:
            for note in notes:
                self.notifier.send(payload.encode(note, self.external_url))
                log.info(
                    "alert %s %s: %s",
                    note.status,
                    ",".join(f"{k}={v}" for k, v in note.group.items()),
                    note.alerts[-1].summary,
                )
        return notes

    def indicators(self) -> list[Indicator]:
        with self._lock:
            return list(self._indicators)

    def close(self) -> None:
        self.notifier.close()
        self.leadership.close()


class EvaluatorCollector(Collector):
    def __init__(self, evaluator: Evaluator) -> None:
        self._evaluator = evaluator

    def collect(self) -> Iterator[Metric]:
        evaluator = self._evaluator
        value = GaugeMetricFamily(
            "cbmon_slo_value",
            "Measured value over the SLO window (ratio, seconds or items).",
            labels=["slo", "event_type"],
        )
        state = GaugeMetricFamily(
            "cbmon_slo_state",
            "Judgement against the baseline: 0 ok, 1 warning, 2 critical, -1 unknown.",
            labels=["slo", "event_type"],
        )
        for indicator in evaluator.indicators():
            labels = [indicator.slo, indicator.event_type]
            if indicator.value is not None:
                value.add_metric(labels, indicator.value)
            if indicator.slo in ("success_rate", "avg_latency", "backlog"):
                state.add_metric(labels, int(indicator.state))
        yield value
        yield state
        yield self._thresholds()
        firing = GaugeMetricFamily(
            "cbmon_alerts_firing",
            "Alerts cbmon considers firing.",
            labels=["alertname", "severity"],
        )
        for (alertname, severity), count in sorted(evaluator.tracker.firing_counts().items()):
            firing.add_metric([alertname, severity], count)
        yield firing
        yield GaugeMetricFamily(
            "cbmon_leader",
            "1 on the replica that sends notifications, 0 on the others.",
            value=1 if evaluator.leadership.is_leader else 0,
        )

    def _thresholds(self) -> Metric:
        t = self._evaluator.config.thresholds
        family = GaugeMetricFamily(
            "cbmon_slo_threshold",
            "Configured thresholds, in the units of cbmon_slo_value.",
            labels=["slo", "level"],
        )
        for slo, normal, alert in (
            ("success_rate", t.success_rate.normal, t.success_rate.alert),
            ("avg_latency", t.avg_latency.normal, t.avg_latency.alert),
            ("backlog", float(t.backlog.normal), float(t.backlog.alert)),
        ):
            family.add_metric([slo, "normal"], normal)
            family.add_metric([slo, "alert"], alert)
        return family


class NotifierCollector(Collector):
    """Delivery counters move between polls, so they are read at scrape time."""

    def __init__(self, evaluator: Evaluator) -> None:
        self._evaluator = evaluator

    def collect(self) -> Iterator[Metric]:
        evaluator = self._evaluator
        delivered = CounterMetricFamily(
            "cbmon_alert_notifications", "Notifications delivered (2xx).", labels=["receiver"]
        )
        failed = CounterMetricFamily(
            "cbmon_alert_notifications_failed",
            "Notifications that exhausted their retries (they are tried again later).",
            labels=["receiver"],
        )
        retries = CounterMetricFamily(
            "cbmon_alert_notification_retries",
            "Retried notification attempts.",
            labels=["receiver"],
        )
        pending = GaugeMetricFamily(
            "cbmon_alert_notifications_pending",
            "Notifications waiting to be delivered.",
            labels=["receiver"],
        )
        for receiver in evaluator.notifier.receivers:
            counters = receiver.counters
            delivered.add_metric([receiver.name], counters.delivered)
            failed.add_metric([receiver.name], counters.failed)
            retries.add_metric([receiver.name], counters.retries)
            pending.add_metric([receiver.name], receiver.pending())
        yield delivered
        yield failed
        yield retries
        yield pending
