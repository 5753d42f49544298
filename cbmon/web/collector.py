"""The Prometheus collectors: every metric family, built from what cbmon holds in memory.

A scrape copies the state under a short lock and formats it; it never queries the database.
The poll-fed families are rendered once per poll (see :mod:`cbmon.web.exposition`);
those that move between polls are read at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cbmon import __version__
from cbmon.domain import (
    BUCKETS,
    FAILURE_CLASSES,
    QUEUE_STATES,
    TRIES,
    WAIT_BUCKETS,
    Callbacks,
    Figures,
)
from cbmon.ingest.store import POLL_BUCKETS, Store, View
from cbmon.sidecar.evaluator import Evaluator
from cbmon.sidecar.reload import ReloadStatus
from cbmon.slo.judge import ALERT_NAMES
from cbmon.slo.objectives import JUDGED

if TYPE_CHECKING:
    from cbmon.delivery.alertmanager import AlertmanagerSender
    from cbmon.delivery.dispatcher import Dispatcher


def _bucket_pairs(
    bounds: Iterable[float], counts: Iterable[int], total: int
) -> list[tuple[str, float]]:
    pairs = [(_le(bound), float(count)) for bound, count in zip(bounds, counts, strict=True)]
    pairs.append(("+Inf", float(total)))
    return pairs


def _le(bound: float) -> str:
    return repr(float(bound))


def _checked(ok: bool | None) -> int:
    return -1 if ok is None else int(ok)


class CallbackCollector(Collector):
    """Callbacks, errors, the queue and cbmon's own health, from :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        view = self._store.view()
        yield from self._callbacks(view)
        yield from self._queue(view)
        yield from self._lifecycle(view)
        yield from self._health(view)

    def _callbacks(self, view: View) -> Iterator[Metric]:
        def counter(name: str, doc: str, value: Callable[[Figures], float]) -> Metric:
            family = CounterMetricFamily(name, doc, labels=["event_type"])
            for label, totals in sorted(view.figures.items()):
                family.add_metric([label], value(totals))
            return family

        yield counter(
            "cbmon_callback_attempts",
            "Callback delivery attempts logged since cbmon started.",
            lambda t: t.attempts,
        )
        yield counter(
            "cbmon_callback_failures",
            "Callback delivery attempts whose status is not a success status.",
            lambda t: t.failures,
        )
        yield counter(
            "cbmon_callback_invalid_durations",
            "Attempts whose execution_time is negative, NaN, infinite or absurd; "
            "left out of the duration histogram.",
            lambda t: t.invalid,
        )
        yield counter(
            "cbmon_callback_errors",
            "Rows added to the callback error table since cbmon started.",
            lambda t: t.errors,
        )
        histogram = HistogramMetricFamily(
            "cbmon_callback_duration_seconds",
            "Execution time of callback attempts that have a valid one.",
            labels=["event_type"],
        )
        for label, totals in sorted(view.figures.items()):
            histogram.add_metric(
                [label],
                buckets=_bucket_pairs(BUCKETS, totals.buckets, totals.observed),
                sum_value=totals.sum_seconds,
            )
        yield histogram

    @staticmethod
    def _queue(view: View) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "cbmon_queue_backlog",
            "Queue rows waiting to be processed (processed_at IS NULL) at the last poll.",
            value=view.backlog,
        )
        if view.queue_states is not None:
            items = GaugeMetricFamily(
                "cbmon_queue_items",
                "Queue rows by state at the last poll: due, retry_scheduled (waiting for a "
                "retry), in_flight (leased), stuck (leased past the lease), dead (out of retries).",
                labels=["state"],
            )
            for state in QUEUE_STATES:
                if state in view.queue_states:
                    items.add_metric([state], view.queue_states[state])
            yield items

    @staticmethod
    def _lifecycle(view: View) -> Iterator[Metric]:
        """Callbacks, not only attempts; present where the tables have the columns."""
        found = view.features
        if found is None:
            return
        enabled = GaugeMetricFamily(
            "cbmon_lifecycle_enabled",
            "1 where the tables let cbmon read that part of the callback lifecycle (outcomes, "
            "queue_times, targets, queue_states); the log says why one is 0.",
            labels=["feature"],
        )
        for name, on in found.names.items():
            enabled.add_metric([name], int(on))
        yield enabled
        if found.outcomes:
            yield from _outcomes(view)
        if found.targets:
            yield from _targets(view)

    @staticmethod
    def _health(view: View) -> Iterator[Metric]:
        info = GaugeMetricFamily("cbmon_build_info", "cbmon's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        database = GaugeMetricFamily(
            "cbmon_database_info",
            "The server cbmon polls: flavor (postgresql, opengauss, gaussdb) and version; "
            "absent until the first successful poll.",
            labels=["flavor", "version"],
        )
        if view.database is not None:
            database.add_metric([view.database.flavor, view.database.version], 1)
        yield database
        yield GaugeMetricFamily(
            "cbmon_database_up",
            "1 when the database answered the last poll (even with an error), 0 when it did "
            "not (no connection, or no answer in time).",
            value=1 if view.database_up else 0,
        )
        yield CounterMetricFamily("cbmon_polls", "Polls attempted.", value=view.polls_total)
        errors = CounterMetricFamily(
            "cbmon_poll_errors",
            "Polls that failed, by reason: connection, timeout, permission, schema, data, query.",
            labels=["reason"],
        )
        for reason, count in sorted(view.poll_errors.items()):
            errors.add_metric([reason], count)
        yield errors
        poll = HistogramMetricFamily(
            "cbmon_poll_duration_seconds", "Wall time of each successful poll."
        )
        poll.add_metric(
            [],
            buckets=_bucket_pairs(POLL_BUCKETS, view.poll_buckets, view.poll_count),
            sum_value=view.poll_sum,
        )
        yield poll
        yield GaugeMetricFamily(
            "cbmon_last_poll_timestamp_seconds",
            "Unix time of the last successful poll; 0 before the first.",
            value=view.last_poll_timestamp,
        )
        lag = GaugeMetricFamily(
            "cbmon_reader_lag_rows",
            "Ids between the newest row read and the newest row visible.",
            labels=["table"],
        )
        gaps = GaugeMetricFamily(
            "cbmon_reader_open_gaps",
            "Ids below the newest row read whose transactions had not committed, still watched.",
            labels=["table"],
        )
        for table in sorted(view.lag_rows):
            lag.add_metric([table], view.lag_rows[table])
            gaps.add_metric([table], view.open_gaps.get(table, 0))
        yield lag
        yield gaps
        assumption = GaugeMetricFamily(
            "cbmon_reader_assumption_ok",
            "1 when what exact counting assumes of a table holds: its ids come from a "
            "sequence (ids_from_sequence) that has CACHE 1 (sequence_cache_1), checked at "
            "start; gaps are fenced by the primary's transactions (standby_fence: 0 on a hot "
            "standby without database.primary_dsn); -1 when it could not be checked.",
            labels=["table", "check"],
        )
        for item in view.assumptions:
            assumption.add_metric([item.table, item.check], _checked(item.ok))
        if view.topology is not None:
            # On a standby, a gap may be given up only when the primary says its writer ended.
            fenced = view.topology.fence != "none"
            for table in sorted(view.lag_rows):
                assumption.add_metric([table, "standby_fence"], int(fenced))
        yield assumption
        yield GaugeMetricFamily(
            "cbmon_database_in_recovery",
            "1 when the server cbmon reads is a hot standby (in recovery), 0 on a primary.",
            value=int(view.topology is not None and view.topology.standby),
        )
        resets = CounterMetricFamily(
            "cbmon_reader_resets",
            "Times a table's history was replaced under the reader (reason: truncate, "
            "recreate, ids_fell, failover, history) and counting went on from where the new "
            "history begins; what was counted before stays counted.",
            labels=["table", "reason"],
        )
        for (table, reason), count in sorted(view.resets.items()):
            resets.add_metric([table, reason], count)
        yield resets
        expired = CounterMetricFamily(
            "cbmon_reader_gaps_expired",
            "Ids given up unseen after reader.standby_gap_hold, on a hot standby without "
            "database.primary_dsn to tell when their transactions ended.",
            labels=["table"],
        )
        for table in sorted(view.lag_rows):
            expired.add_metric([table], view.expired_gaps.get(table, 0))
        yield expired
        ahead = GaugeMetricFamily(
            "cbmon_rows_dated_ahead",
            "Rows dated ahead of the database's clock by more than slo.clock_skew when the SLO "
            "window was filled at start; left out of it.",
            labels=["table"],
        )
        for table, count in sorted(view.ahead_rows.items()):
            ahead.add_metric([table], count)
        yield ahead
        yield GaugeMetricFamily(
            "cbmon_event_types", "Distinct event_type labels in use.", value=view.event_types
        )
        yield CounterMetricFamily(
            "cbmon_event_types_folded",
            'Distinct event types folded into event_type="other" beyond max_event_types.',
            value=view.folded_total,
        )
        yield CounterMetricFamily(
            "cbmon_event_types_truncated",
            "Distinct event types longer than max_event_type_length, shortened to a label "
            "ending in ~ and 8 hex digits of a hash of the whole name.",
            value=view.truncated_total,
        )


def _outcomes(view: View) -> Iterator[Metric]:
    figures = sorted(view.figures.items())

    def counter(name: str, doc: str, value: Callable[[Callbacks], float]) -> Metric:
        family = CounterMetricFamily(name, doc, labels=["event_type"])
        for label, totals in figures:
            family.add_metric([label], value(totals.callbacks))
        return family

    yield counter(
        "cbmon_callbacks_delivered",
        "Callbacks delivered: their first successful attempt, retries included.",
        lambda c: c.delivered,
    )
    yield counter(
        "cbmon_callbacks_dead",
        "Callbacks whose last allowed attempt (1 + max_retries) failed: dead letters.",
        lambda c: c.dead,
    )
    yield counter(
        "cbmon_callback_duplicate_deliveries",
        "Successful attempts of a callback already delivered (a lease ran out, a worker "
        "restarted).",
        lambda c: c.duplicates,
    )
    tries = HistogramMetricFamily(
        "cbmon_callback_tries",
        "Attempts each finished (delivered or dead) callback used.",
        labels=["event_type"],
    )
    waits = HistogramMetricFamily(
        "cbmon_callback_queue_wait_seconds",
        "Time from a callback being queued to its first attempt.",
        labels=["event_type"],
    )
    ends = HistogramMetricFamily(
        "cbmon_callback_end_to_end_seconds",
        "Time from a callback being queued to its delivery, retries included.",
        labels=["event_type"],
    )
    for label, totals in figures:
        c = totals.callbacks
        tries.add_metric(
            [label],
            buckets=[(_le(b), float(n)) for b, n in zip(TRIES, c.tries, strict=True)]
            + [("+Inf", float(c.finished))],
            sum_value=c.tries_sum,
        )
        waits.add_metric(
            [label], buckets=_bucket_pairs(WAIT_BUCKETS, c.waits, c.waited), sum_value=c.wait_sum
        )
        ends.add_metric(
            [label], buckets=_bucket_pairs(WAIT_BUCKETS, c.ends, c.ended), sum_value=c.end_sum
        )
    yield tries
    yield waits
    yield ends


def _targets(view: View) -> Iterator[Metric]:
    attempts = CounterMetricFamily(
        "cbmon_target_attempts",
        "Callback attempts per receiver (scheme://host:port).",
        labels=["target"],
    )
    failures = CounterMetricFamily(
        "cbmon_target_failures",
        "Failed attempts per receiver and class: 4xx, 5xx, timeout, other.",
        labels=["target", "class"],
    )
    for target, counted in sorted(view.targets.items()):
        attempts.add_metric([target], counted.attempts)
        for name, count in zip(FAILURE_CLASSES, counted.failures, strict=True):
            failures.add_metric([target, name], count)
    yield attempts
    yield failures


class QueueAgeCollector(Collector):
    """The oldest waiting item's age grows between polls, so it is computed at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "cbmon_queue_oldest_age_seconds",
            "Age of the oldest waiting queue row; 0 when nothing waits.",
            value=self._store.oldest_age_seconds(),
        )


class ReloadCollector(Collector):
    """The last configuration reload, as Prometheus exports its own: it moves between polls
    (a reload comes whenever it is asked for), so it is read at scrape time."""

    def __init__(self, reloads: ReloadStatus) -> None:
        self._reloads = reloads

    def collect(self) -> Iterator[Metric]:
        successful, at = self._reloads.read()
        yield GaugeMetricFamily(
            "cbmon_config_last_reload_successful",
            "Whether the last configuration reload succeeded (1, and at start) or failed (0: "
            "the running configuration was kept).",
            value=int(successful),
        )
        yield GaugeMetricFamily(
            "cbmon_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration reload, or of the start.",
            value=at,
        )


class EvaluatorCollector(Collector):
    """The judged indicators, the thresholds, the alerts firing and who sends them."""

    def __init__(self, evaluator: Evaluator, dispatcher: Dispatcher) -> None:
        self._evaluator = evaluator
        self._dispatcher = dispatcher

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
            if indicator.slo in ALERT_NAMES:
                state.add_metric(labels, int(indicator.state))
        yield value
        yield state
        yield self._thresholds()
        yield from self._budgets()
        firing = GaugeMetricFamily(
            "cbmon_alerts_firing",
            "Alerts cbmon considers firing.",
            labels=["alertname", "severity"],
        )
        for (alertname, severity), count in sorted(evaluator.tracker.firing_counts().items()):
            firing.add_metric([alertname, severity], count)
        yield firing
        yield self._firing_since()
        yield GaugeMetricFamily(
            "cbmon_leader",
            "1 on the replica that sends webhook notifications, 0 on the others.",
            value=1 if self._dispatcher.is_leader else 0,
        )
        leadership = self._dispatcher.leadership
        foreign = leadership is not None and leadership.foreign_holder is not None
        yield GaugeMetricFamily(
            "cbmon_leader_lock_foreign",
            "1 when the leader lock is held by a session that is not a cbmon replica of this "
            "cluster: no replica sends webhooks until it lets go.",
            value=1 if foreign else 0,
        )

    def _firing_since(self) -> Metric:
        """One series per firing alert, so a dashboard sees which event type fires and since
        when; cbmon_alerts_firing keeps its labels (a contract) and counts them."""
        family = GaugeMetricFamily(
            "cbmon_alert_firing_since_timestamp_seconds",
            "Unix time at which each alert firing now started firing (one series per alert).",
            labels=["alertname", "severity", "slo", "event_type"],
        )
        for active in self._evaluator.tracker.active():
            alert = active.alert
            labels = [alert.alertname, alert.severity, alert.slo, alert.event_type]
            family.add_metric(labels, alert.starts_at)
        return family

    def _budgets(self) -> Iterator[Metric]:
        objective = GaugeMetricFamily(
            "cbmon_slo_objective_ratio",
            "The objective over its period: the share of events that must be good.",
            labels=["slo", "event_type"],
        )
        period = GaugeMetricFamily(
            "cbmon_slo_period_seconds",
            "The period the objective and its error budget span.",
            labels=["slo", "event_type"],
        )
        remaining = GaugeMetricFamily(
            "cbmon_slo_error_budget_remaining_ratio",
            "Share of the error budget left over the objective's period: 1 untouched, 0 spent, "
            "below 0 overspent. Absent while the period holds no event.",
            labels=["slo", "event_type"],
        )
        burn = GaugeMetricFamily(
            "cbmon_slo_burn_rate",
            "How fast the error budget burns over the window: 1 spends it exactly over the "
            "period, 14.4 spends 2% of a 30-day budget an hour. Absent without events.",
            labels=["slo", "event_type", "window"],
        )
        for found in self._evaluator.budgets():
            labels = [found.slo, found.event_type]
            objective.add_metric(labels, found.target.target)
            period.add_metric(labels, found.target.period)
            if found.remaining is not None:
                remaining.add_metric(labels, found.remaining)
            for window, rate in found.burn.items():
                if rate is not None:
                    burn.add_metric([*labels, window], rate)
        yield objective
        yield period
        yield remaining
        yield burn

    def _thresholds(self) -> Metric:
        baseline = self._evaluator.baseline
        family = GaugeMetricFamily(
            "cbmon_slo_threshold",
            "Configured thresholds, in the units of cbmon_slo_value.",
            labels=["slo", "level"],
        )
        for objective in JUDGED:
            limits = baseline.limit(objective.slo)
            if limits is None or (objective.unit == "age" and limits.normal <= 0):
                continue  # the traffic rule switched off
            family.add_metric([objective.slo, "normal"], limits.normal)
            if limits.alert is not None:  # the traffic rule has no critical level
                family.add_metric([objective.slo, "alert"], limits.alert)
        return family


class DeliveryCollector(Collector):
    """Delivery counters move between polls, so they are read at scrape time."""

    def __init__(self, dispatcher: Dispatcher, alertmanagers: AlertmanagerSender) -> None:
        self._dispatcher = dispatcher
        self._alertmanagers = alertmanagers

    def collect(self) -> Iterator[Metric]:
        yield from self._webhooks()
        posts = CounterMetricFamily(
            "cbmon_alertmanager_posts",
            "Posts of the alert set an Alertmanager accepted.",
            labels=["alertmanager"],
        )
        failures = CounterMetricFamily(
            "cbmon_alertmanager_post_failures",
            "Posts to an Alertmanager that failed (tried again after a backoff).",
            labels=["alertmanager"],
        )
        for name, counters in sorted(self._alertmanagers.counters.items()):
            posts.add_metric([name], counters.posts)
            failures.add_metric([name], counters.failed)
        yield posts
        yield failures

    def _webhooks(self) -> Iterator[Metric]:
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
        for outbox in self._dispatcher.outboxes:
            counters = outbox.counters
            delivered.add_metric([outbox.name], counters.delivered)
            failed.add_metric([outbox.name], counters.failed)
            retries.add_metric([outbox.name], counters.retries)
            pending.add_metric([outbox.name], outbox.pending())
        yield delivered
        yield failed
        yield retries
        yield pending
