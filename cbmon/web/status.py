"""What ``cbmon serve`` knows right now, as one plain value: the indicators and their trends,
the alerts firing and the latest changes, the queue, the database and who sends.

The status page (:mod:`cbmon.web.status_page`) and the JSON API
(:mod:`cbmon.web.api`) are both rendered from a :class:`Snapshot`, so they never
disagree. Building one reads memory only, like a scrape.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

from cbmon import __version__
from cbmon.config import Config
from cbmon.domain import Level
from cbmon.ingest.store import View
from cbmon.slo.budget import Budget
from cbmon.slo.judge import ALERT_NAMES, Indicator
from cbmon.slo.objectives import Baseline
from cbmon.slo.tracker import Active, Transition
from cbmon.slo.trend import Trend


@dataclasses.dataclass(frozen=True)
class IndicatorStatus:
    slo: str
    event_type: str  # "" over every event type
    value: float | None
    state: Level
    events: int  # the samples the value rests on
    judged: bool  # the baseline has a rule for it
    normal: float | None  # the thresholds, in the value's unit; None when there is none
    alert: float | None
    trend: tuple[float | None, ...]  # the value over the window, oldest first

    @property
    def no_data(self) -> bool:
        """Judged, but with too few events in the window to say anything: no traffic."""
        return self.judged and self.state is Level.UNKNOWN


@dataclasses.dataclass(frozen=True)
class FiringStatus:
    alertname: str
    slo: str
    event_type: str
    severity: str
    since: float  # unix seconds
    value: float | None  # when it fired (or last changed severity)
    current: float | None  # now; None when its indicator has no value now
    threshold: str
    summary: str
    description: str
    no_data_since: float | None  # firing, but not judged since then


@dataclasses.dataclass(frozen=True)
class DatabaseStatus:
    up: bool
    last_poll: float  # unix seconds of the last successful poll; 0 before the first
    polls_total: int
    poll_errors_total: int
    lag_rows: int  # ids not read yet, both tables
    wake: str  # how polls are started: see cbmon.ingest.wake.MODES
    # Where the last poll read: "primary" or "standby" (None before the first), how open gaps
    # are fenced (cbmon.ingest.fence.MODES), and what pooler stands in between.
    server_role: str | None = None
    fence: str | None = None
    pooler: str | None = None
    resets: int = 0  # table histories replaced under the reader since start
    name: str = ""  # the database label: database.name, else host:port/dbname

    @property
    def exact(self) -> bool:
        """False where cbmon cannot be exact: a standby read without the primary's fence."""
        return self.fence != "none"


@dataclasses.dataclass(frozen=True)
class LeaderStatus:
    webhooks: int  # webhook receivers configured
    alertmanagers: int
    sends_webhooks: bool  # this replica does
    sender: str | None  # the replica that does when this one does not, if known
    foreign_holder: str | None  # a session that is not a cbmon replica holds the lock
    refusal: str | None = None  # why this replica cannot lead from where its lock DSN reaches


@dataclasses.dataclass(frozen=True)
class BudgetStatus:
    """One objective's error budget (see :mod:`cbmon.slo.budget`)."""

    slo: str  # success_rate or latency
    event_type: str
    target: float
    period: float  # seconds
    threshold: float | None  # latency: the duration a good attempt stays within
    events: int
    bad: int
    remaining: float | None  # share of the budget left; below 0 overspent; None without events
    burn: dict[str, float | None]
    exhausted_in: float | None  # seconds at the last hour's burn; 0 spent; None not burning


@dataclasses.dataclass(frozen=True)
class Snapshot:
    generated_at: float  # unix seconds
    cluster: str
    window: float
    min_events: int
    poll_interval: float
    trend_step: float  # seconds between two trend samples
    indicators: tuple[IndicatorStatus, ...]
    firing: tuple[FiringStatus, ...]
    transitions: tuple[Transition, ...]
    backlog: int
    oldest_age_seconds: float
    database: DatabaseStatus
    leader: LeaderStatus
    budgets: tuple[BudgetStatus, ...] = ()
    queue_states: dict[str, int] | None = None  # where the queue has lease and retry columns
    lifecycle_notes: tuple[str, ...] = ()  # what the tables do not let cbmon read, and why
    mechanism: dict[str, Any] | None = None  # the mechanism's last probe (cbmon.web.mechanism)
    version: str = __version__

    @property
    def state(self) -> Level:
        """The worst judged state; UNKNOWN when nothing could be judged."""
        judged = [i.state for i in self.indicators if i.judged and i.state is not Level.UNKNOWN]
        return max(judged, default=Level.UNKNOWN)

    def indicator(self, slo: str, event_type: str) -> IndicatorStatus | None:
        return self._index.get((slo, event_type))

    @functools.cached_property
    def _index(self) -> dict[tuple[str, str], IndicatorStatus]:
        return {(item.slo, item.event_type): item for item in self.indicators}

    def event_types(self) -> list[str]:
        """The scopes of the indicators, overall ("") first, in the evaluator's order."""
        return list(dict.fromkeys(i.event_type for i in self.indicators))


def thresholds(baseline: Baseline, slo: str) -> tuple[float | None, float | None]:
    """The (normal, alert) thresholds of an indicator, in its unit; None where it has none."""
    limits = baseline.limit(slo)
    return (None, None) if limits is None else (limits.normal, limits.alert)


def build(
    *,
    now: float,
    config: Config,
    view: View,
    indicators: Sequence[Indicator],
    trend: Trend,
    active: Sequence[Active],
    transitions: Sequence[Transition],
    leader: LeaderStatus,
    wake: str,
    budgets: Sequence[Budget] = (),
    mechanism: dict[str, Any] | None = None,
) -> Snapshot:
    """A snapshot from the parts' own copies of their state (each taken under its lock)."""
    baseline = config.baseline
    shown = tuple(
        IndicatorStatus(
            slo=i.slo,
            event_type=i.event_type,
            value=i.value,
            state=i.state,
            events=i.events,
            judged=i.slo in ALERT_NAMES,
            normal=thresholds(baseline, i.slo)[0],
            alert=thresholds(baseline, i.slo)[1],
            trend=trend.series(i.slo, i.event_type),
        )
        for i in indicators
    )
    values = {(i.slo, i.event_type): i.value for i in indicators}
    firing = tuple(
        FiringStatus(
            alertname=a.alert.alertname,
            slo=a.alert.slo,
            event_type=a.alert.event_type,
            severity=a.alert.severity,
            since=a.alert.starts_at,
            value=a.alert.value,
            current=values.get((a.alert.slo, a.alert.event_type)),
            threshold=a.alert.threshold,
            summary=a.alert.summary,
            description=a.alert.description,
            no_data_since=a.no_data_since,
        )
        for a in active
    )
    # Critical first, then the newest: what to look at first is at the top.
    firing = tuple(sorted(firing, key=lambda f: (f.severity != "critical", -f.since)))
    slo = config.file.slo
    return Snapshot(
        generated_at=now,
        cluster=config.file.alerting.cluster,
        window=slo.window,
        min_events=slo.min_events,
        poll_interval=config.file.poll_interval,
        trend_step=trend.step,
        indicators=shown,
        firing=firing,
        transitions=tuple(transitions),
        backlog=view.backlog,
        oldest_age_seconds=view.oldest_age_seconds,
        database=DatabaseStatus(
            up=view.database_up,
            last_poll=view.last_poll_timestamp,
            polls_total=view.polls_total,
            poll_errors_total=view.poll_errors_total,
            lag_rows=sum(view.lag_rows.values()),
            wake=wake,
            server_role=None
            if view.topology is None
            else ("standby" if view.topology.standby else "primary"),
            fence=None if view.topology is None else view.topology.fence,
            pooler=None if view.topology is None else view.topology.pooler,
            resets=sum(view.resets.values()),
            name=config.database,
        ),
        leader=leader,
        queue_states=view.queue_states,
        lifecycle_notes=() if view.features is None else view.features.notes,
        mechanism=mechanism,
        budgets=tuple(
            BudgetStatus(
                slo=b.slo,
                event_type=b.event_type,
                target=b.target.target,
                period=b.target.period,
                threshold=b.target.threshold,
                events=b.events,
                bad=b.bad,
                remaining=b.remaining,
                burn=dict(b.burn),
                exhausted_in=b.exhausted_in("1h"),
            )
            for b in budgets
        ),
    )
