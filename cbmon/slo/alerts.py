"""Deciding when an alert fires, changes or ends, from the judged indicators, and what it says.

Pure logic on plain values: no I/O, no clocks (times are passed in), no metrics. Two times are
passed in (see :mod:`cbmon.clock`): ``now``, on a line that never steps, decides every span
(``for``, repeats, no data, retention); ``wall`` dates what receivers and people read (an
alert's ``startsAt`` and ``endsAt``, the changes listed). A step of the wall clock therefore
changes no decision.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Any

from cbmon import present
from cbmon.config import Thresholds
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo.judge import ALERT_NAMES, OVERALL, TRAFFIC, Indicator


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


@dataclasses.dataclass(frozen=True)
class Transition:
    """One change of one alert, as the status page lists it: ``change`` is ``fired``,
    ``escalated``, ``eased``, ``resolved``, ``no_data`` (its indicator has too few events to
    be judged) or ``data_back``."""

    at: float
    change: str
    alertname: str
    slo: str
    event_type: str
    severity: str
    summary: str


@dataclasses.dataclass(frozen=True)
class Active:
    """An alert firing now: what was sent when it fired (or last changed), and since when its
    indicator has had too few events to be judged (None while it is judged)."""

    alert: Alert
    no_data_since: float | None


@dataclasses.dataclass
class _Track:
    """One indicator's alert. Times are on the line that never steps, except ``started_at``,
    the wall time its firing alert carries (and its id is made of)."""

    since_warning: float | None = None
    since_critical: float | None = None
    firing: Level | None = None
    started_at: float = 0.0
    last_sent: float = 0.0
    last: Indicator | None = None
    note: Notification | None = None  # the last notification, sent again by a new sender
    resolved_at: float | None = None  # when it last stopped firing
    no_data_since: float | None = None  # firing, but its indicator not judged since then


# The times of a track on the line that never steps: saved as wall times, since that line
# starts afresh with every process.
_STEADY_TIMES = ("since_warning", "since_critical", "last_sent", "resolved_at", "no_data_since")


class AlertTracker:
    """Holds each judged indicator's alert across evaluations.

    A level must hold for ``for_`` seconds before it fires (``0`` fires at once); returning
    to ok resolves at once; escalation and de-escalation resolve the old severity and fire
    the new one; an unchanged firing alert is sent again every ``repeat_interval``.

    No traffic is a state: when a firing alert's indicator cannot be judged (fewer than
    ``min_events`` in the window, or its event type gone from the window), the alert enters
    *no data*. It is not sent again with stale numbers; if it stays without data for
    ``no_data_resolve`` seconds (the window, unless told), it resolves, saying why. A lull
    shorter than that keeps an incident open instead of resolving and firing it again.

    Its state survives a restart through :meth:`snapshot` and :meth:`restore`, so an alert
    firing before a restart resolves after it, rather than being forgotten.
    """

    TRANSITIONS = 50  # kept for the status page

    def __init__(
        self,
        thresholds: Thresholds,
        for_: float,
        repeat_interval: float,
        window: float,
        *,
        min_events: int = 0,
        no_data_resolve: float | None = None,
        traffic_absent_after: float = 0.0,
    ) -> None:
        self.thresholds = thresholds
        self.for_ = for_
        self.repeat_interval = repeat_interval
        self.window = window
        self.min_events = min_events
        self.no_data_resolve = window if no_data_resolve is None else no_data_resolve
        self.traffic_absent_after = traffic_absent_after
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._transitions: collections.deque[Transition] = collections.deque(
            maxlen=self.TRANSITIONS
        )
        self.recorded = 0  # transitions ever recorded: a caller tells the new ones by it
        self._to_wall = 0.0  # added to a time that never steps, reads it on the wall clock

    def update(
        self, indicators: Iterable[Indicator], now: float, wall: float | None = None
    ) -> list[Notification]:
        """Judge one evaluation at ``now`` (on the line that never steps); ``wall`` is the
        wall clock at that moment (``now`` unless given), for what is sent and shown."""
        self._to_wall = 0.0 if wall is None else wall - now
        notes: list[Notification] = []
        seen: set[tuple[str, str]] = set()
        for indicator in indicators:
            if indicator.slo not in ALERT_NAMES:
                continue
            key = (indicator.slo, indicator.event_type)
            seen.add(key)
            notes += self._update(key, indicator, now)
        # An event type with no traffic left in the window has no indicator at all: its
        # alerts have no data, exactly as with too few events.
        for key in [key for key in list(self._tracks) if key not in seen]:
            notes += self._update(key, Indicator(key[0], key[1], None, Level.UNKNOWN, 0), now)
        return notes

    def _update(self, key: tuple[str, str], indicator: Indicator, now: float) -> list[Notification]:
        track = self._tracks.setdefault(key, _Track())
        note = self._step(track, indicator, now)
        if note is None:
            return []
        track.note = note
        if not note.repeat:
            self._record(_transition(note, self._wall(now)))
        return [note]

    def _record(self, transition: Transition) -> None:
        self._transitions.append(transition)
        self.recorded += 1

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

    def active(self) -> list[Active]:
        """The alerts firing now, newest first, with whether their data ran out."""
        found = [
            Active(alert, None if track.no_data_since is None else self._wall(track.no_data_since))
            for track in list(self._tracks.values())
            if track.firing is not None and track.note is not None
            for alert in track.note.alerts
            if alert.status == "firing"
        ]
        return sorted(found, key=lambda a: -a.alert.starts_at)

    def transitions(self, newest: int | None = None) -> list[Transition]:
        """The latest changes of every alert, newest first (at most :attr:`TRANSITIONS`, or
        the ``newest`` ones)."""
        found = list(reversed(self._transitions))
        return found if newest is None else found[:newest]

    def _wall(self, now: float) -> float:
        return now + self._to_wall

    # -- surviving a restart -----------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """The tracks as plain JSON values, every time a wall time (see :meth:`restore`)."""
        found = []
        for (slo, event_type), track in list(self._tracks.items()):
            item: dict[str, Any] = {
                "slo": slo,
                "event_type": event_type,
                "firing": None if track.firing is None else int(track.firing),
                "started_at": track.started_at,
                "last": None if track.last is None else _indicator_json(track.last),
                "note": None if track.note is None else _note_json(track.note),
            }
            for name in _STEADY_TIMES:
                value = getattr(track, name)
                item[name] = None if value is None else self._wall(value)
            found.append(item)
        return found

    def restore(self, tracks: Iterable[dict[str, Any]], to_wall: float = 0.0) -> int:
        """Tracks saved by :meth:`snapshot` (checked by :mod:`cbmon.alerting.statefile`);
        ``to_wall`` is the wall clock minus the never-stepping line now, to read their wall
        times back onto it. Returns how many alerts are firing again."""
        self._to_wall = to_wall
        for item in tracks:
            steady = {
                name: None if item.get(name) is None else float(item[name]) - to_wall
                for name in _STEADY_TIMES  # no_data_since is absent from files of cbmon 0.1
            }
            track = _Track(
                since_warning=steady["since_warning"],
                since_critical=steady["since_critical"],
                firing=None if item["firing"] is None else Level(item["firing"]),
                started_at=float(item["started_at"]),
                last_sent=0.0 if steady["last_sent"] is None else steady["last_sent"],
                last=None if item["last"] is None else _indicator(item["last"]),
                note=None if item["note"] is None else _note(item["note"]),
                resolved_at=steady["resolved_at"],
                no_data_since=steady["no_data_since"],
            )
            self._tracks[(str(item["slo"]), str(item["event_type"]))] = track
        return sum(1 for track in self._tracks.values() if track.firing is not None)

    # -- one evaluation of one indicator -----------------------------------------------------
    def _step(self, track: _Track, indicator: Indicator, now: float) -> Notification | None:
        state = indicator.state
        if state is Level.UNKNOWN:
            return self._no_data(track, indicator, now)
        if track.no_data_since is not None:
            track.no_data_since = None
            if track.firing is not None:
                phrase = self._describe(indicator, track.firing)[0]
                self._note_change(
                    now, "data_back", indicator, track.firing, f"Data again: {phrase}"
                )
        track.last = indicator
        if state < Level.WARNING:
            track.since_warning = None
        elif track.since_warning is None:
            track.since_warning = now
        if state < Level.CRITICAL:
            track.since_critical = None
        elif track.since_critical is None:
            track.since_critical = now
        # The traffic rule's threshold is a duration already: it needs no `for` on top.
        target = self._target(track, state, now, 0.0 if indicator.slo == TRAFFIC else self.for_)
        if target == track.firing:
            return self._repeat(track, now)
        alerts: list[Alert] = []
        if track.firing is not None:
            ended = self._alert(
                indicator, track.firing, "resolved", track.started_at, self._wall(now), target
            )
            alerts.append(ended)
        if target is not None:
            track.started_at = self._wall(now)
            alerts.append(self._alert(indicator, target, "firing", track.started_at, None))
            track.resolved_at = None
        else:
            track.resolved_at = now
        track.firing = target
        track.last_sent = now
        return Notification(_group(alerts[0]), tuple(alerts))

    def _repeat(self, track: _Track, now: float) -> Notification | None:
        """An unchanged firing alert, sent again once ``repeat_interval`` has passed."""
        if track.firing is None or now - track.last_sent < self.repeat_interval:
            return None
        track.last_sent = now
        assert track.last is not None
        alert = self._alert(track.last, track.firing, "firing", track.started_at, None)
        repeats = track.note.repeat + 1 if track.note is not None else 1
        return Notification(_group(alert), (alert,), repeat=repeats)

    def _no_data(self, track: _Track, indicator: Indicator, now: float) -> Notification | None:
        """Too few events to judge: a pending state starts over; a firing alert enters no
        data, and resolves once it has stayed there ``no_data_resolve`` seconds."""
        track.since_warning = track.since_critical = None
        if track.firing is None:
            return None
        reason = no_data_reason(indicator, self.min_events, self.window)
        if track.no_data_since is None:
            track.no_data_since = now
            self._note_change(now, "no_data", indicator, track.firing, reason)
            return None
        if now - track.no_data_since < self.no_data_resolve:
            return None
        level = track.firing
        threshold = self._describe(indicator, level)[2]
        ended = dataclasses.replace(
            self._alert(indicator, level, "resolved", track.started_at, self._wall(now)),
            summary=f"Resolved for lack of data: {reason} (was {level.label}: {threshold})",
            description=(
                f"{reason[0].upper()}{reason[1:]}, for {format_duration(now - track.no_data_since)}"
                ". Without enough traffic to judge, an alert resolves; it fires again if the "
                "state comes back once there is. Check that callbacks are still being made "
                "(the queue, the workers, the triggers that enqueue them)."
            ),
        )
        track.firing, track.no_data_since = None, None
        track.resolved_at = track.last_sent = now
        return Notification(_group(ended), (ended,))

    def _note_change(
        self, now: float, change: str, indicator: Indicator, level: Level, summary: str
    ) -> None:
        self._record(
            Transition(
                self._wall(now),
                change,
                ALERT_NAMES[indicator.slo],
                indicator.slo,
                indicator.event_type,
                level.label,
                summary,
            )
        )

    def _target(self, track: _Track, state: Level, now: float, for_: float) -> Level | None:
        if state is Level.OK:
            return None
        if track.since_critical is not None and now - track.since_critical >= for_:
            return Level.CRITICAL
        if track.since_warning is not None and now - track.since_warning >= for_:
            return Level.WARNING
        # Pending: a firing critical that fell back to warning keeps firing as warning only
        # once warning has held for `for`, which it has, since warning began before critical.
        return track.firing if track.firing is not None and state >= Level.WARNING else None

    def _describe(self, indicator: Indicator, level: Level) -> tuple[str, str, str]:
        return describe(
            indicator,
            level,
            self.thresholds,
            self.window,
            absent_after=self.traffic_absent_after,
        )

    def _alert(
        self,
        indicator: Indicator,
        level: Level,
        status: str,
        starts: float,
        ends: float | None,
        successor: Level | None = None,
    ) -> Alert:
        phrase, description, threshold = self._describe(indicator, level)
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


def _transition(note: Notification, now: float) -> Transition:
    """What a notification of a change means, as one transition."""
    first, last = note.alerts[0], note.alerts[-1]
    if len(note.alerts) == 1:
        change = "fired" if first.status == "firing" else "resolved"
    else:
        change = (
            "escalated" if Level[last.severity.upper()] > Level[first.severity.upper()] else "eased"
        )
    return Transition(
        now, change, last.alertname, last.slo, last.event_type, last.severity, first.summary
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


def no_data_reason(indicator: Indicator, min_events: int, window: float) -> str:
    """Why an indicator is not judged, in words: its events in the window and what it needs."""
    span = format_duration(window)
    scope = _scope(indicator.event_type)
    if indicator.slo == "last_attempt_age":
        return "the traffic rule is switched off (slo.traffic_absent_after is 0s)"
    samples = {"avg_latency": "attempts with a duration"}.get(indicator.slo, "callback attempts")
    return (
        f"no traffic: {indicator.events} {samples} for {scope} in the last {span}, "
        f"fewer than the {max(min_events, 1)} needed to judge"
    )


def _scope(event_type: str) -> str:
    return "all event types" if event_type == OVERALL else f"event type {event_type}"


def describe(
    indicator: Indicator,
    level: Level,
    thresholds: Thresholds,
    window: float,
    *,
    absent_after: float = 0.0,
) -> tuple[str, str, str]:
    """What is measured, the description and the threshold, in words read at 3 a.m."""
    scope = _scope(indicator.event_type)
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
    elif indicator.slo == TRAFFIC:
        age = "-" if indicator.value is None else format_duration(round(indicator.value))
        threshold = f"none for {format_duration(absent_after)} or more"
        phrase = f"No callback attempt logged for {age}"
        description = (
            f"No callback attempt has been logged for {age} (the rule fires after "
            f"{format_duration(absent_after)}). Check that callbacks are still being made: the "
            "triggers or the application that enqueue them, the queue (cbmon_queue_backlog) "
            "and the workers that deliver them."
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
