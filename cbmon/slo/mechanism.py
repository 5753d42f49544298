"""Judging the callback mechanism's probe: the NOTIFY queue, the scheduler's jobs, the rate
limiter's drops and the routing table, each one overall indicator of the objectives table.

Pure: plain values in, indicators out.
"""

from __future__ import annotations

from collections.abc import Iterable

from cbmon.domain import Job, Mechanism
from cbmon.slo.judge import Indicator, judge_slo
from cbmon.slo.objectives import (
    NOTIFY_QUEUE,
    OVERALL,
    RATE_LIMITED,
    ROUTE_PROBLEMS,
    SCHEDULER_JOBS,
    Baseline,
)

ROUTE_PROBLEM_NAMES = ("no_route", "disabled", "missing_handler", "retries_above_policy")


def job_failing(job: Job, now: float, missed_runs: int) -> str | None:
    """Why ``job`` is failing at ``now``, or None: disabled, or no success for ``missed_runs``
    of its intervals."""
    if not job.enabled:
        return "disabled"
    if job.interval is None or job.since is None:
        return None
    if now - job.since >= missed_runs * job.interval:
        if job.last_success is None:
            return f"no success in {missed_runs} of its intervals"
        return f"no success in {missed_runs} of its intervals since its last success"
    return None


def failing_jobs(jobs: Iterable[Job], now: float, missed_runs: int) -> dict[str, str]:
    found = {}
    for job in jobs:
        reason = job_failing(job, now, missed_runs)
        if reason is not None:
            found[job.name] = reason
    return found


def route_count(problems: dict[str, tuple[str, ...]] | None) -> int | None:
    """Event types with at least one problem."""
    if problems is None:
        return None
    return len({name for names in problems.values() for name in names})


def indicators(state: Mechanism, baseline: Baseline, missed_runs: int) -> list[Indicator]:
    """One indicator per source that was found; UNKNOWN where it could not be read."""
    found: list[Indicator] = []

    def add(slo: str, value: float | None, events: int) -> None:
        found.append(Indicator(slo, OVERALL, value, judge_slo(slo, value, baseline), events))

    def present(name: str) -> bool:
        source = state.source(name)
        return source is not None and source.state != "absent"

    if present("notify_queue"):
        add(NOTIFY_QUEUE.slo, state.notify_usage, 1)
    if present("scheduler"):
        jobs = state.jobs
        failing = None if jobs is None else len(failing_jobs(jobs, state.at, missed_runs))
        add(SCHEDULER_JOBS.slo, None if failing is None else float(failing), len(jobs or ()))
    if present("rate_limits"):
        dropped = state.dropped_in_window
        add(RATE_LIMITED.slo, None if dropped is None else float(dropped), len(state.buckets or ()))
    if present("router"):
        problems = None if state.route_problems is None else dict(state.route_problems)
        count = route_count(problems)
        add(ROUTE_PROBLEMS.slo, None if count is None else float(count), count or 0)
    return found
