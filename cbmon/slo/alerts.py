"""Deciding when an alert fires, changes or ends, from the judged indicators, and what it says.

Pure logic on plain values: no I/O, no clocks (times are passed in), no metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cbmon import present
from cbmon.config import Thresholds
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo.judge import ALERT_NAMES, OVERALL, Indicator


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert as a receiver sees it (Alertmanager's alert object, before JSON)."""

    alertname: str
    slo: str
    event_type: str
    severity: str  # "warning" or "critical"
    status: str  # "firing" or "resolved"
    value: float | None
    starts_at: float
    ends_at: float | None  # None while firing
    summary: str
    description: str
    threshold: str

    @property
    def labels(self) -> dict[str, str]:
        labels = {"alertname": self.alertname, "severity": self.severity, "slo": self.slo}
        if self.event_type != OVERALL:
            labels["event_type"] = self.event_type
        return labels


@dataclasses.dataclass(frozen=True)
class Notification:
    """What one webhook call carries: the alerts of one indicator that changed."""

    group: dict[str, str]  # labels the alerts share: alertname, slo, event_type
    alerts: tuple[Alert, ...]
    repeat: bool = False

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


@dataclasses.dataclass
class _Track:
    since_warning: float | None = None
    since_critical: float | None = None
    firing: Level | None = None
    started_at: float = 0.0
    last_sent: float = 0.0
    last: Indicator | None = None


class AlertTracker:
    """Holds each judged indicator's alert across evaluations.

    A level must hold for ``for_`` seconds before it fires (``0`` fires at once); returning
    to ok resolves at once; escalation and de-escalation resolve the old severity and fire
    the new one; an unchanged firing alert is sent again every ``repeat_interval``; an
    UNKNOWN evaluation (too few events) changes nothing.
    """

    def __init__(self, thresholds: Thresholds, for_: float, repeat_interval: float, window: float):
        self.thresholds = thresholds
        self.for_ = for_
        self.repeat_interval = repeat_interval
        self.window = window
        self._tracks: dict[tuple[str, str], _Track] = {}

    def update(self, indicators: Iterable[Indicator], now: float) -> list[Notification]:
        notes: list[Notification] = []
        for indicator in indicators:
            if indicator.slo not in ALERT_NAMES:
                continue
            track = self._tracks.setdefault((indicator.slo, indicator.event_type), _Track())
            note = self._step(track, indicator, now)
            if note is not None:
                notes.append(note)
        return notes

    def firing(self, now: float) -> list[Notification]:
        """Every alert firing now, as repeat notifications (sent when a replica takes over)."""
        notes = []
        for track in list(self._tracks.values()):
            if track.firing is not None and track.last is not None:
                alert = self._alert(track.last, track.firing, "firing", track.started_at, None)
                notes.append(Notification(_group(alert), (alert,), repeat=True))
                track.last_sent = now
        return notes

    def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        # list() copies in one step, so a scrape never sees the poll thread add a track.
        for (slo, _), track in list(self._tracks.items()):
            if track.firing is not None:
                key = (ALERT_NAMES[slo], track.firing.label)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _step(self, track: _Track, indicator: Indicator, now: float) -> Notification | None:
        state = indicator.state
        if state is Level.UNKNOWN:
            track.since_warning = track.since_critical = None
            target = track.firing
        else:
            track.last = indicator
            if state >= Level.WARNING:
                if track.since_warning is None:
                    track.since_warning = now
            else:
                track.since_warning = None
            if state >= Level.CRITICAL:
                if track.since_critical is None:
                    track.since_critical = now
            else:
                track.since_critical = None
            target = self._target(track, state, now)
        if target == track.firing:
            if target is not None and now - track.last_sent >= self.repeat_interval:
                track.last_sent = now
                assert track.last is not None
                alert = self._alert(track.last, target, "firing", track.started_at, None)
                return Notification(_group(alert), (alert,), repeat=True)
            return None
        alerts: list[Alert] = []
        if track.firing is not None:
            alerts.append(self._alert(indicator, track.firing, "resolved", track.started_at, now))
        if target is not None:
            track.started_at = now
            alerts.append(self._alert(indicator, target, "firing", now, None))
        track.firing = target
        track.last_sent = now
        return Notification(_group(alerts[0]), tuple(alerts))

    def _target(self, track: _Track, state: Level, now: float) -> Level | None:
        if state is Level.OK:
            return None
        if track.since_critical is not None and now - track.since_critical >= self.for_:
            return Level.CRITICAL
        if track.since_warning is not None and now - track.since_warning >= self.for_:
            return Level.WARNING
        # Pending: a firing critical that fell back to warning keeps firing as warning only
        # once warning has held for `for`, which it has, since warning began before critical.
        return track.firing if track.firing is not None and state >= Level.WARNING else None

    def _alert(
        self, indicator: Indicator, level: Level, status: str, starts: float, ends: float | None
    ) -> Alert:
        phrase, description, threshold = describe(indicator, level, self.thresholds, self.window)
        if status == "resolved":
            summary = f"Resolved: {phrase} (was {level.label}: {threshold})"
        else:
            summary = f"{phrase} ({threshold})"
        return Alert(
            alertname=ALERT_NAMES[indicator.slo],
            slo=indicator.slo,
            event_type=indicator.event_type,
            severity=level.label,
            status=status,
            value=indicator.value,
            starts_at=starts,
            ends_at=ends,
            summary=summary,
            description=description,
            threshold=threshold,
        )


def _group(alert: Alert) -> dict[str, str]:
    labels = alert.labels
    labels.pop("severity")
    return labels


def describe(
    indicator: Indicator, level: Level, thresholds: Thresholds, window: float
) -> tuple[str, str, str]:
    """What is measured, the description and the threshold, in words read at 3 a.m."""
    scope = (
        "all event types"
        if indicator.event_type == OVERALL
        else f"event type {indicator.event_type}"
    )
    span = format_duration(window)
    rates = (thresholds.success_rate.normal, thresholds.success_rate.alert)
    latencies = (thresholds.avg_latency.normal, thresholds.avg_latency.alert)

    def _percent(value: float | None) -> str:
        return present.percent(value, boundaries=rates)

    def _ms(value: float | None) -> str:
        return present.millis(value, boundaries=latencies)

    if indicator.slo == "success_rate":
        limits = thresholds.success_rate
        threshold = (
            f"below {_percent(limits.alert)}"
            if level is Level.CRITICAL
            else f"at or below {_percent(limits.normal)}"
        )
        phrase = f"Callback success rate {_percent(indicator.value)} for {scope}"
        description = (
            f"Over the last {span}, {indicator.events} callback attempts for {scope} succeeded "
            f"{_percent(indicator.value)} of the time. Healthy is above {_percent(limits.normal)}; "
            f"below {_percent(limits.alert)} is critical. Look at the failing receivers and the "
            "newest rows of the callback error table (cbmon report --since 1h)."
        )
    elif indicator.slo == "avg_latency":
        latency = thresholds.avg_latency
        threshold = (
            f"above {_ms(latency.alert)}"
            if level is Level.CRITICAL
            else f"at or above {_ms(latency.normal)}"
        )
        phrase = f"Callback average latency {_ms(indicator.value)} for {scope}"
        description = (
            f"Over the last {span}, callbacks for {scope} took {_ms(indicator.value)} on average "
            f"({indicator.events} attempts). Healthy is below {_ms(latency.normal)}; above "
            f"{_ms(latency.alert)} is critical. Check the receivers' response times and the "
            "worker's timeouts; slow receivers also grow the queue."
        )
    else:
        backlog = thresholds.backlog
        threshold = (
            f"above {backlog.alert}" if level is Level.CRITICAL else f"at or above {backlog.normal}"
        )
        count = "n/a" if indicator.value is None else f"{indicator.value:.0f}"
        phrase = f"Callback queue backlog {count} items"
        description = (
            f"{count} callbacks are waiting in the queue. Healthy is below {backlog.normal}; "
            f"above {backlog.alert} is critical. Check that the workers are running and keeping "
            "up, and cbmon_queue_oldest_age_seconds for how long the oldest has waited."
        )
    return phrase, description, threshold
