"""Deciding when an alert fires, changes or ends, from the judged indicators: the alert state
machine. What the alerts say is :mod:`cbmon.slo.wording`'s; how the state is saved,
:mod:`cbmon.slo.saved`'s.

Pure logic on plain values: no I/O, no clocks (times are passed in), no metrics. Two times are
passed in (see :mod:`cbmon.clock`): ``now``, on a line that never steps, decides every span
(``for``, repeats, no data, retention); ``wall`` dates what receivers and people read (an
alert's ``startsAt`` and ``endsAt``, the changes listed). A step of the wall clock therefore
changes no decision.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable

from cbmon.domain import Level
from cbmon.slo import wording
from cbmon.slo.judge import ALERT_NAMES, TRAFFIC, Indicator
from cbmon.slo.notification import Alert, Notification, group_of
from cbmon.slo.objectives import DEFAULT, Baseline


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
class Track:
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

    Its state survives a restart (:mod:`cbmon.slo.saved`), so an alert firing before a
    restart resolves after it, rather than being forgotten.

    It owns one :class:`Track` per (indicator, event type) ever judged and the last
    :attr:`TRANSITIONS` changes for the status page. It has no thread and no lock: only the
    poll thread changes it (through the :class:`~cbmon.sidecar.evaluator.Evaluator`); the
    collectors and the status page read it from their threads through
    :meth:`firing_counts`, :meth:`active` and :meth:`transitions`, which build new values
    from the tracks rather than hand them out.

    Invariants: at most one severity of an indicator fires at a time; every firing alert is
    ended by one ``resolved`` notification carrying the same ``startsAt`` (and so the same
    id); no decision reads the wall clock.
    """

    TRANSITIONS = 50  # kept for the status page

    def __init__(
        self,
        baseline: Baseline = DEFAULT,
        repeat_interval: float = 4 * 3600.0,
        *,
        no_data_resolve: float | None = None,
    ) -> None:
        """``baseline``: the limits, ``for``, the window and ``min_events``; the window is
        also how long a firing alert may go without data before it resolves, unless
        ``no_data_resolve`` says otherwise."""
        self.baseline = baseline
        self.repeat_interval = repeat_interval
        self._no_data_resolve = no_data_resolve
        self.tracks: dict[tuple[str, str], Track] = {}
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
        for key in [key for key in list(self.tracks) if key not in seen]:
            notes += self._update(key, Indicator(key[0], key[1], None, Level.UNKNOWN, 0), now)
        return notes

    def _update(self, key: tuple[str, str], indicator: Indicator, now: float) -> list[Notification]:
        track = self.tracks.setdefault(key, Track())
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
        for track in list(self.tracks.values()):
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
        for track in list(self.tracks.values()):
            if track.note is None:
                continue
            recent = track.resolved_at is not None and now - track.resolved_at <= retention
            if track.firing is not None or recent:
                found.extend(track.note.alerts)
        return found

    def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        # list() copies in one step, so a scrape never sees the poll thread add a track.
        for (slo, _), track in list(self.tracks.items()):
            if track.firing is not None:
                key = (ALERT_NAMES[slo], track.firing.label)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def active(self) -> list[Active]:
        """The alerts firing now, newest first, with whether their data ran out."""
        found = [
            Active(alert, None if track.no_data_since is None else self._wall(track.no_data_since))
            for track in list(self.tracks.values())
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

    def to_wall(self, now: float) -> float:
        """A time on the never-stepping line as a wall time, as of the last update."""
        return self._wall(now)

    def set_wall_offset(self, to_wall: float) -> None:
        """The wall clock minus the never-stepping line (a restore sets it before any
        update)."""
        self._to_wall = to_wall

    # -- one evaluation of one indicator -----------------------------------------------------
    def _step(self, track: Track, indicator: Indicator, now: float) -> Notification | None:
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
        # The traffic rule's threshold is a duration already: it needs no `for` on top; the
        # mechanism's probes come every mechanism.interval, slower than any `for`.
        instant = indicator.slo == TRAFFIC or indicator.objective.instant
        for_ = 0.0 if instant else self.baseline.for_
        target = self._target(track, state, now, for_)
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
        return Notification(group_of(alerts[0]), tuple(alerts))

    def _repeat(self, track: Track, now: float) -> Notification | None:
        """An unchanged firing alert, sent again once ``repeat_interval`` has passed."""
        if track.firing is None or now - track.last_sent < self.repeat_interval:
            return None
        track.last_sent = now
        assert track.last is not None
        alert = self._alert(track.last, track.firing, "firing", track.started_at, None)
        repeats = track.note.repeat + 1 if track.note is not None else 1
        return Notification(group_of(alert), (alert,), repeat=repeats)

    def _no_data(self, track: Track, indicator: Indicator, now: float) -> Notification | None:
        """Too few events to judge: a pending state starts over; a firing alert enters no
        data, and resolves once it has stayed there ``no_data_resolve`` seconds."""
        track.since_warning = track.since_critical = None
        if track.firing is None:
            return None
        baseline = self.baseline
        reason = wording.no_data_reason(indicator, baseline.min_events, baseline.window)
        if track.no_data_since is None:
            track.no_data_since = now
            self._note_change(now, "no_data", indicator, track.firing, reason)
            return None
        if now - track.no_data_since < self.no_data_resolve:
            return None
        level = track.firing
        threshold = self._describe(indicator, level)[2]
        summary, description = wording.resolved_for_lack_of_data(
            reason, level, threshold, now - track.no_data_since
        )
        ended = dataclasses.replace(
            self._alert(indicator, level, "resolved", track.started_at, self._wall(now)),
            summary=summary,
            description=description,
        )
        track.firing, track.no_data_since = None, None
        track.resolved_at = track.last_sent = now
        return Notification(group_of(ended), (ended,))

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

    def _target(self, track: Track, state: Level, now: float, for_: float) -> Level | None:
        if state is Level.OK:
            return None
        if track.since_critical is not None and now - track.since_critical >= for_:
            return Level.CRITICAL
        if track.since_warning is not None and now - track.since_warning >= for_:
            return Level.WARNING
        # Pending: a firing critical that fell back to warning keeps firing as warning only
        # once warning has held for `for`, which it has, since warning began before critical.
        return track.firing if track.firing is not None and state >= Level.WARNING else None

    @property
    def no_data_resolve(self) -> float:
        resolve = self._no_data_resolve
        return self.baseline.window if resolve is None else resolve

    def _describe(self, indicator: Indicator, level: Level) -> tuple[str, str, str]:
        return wording.describe(indicator, level, self.baseline)

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
        summary = wording.summary(phrase, threshold, level, status, successor)
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
