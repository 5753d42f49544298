"""Deciding when an alert fires, changes or ends, from the judged indicators, and what it says.

Pure logic on plain values: no I/O, no clocks (times are passed in), no metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Any

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
    """What one webhook call carries: the alerts of one indicator that changed.

    ``id`` is derived from the alerts and their transition (and the repeat number), never
    drawn at random: a re-send of the same transition carries the same id, so receivers that
    deduplicate on ``webhook-id`` page once.
    """

    group: dict[str, str]  # labels the alerts share: alertname, slo, event_type
    alerts: tuple[Alert, ...]
    repeat: int = 0  # 0 for a transition, then 1, 2, ... for each repeat_interval re-send

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def id(self) -> str:
        parts = [f"{fingerprint(a.labels)}:{a.status}:{a.starts_at:.3f}" for a in self.alerts]
        digest = hashlib.sha256("|".join([*parts, str(self.repeat)]).encode()).hexdigest()
        return f"msg_{digest[:32]}"


def fingerprint(labels: dict[str, str]) -> str:
    """A stable id of an alert's label set, 16 hex digits like Alertmanager's."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class _Track:
    since_warning: float | None = None
    since_critical: float | None = None
    firing: Level | None = None
    started_at: float = 0.0
    last_sent: float = 0.0
    last: Indicator | None = None
    note: Notification | None = None  # the last notification, sent again by a new sender
    resolved_at: float | None = None  # when it last stopped firing


class AlertTracker:
    """Holds each judged indicator's alert across evaluations.

    A level must hold for ``for_`` seconds before it fires (``0`` fires at once); returning
    to ok resolves at once; escalation and de-escalation resolve the old severity and fire
    the new one; an unchanged firing alert is sent again every ``repeat_interval``; an
    UNKNOWN evaluation (too few events) changes nothing.

    Its state survives a restart through :meth:`snapshot` and :meth:`restore`, so an alert
    firing before a restart resolves after it, rather than being forgotten.
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
                track.note = note
                notes.append(note)
        return notes

    def current(self, now: float, retention: float) -> list[Notification]:
        """The last notification of every alert firing now or resolved within ``retention``,
        with its own id: what a replica taking over sends, so that neither a firing alert nor
        a predecessor's unsent ``resolved`` is lost, and receivers deduplicate the rest."""
        notes = []
        for track in list(self._tracks.values()):
            if track.note is None:
                continue
            recent = track.resolved_at is not None and now - track.resolved_at <= retention
            if track.firing is not None or recent:
                notes.append(track.note)
        return notes

    def alerts(self, now: float, retention: float) -> list[Alert]:
        """Every alert firing now, and every one resolved within ``retention`` (as resolved):
        the set an Alertmanager is told about, again and again."""
        found: list[Alert] = []
        for track in list(self._tracks.values()):
            if track.note is None:
                continue
            recent = track.resolved_at is not None and now - track.resolved_at <= retention
            if track.firing is not None or recent:
                found.extend(track.note.alerts)
        return found

    def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        # list() copies in one step, so a scrape never sees the poll thread add a track.
        for (slo, _), track in list(self._tracks.items()):
            if track.firing is not None:
                key = (ALERT_NAMES[slo], track.firing.label)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def firing_alerts(self) -> list[Alert]:
        """The alerts firing now, newest first."""
        found = [
            alert
            for track in list(self._tracks.values())
            if track.firing is not None and track.note is not None
            for alert in track.note.alerts
            if alert.status == "firing"
        ]
        return sorted(found, key=lambda a: -a.starts_at)

    # -- surviving a restart -----------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The tracks as plain JSON values."""
        return [
            {
                "slo": slo,
                "event_type": event_type,
                "since_warning": track.since_warning,
                "since_critical": track.since_critical,
                "firing": None if track.firing is None else int(track.firing),
                "started_at": track.started_at,
                "last_sent": track.last_sent,
                "last": None if track.last is None else _indicator_json(track.last),
                "note": None if track.note is None else _note_json(track.note),
                "resolved_at": track.resolved_at,
            }
            for (slo, event_type), track in list(self._tracks.items())
        ]

    def restore(self, tracks: Iterable[dict[str, Any]]) -> int:
        """Tracks saved by :meth:`snapshot`; returns how many alerts are firing again."""
        for item in tracks:
            track = _Track(
                since_warning=item["since_warning"],
                since_critical=item["since_critical"],
                firing=None if item["firing"] is None else Level(item["firing"]),
                started_at=float(item["started_at"]),
                last_sent=float(item["last_sent"]),
                last=None if item["last"] is None else _indicator(item["last"]),
                note=None if item["note"] is None else _note(item["note"]),
                resolved_at=item["resolved_at"],
            )
            self._tracks[(str(item["slo"]), str(item["event_type"]))] = track
        return sum(1 for track in self._tracks.values() if track.firing is not None)

    # -- one evaluation of one indicator -----------------------------------------------------
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
                repeats = track.note.repeat + 1 if track.note is not None else 1
                return Notification(_group(alert), (alert,), repeat=repeats)
            return None
        alerts: list[Alert] = []
        if track.firing is not None:
            ended = self._alert(indicator, track.firing, "resolved", track.started_at, now, target)
            alerts.append(ended)
        if target is not None:
            track.started_at = now
            alerts.append(self._alert(indicator, target, "firing", now, None))
            track.resolved_at = None
        else:
            track.resolved_at = now
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
        self,
        indicator: Indicator,
        level: Level,
        status: str,
        starts: float,
        ends: float | None,
        successor: Level | None = None,
    ) -> Alert:
        phrase, description, threshold = describe(indicator, level, self.thresholds, self.window)
        if status == "firing":
            summary = f"{phrase} ({threshold})"
        elif successor is not None and successor > level:
            summary = f"Escalated to {successor.label}: {phrase} (was {level.label}: {threshold})"
        elif successor is not None:
            summary = f"Eased to {successor.label}: {phrase} (was {level.label}: {threshold})"
        else:
            summary = f"Resolved: {phrase} (was {level.label}: {threshold})"
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


def _indicator_json(indicator: Indicator) -> dict[str, Any]:
    return {**dataclasses.asdict(indicator), "state": int(indicator.state)}


def _indicator(data: dict[str, Any]) -> Indicator:
    return Indicator(**{**data, "state": Level(data["state"])})


def _note_json(note: Notification) -> dict[str, Any]:
    return {
        "group": note.group,
        "alerts": [dataclasses.asdict(alert) for alert in note.alerts],
        "repeat": note.repeat,
    }


def _note(data: dict[str, Any]) -> Notification:
    alerts = tuple(Alert(**alert) for alert in data["alerts"])
    return Notification(dict(data["group"]), alerts, int(data["repeat"]))


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
