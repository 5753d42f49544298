"""The mechanism's metric families (docs/metrics.md#the-mechanism), from the last probe held in
memory: a scrape never touches the database. A source absent or unreadable exports nothing of
its own; ``cbmon_mechanism_source_state`` says which."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cbmon.domain import Mechanism
from cbmon.ingest.mechanism import SOURCES, MechanismProbe
from cbmon.slo.mechanism import ROUTE_PROBLEM_NAMES, failing_jobs

STATES = ("ok", "absent", "unreadable")


class MechanismCollector(Collector):
    def __init__(self, probe: MechanismProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterator[Metric]:
        state = self._probe.state
        if state is None:
            return
        yield from families(state)


def families(state: Mechanism) -> Iterator[Metric]:
    sources = GaugeMetricFamily(
        "cbmon_mechanism_source_state",
        "1 for the state each source of the callback mechanism was found in at the last probe.",
        labels=["source", "state"],
    )
    for name in SOURCES:
        source = state.source(name)
        if source is None:
            continue
        for word in STATES:
            sources.add_metric([name, word], float(source.state == word))
    yield sources
    if state.notify_usage is not None:
        yield GaugeMetricFamily(
            "cbmon_notify_queue_usage_ratio",
            "How full the server's NOTIFY queue is, 0..1 (pg_notification_queue_usage()).",
            value=state.notify_usage,
        )
    if state.listeners:
        up = GaugeMetricFamily(
            "cbmon_listener_up",
            "1 while the session configured for the channel is connected and listening.",
            labels=["channel"],
        )
        for channel, listening in sorted(state.listeners.items()):
            up.add_metric([channel], float(listening))
        yield up
    if state.jobs is not None:
        yield from _jobs(state)
    if state.buckets is not None:
        tokens = GaugeMetricFamily(
            "cbmon_rate_limit_tokens",
            "Tokens in each bucket of callback_limits, refilled to the probe's time.",
            labels=["bucket"],
        )
        dropped = CounterMetricFamily(
            "cbmon_rate_limited",
            "Callbacks the rate limiter dropped, per bucket (callback_limits.dropped).",
            labels=["bucket"],
        )
        for bucket in state.buckets:
            tokens.add_metric([bucket.name], bucket.tokens)
            dropped.add_metric([bucket.name], float(bucket.dropped))
        yield tokens
        yield dropped
    if state.route_problems is not None:
        problems = GaugeMetricFamily(
            "cbmon_route_problems",
            "Event types with each routing problem in callback_router.",
            labels=["problem"],
        )
        for problem in ROUTE_PROBLEM_NAMES:
            problems.add_metric([problem], float(len(state.route_problems.get(problem, ()))))
        yield problems
    if state.handlers is not None:
        calls = CounterMetricFamily(
            "cbmon_handler_calls",
            "Calls of the mechanism's functions (pg_stat_user_functions; track_functions).",
            labels=["function"],
        )
        seconds = CounterMetricFamily(
            "cbmon_handler_seconds",
            "Time spent in the mechanism's functions, in seconds (pg_stat_user_functions).",
            labels=["function"],
        )
        for handler in state.handlers:
            calls.add_metric([handler.function], float(handler.calls))
            seconds.add_metric([handler.function], handler.seconds)
        yield calls
        yield seconds


def _jobs(state: Mechanism) -> Iterator[Metric]:
    """The label is job_name: Prometheus keeps ``job`` for the scrape job's name."""
    assert state.jobs is not None
    runs = CounterMetricFamily(
        "cbmon_scheduler_job_runs",
        "Finished runs of each scheduler job by result (cron.job_run_details).",
        labels=["job_name", "result"],
    )
    last = GaugeMetricFamily(
        "cbmon_scheduler_job_last_success_timestamp_seconds",
        "When each scheduler job last succeeded, in unix seconds.",
        labels=["job_name"],
    )
    enabled = GaugeMetricFamily(
        "cbmon_scheduler_job_enabled",
        "1 while the scheduler job is enabled (cron.job.active; PG_JOB's job_status not d).",
        labels=["job_name"],
    )
    interval = GaugeMetricFamily(
        "cbmon_scheduler_job_interval_seconds",
        "Seconds between the scheduler job's runs, from its schedule (when it says).",
        labels=["job_name"],
    )
    for job in state.jobs:
        if job.interval is not None:
            interval.add_metric([job.name], job.interval)
        runs.add_metric([job.name, "succeeded"], float(job.succeeded))
        runs.add_metric([job.name, "failed"], float(job.failed))
        if job.last_success is not None:
            last.add_metric([job.name], job.last_success)
        enabled.add_metric([job.name], float(job.enabled))
    yield runs
    yield last
    yield enabled
    yield interval


def summary(state: Mechanism | None, missed_runs: int) -> dict[str, Any] | None:
    """The last probe as ``/api/v1/status`` shows it under ``mechanism`` (and the status page
    reads it): every source's state, and what each indicator names."""
    if state is None:
        return None
    failing = failing_jobs(state.jobs or (), state.at, missed_runs)
    return {
        "probed_at": _iso(state.at),
        "sources": [
            {"source": s.name, "state": s.state, "detail": s.detail or None} for s in state.sources
        ],
        "notify_queue_usage": state.notify_usage,
        "listeners": dict(state.listeners),
        "jobs": None
        if state.jobs is None
        else [
            {
                "job": job.name,
                "enabled": job.enabled,
                "interval_seconds": job.interval,
                "succeeded": job.succeeded,
                "failed": job.failed,
                "last_success": None if job.last_success is None else _iso(job.last_success),
                "failing": failing.get(job.name),
            }
            for job in state.jobs
        ],
        "buckets": None
        if state.buckets is None
        else [
            {"bucket": b.name, "tokens": b.tokens, "capacity": b.capacity, "dropped": b.dropped}
            for b in state.buckets
        ],
        "dropped_in_window": state.dropped_in_window,
        "route_problems": None
        if state.route_problems is None
        else {problem: list(names) for problem, names in state.route_problems.items()},
        "track_functions": state.track_functions,
    }


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")
