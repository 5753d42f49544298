"""The one table of what cbmon judges: each indicator's name, unit, direction, default
thresholds, words and the series that feeds it, defined once.

The judge, the alert wording, the status page, the JSON API, ``cbmon check``, ``cbmon report``,
the number formats and the Prometheus rule generator all read this table; none of them decides
again which limit belongs to which indicator or which way is bad. The configuration is turned
into a :class:`Baseline` (plain values) once, at the edge (:func:`cbmon.config.baseline`).

Pure: imports nothing of cbmon but :mod:`cbmon.domain`; no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

OVERALL = ""  # the event_type label value of indicators over every event type

Unit = Literal["ratio", "seconds", "items", "age"]
Direction = Literal["higher", "lower"]  # which way is better


@dataclasses.dataclass(frozen=True)
class Objective:
    """One indicator: what it measures and how it is judged and said.

    ``better`` is None for an indicator shown but not judged. The wording templates take
    ``{value}``, ``{normal}``, ``{alert}`` (formatted in the indicator's unit), ``{scope}``
    ("all event types" or "event type pay"), ``{span}`` (the window), ``{events}`` and
    ``{slow}`` (the design limit of one callback, thresholds.slow_callback).
    """

    slo: str  # the ``slo`` label of every series, alert and API field
    label: str  # how a person calls it, in tables and pages
    unit: Unit
    better: Direction | None
    normal: float | None = None  # default thresholds, in the unit
    alert: float | None = None
    alertname: str | None = None
    samples: str = "callback attempts"  # what the value rests on
    per_event_type: bool = True
    source: str = "the attempt log"
    measured: str = ""  # "Callback success rate {value} for {scope}"
    explained: str = ""  # the alert's description, before the advice
    advice: str = ""  # what on-call does first, with commands that exist
    series: str | None = None  # the Prometheus recorded series judged, {w} for the window
    # The recorded series counting the samples the value rests on over {w}: the rules judge
    # only where it reaches min_events, as the judge does. None: judged whatever the count.
    events: str | None = None
    instant: bool = False  # fires at once, without slo.for (probed at a slow interval)

    @property
    def judged(self) -> bool:
        return self.better is not None


SUCCESS_RATE = Objective(
    slo="success_rate",
    label="success rate",
    unit="ratio",
    better="higher",
    normal=0.995,
    alert=0.99,
    alertname="CallbackSuccessRateLow",
    measured="Callback success rate {value} for {scope}",
    explained=(
        "Over the last {span}, {events} callback attempts for {scope} succeeded {value} of the "
        "time. Healthy is above {normal}; below {alert} is critical."
    ),
    advice=(
        "Look at the failing receivers and the newest rows of the callback error table "
        "(cbmon report --since 1h)."
    ),
    series="cbmon:callback_success_ratio:rate{w}",
    events="cbmon:callback_attempts:increase{w}",
)
AVG_LATENCY = Objective(
    slo="avg_latency",
    label="avg latency",
    unit="seconds",
    better="lower",
    normal=0.150,
    alert=0.500,
    alertname="CallbackLatencyHigh",
    samples="attempts with a duration",
    measured="Callback average latency {value} for {scope}",
    explained=(
        "Over the last {span}, callbacks for {scope} took {value} on average ({events} "
        "attempts). Healthy is below {normal}; above {alert} is critical."
    ),
    advice=(
        "Check the receivers' response times and the worker's timeouts; slow receivers also "
        "grow the queue."
    ),
    series="cbmon:callback_duration_seconds:mean{w}",
    events="cbmon:callback_duration_seconds_count:increase{w}",
)
P95_LATENCY = Objective(
    slo="p95_latency",
    label="p95 latency",
    unit="seconds",
    better=None,
    samples="attempts with a duration",
    series="cbmon:callback_duration_seconds:p95_{w}",
    events="cbmon:callback_duration_seconds_count:increase{w}",
)
SLOW_SHARE = Objective(
    slo="slow_share",
    label="slow share",
    unit="ratio",
    better="lower",
    normal=0.05,
    alert=0.20,
    alertname="CallbackSlowShareHigh",
    samples="attempts with a duration",
    measured="Callback attempts slower than {slow}: {value} for {scope}",
    explained=(
        "Over the last {span}, {value} of {events} callback attempts for {scope} took longer "
        "than a single callback should (the design limit, thresholds.slow_callback). Healthy "
        "is below {normal}; above {alert} is critical."
    ),
    advice=(
        "Look at which receivers are slow (cbmon report --since 1h) and at the p95 latency; a "
        "slow receiver holds a worker and grows the queue."
    ),
    series="cbmon:callback_slow_ratio:rate{w}",
    events="cbmon:callback_duration_seconds_count:increase{w}",
)
CALLBACK_SUCCESS_RATE = Objective(
    slo="callback_success_rate",
    label="delivered",
    unit="ratio",
    better="higher",
    normal=0.995,
    alert=0.99,
    alertname="CallbackDeliveryRateLow",
    samples="finished callbacks",
    source="the attempt log's outcomes",
    measured="Callbacks delivered {value} for {scope}",
    explained=(
        "Over the last {span}, {events} callbacks for {scope} finished and {value} of them "
        "were delivered (retries included); the rest ran out of retries. Healthy is above "
        "{normal}; below {alert} is critical."
    ),
    advice=(
        "Look at the dead letters (the queue rows whose outcome is dead), the receivers that "
        "fail and the newest rows of the error table (cbmon report --since 1h)."
    ),
    series="cbmon:callback_delivery_ratio:rate{w}",
    events="cbmon:callbacks_finished:increase{w}",
)
DEAD_LETTERS = Objective(
    slo="dead_letters",
    label="dead letters",
    unit="items",
    better="lower",
    normal=1,
    alert=None,
    alertname="CallbackDeadLetters",
    samples="finished callbacks",
    source="the attempt log's outcomes",
    measured="{value} callbacks ran out of retries for {scope}",
    explained=(
        "In the last {span}, {value} callbacks for {scope} failed their last allowed attempt "
        "and will not be tried again: their receivers never got them."
    ),
    advice=(
        "Find them in the queue (outcome dead) and the error table, fix the receiver, and "
        "queue them again; cbmon report --since 1h shows which event types lose callbacks."
    ),
    series="cbmon:callbacks_dead:increase{w}",
)
END_TO_END_P95 = Objective(
    slo="end_to_end_p95",
    label="end to end p95",
    unit="seconds",
    better="lower",
    normal=1.0,
    alert=5.0,
    alertname="CallbackEndToEndSlow",
    samples="delivered callbacks",
    source="the attempt log joined to the queue",
    measured="Callbacks took {value} from queued to delivered (p95) for {scope}",
    explained=(
        "Over the last {span}, 95 % of the {events} callbacks delivered for {scope} took at "
        "most {value} from being queued to being delivered, retries included. Healthy is "
        "below {normal}; above {alert} is critical."
    ),
    advice=(
        "Check the queue (cbmon_queue_items by state: due, waiting for a retry, in flight, "
        "stuck), the workers, and the receivers that need retries."
    ),
    series="cbmon:callback_end_to_end_seconds:p95_{w}",
    events="cbmon:callback_end_to_end_seconds_count:increase{w}",
)
BACKLOG = Objective(
    slo="backlog",
    label="backlog",
    unit="items",
    better="lower",
    normal=1000,
    alert=5000,
    alertname="CallbackBacklogHigh",
    samples="queue items",
    per_event_type=False,
    source="the queue",
    measured="Callback queue backlog {value} items",
    explained=(
        "{value} callbacks are waiting in the queue. Healthy is below {normal}; above {alert} "
        "is critical."
    ),
    advice=(
        "Check that the workers are running and keeping up, and "
        "cbmon_queue_oldest_age_seconds for how long the oldest has waited."
    ),
    series="cbmon:queue_backlog:max",
)
TRAFFIC = Objective(
    slo="last_attempt_age",
    label="last attempt",
    unit="age",
    better="lower",
    normal=0.0,  # 0 switches the rule off (slo.traffic_absent_after)
    alertname="CallbackTrafficAbsent",
    samples="attempts",
    per_event_type=False,
    measured="No callback attempt logged for {value}",
    explained="No callback attempt has been logged for {value} (the rule fires after {normal}).",
    advice=(
        "Check that callbacks are still being made: the triggers or the application that "
        "enqueue them, the queue (cbmon_queue_backlog) and the workers that deliver them."
    ),
)

# The mechanism's own health inside the database, probed every mechanism.interval
# (cbmon/ingest/mechanism.py); each judged overall, what it names listed beside it.
NOTIFY_QUEUE = Objective(
    slo="notify_queue_usage",
    label="NOTIFY queue",
    unit="ratio",
    better="lower",
    per_event_type=False,
    instant=True,
    normal=0.5,
    alert=0.9,
    alertname="CallbackNotifyQueueFilling",
    samples="probes",
    source="pg_notification_queue_usage()",
    measured="The NOTIFY queue is {value} full",
    explained=(
        "The server's NOTIFY queue is {value} full. When it is full, every transaction that "
        "notifies fails at commit. Healthy is below {normal}; above {alert} is critical."
    ),
    advice=(
        "A listening session has stopped reading: find it (pg_stat_activity, state idle in "
        "transaction, or cbmon_listener_up) and end its transaction or the session."
    ),
)
SCHEDULER_JOBS = Objective(
    slo="scheduler_jobs_failing",
    label="scheduler jobs failing",
    unit="items",
    better="lower",
    per_event_type=False,
    instant=True,
    normal=1,
    alert=0,
    alertname="CallbackSchedulerJobFailing",
    samples="scheduler jobs",
    source="cron.job and cron.job_run_details (PG_JOB on openGauss)",
    measured="Scheduler jobs disabled or without a success: {value}",
    explained=(
        "{value} scheduled jobs of the callback mechanism are disabled or have not succeeded "
        "for several of their intervals (mechanism.missed_runs): the queue is not drained."
    ),
    advice=(
        "The status page and /api/v1/status name the jobs; read their last runs "
        "(cron.job_run_details, or PG_JOB's failure_count on openGauss) and enable them again."
    ),
)
RATE_LIMITED = Objective(
    slo="rate_limited",
    label="rate-limited drops",
    unit="items",
    better="lower",
    per_event_type=False,
    instant=True,
    normal=1,
    alertname="CallbackRateLimited",
    samples="buckets",
    source="callback_limits",
    measured="Callbacks dropped by the rate limiter: {value}",
    explained=(
        "In the last {span}, the token bucket dropped {value} callbacks ('Rate limit "
        "exceeded'). They were never queued, so no success rate counts them."
    ),
    advice=(
        "cbmon_rate_limit_tokens and cbmon_rate_limited_total name the buckets; raise their "
        "capacity or refill rate in callback_limits, or find the burst."
    ),
)
ROUTE_PROBLEMS = Objective(
    slo="route_problems",
    label="route problems",
    unit="items",
    better="lower",
    per_event_type=False,
    instant=True,
    normal=1,
    alertname="CallbackRouteProblem",
    samples="routes",
    source="callback_router",
    measured="Event types with a routing problem: {value}",
    explained=(
        "{value} event types have no route, a disabled route, a handler function that does "
        "not exist or more retries than the policy allows: their callbacks are lost or "
        "retried too often."
    ),
    advice="The status page and /api/v1/status name them by problem; fix callback_router.",
)
MECHANISM: tuple[Objective, ...] = (NOTIFY_QUEUE, SCHEDULER_JOBS, RATE_LIMITED, ROUTE_PROBLEMS)

OBJECTIVES: tuple[Objective, ...] = (
    SUCCESS_RATE,
    AVG_LATENCY,
    P95_LATENCY,
    SLOW_SHARE,
    BACKLOG,
    TRAFFIC,
    CALLBACK_SUCCESS_RATE,
    DEAD_LETTERS,
    END_TO_END_P95,
    *MECHANISM,
)
# Judged from the callback lifecycle columns, when the tables have them.
LIFECYCLE: tuple[Objective, ...] = (CALLBACK_SUCCESS_RATE, DEAD_LETTERS, END_TO_END_P95)
BY_SLO: Mapping[str, Objective] = {objective.slo: objective for objective in OBJECTIVES}
JUDGED: tuple[Objective, ...] = tuple(o for o in OBJECTIVES if o.judged)
ALERT_NAMES: Mapping[str, str] = {o.slo: o.alertname for o in JUDGED if o.alertname}


@dataclasses.dataclass(frozen=True)
class Limits:
    """An indicator's thresholds, in its unit: ok beyond ``normal``, critical beyond
    ``alert``, a warning between them and on them. ``alert`` None: warnings only."""

    normal: float
    alert: float | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """An objective over a period: ``target`` of the events good (0..1) over ``period``
    seconds. The error budget is ``1 - target`` of them."""

    target: float
    period: float
    # For latency: an attempt is good when its duration is at or below this (seconds).
    threshold: float | None = None

    @property
    def budget(self) -> float:
        return 1.0 - self.target


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What the judge and the wording need of the configuration, as plain values."""

    limits: Mapping[str, Limits]
    window: float = 300.0
    for_: float = 60.0
    min_events: int = 20
    slow_callback: float = 0.200
    # Objectives over a period, by slo, and per event type where one differs.
    targets: Mapping[str, Target] = dataclasses.field(default_factory=dict)
    event_targets: Mapping[str, Mapping[str, Target]] = dataclasses.field(default_factory=dict)

    def limit(self, slo: str) -> Limits | None:
        return self.limits.get(slo)

    def target(self, slo: str, event_type: str = OVERALL) -> Target | None:
        """The objective of ``slo`` for ``event_type``: its own, else the default."""
        own = self.event_targets.get(event_type, {}).get(slo)
        return own if own is not None else self.targets.get(slo)

    @property
    def traffic_absent_after(self) -> float:
        limits = self.limits.get(TRAFFIC.slo)
        return 0.0 if limits is None else limits.normal


def mechanism_limits(notify_normal: float, notify_alert: float) -> dict[str, Limits]:
    """The mechanism's limits: the NOTIFY queue's as configured; a failing job is critical
    (ok below 1, critical above 0), a drop or a route problem a warning."""
    limits = {o.slo: Limits(o.normal, o.alert) for o in MECHANISM if o.normal is not None}
    limits[NOTIFY_QUEUE.slo] = Limits(notify_normal, notify_alert)
    return limits


def default_limits() -> dict[str, Limits]:
    return {o.slo: Limits(o.normal, o.alert) for o in JUDGED if o.normal is not None}


DEFAULT = Baseline(limits=default_limits(), targets={SUCCESS_RATE.slo: Target(0.995, 30 * 86400.0)})
