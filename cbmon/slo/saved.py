"""The alert tracker's state as plain JSON values, and back: what the state file holds
(:mod:`cbmon.delivery.statefile` checks its shape before anything here reads it).

Times that decide (on the line that never steps) are saved as wall times, since that line
starts afresh with every process, and read back onto the new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from cbmon.domain import Level
from cbmon.slo.judge import Indicator
from cbmon.slo.notification import Alert, Notification
from cbmon.slo.tracker import AlertTracker, Track

# The times of a track on the line that never steps.
STEADY_TIMES = ("since_warning", "since_critical", "last_sent", "resolved_at", "no_data_since")


def snapshot(tracker: AlertTracker) -> list[dict[str, Any]]:
    """The tracks as plain JSON values, every time a wall time (see :func:`restore`)."""
    found = []
    for (slo, event_type), track in list(tracker.tracks.items()):
        item: dict[str, Any] = {
            "slo": slo,
            "event_type": event_type,
            "firing": None if track.firing is None else int(track.firing),
            "started_at": track.started_at,
            "last": None if track.last is None else _indicator_json(track.last),
            "note": None if track.note is None else _note_json(track.note),
        }
        for name in STEADY_TIMES:
            value = getattr(track, name)
            item[name] = None if value is None else tracker.to_wall(value)
        found.append(item)
    return found


def restore(tracker: AlertTracker, tracks: Iterable[dict[str, Any]], to_wall: float = 0.0) -> int:
    """Tracks :func:`snapshot` saved (checked by the state file); ``to_wall`` is the wall
    clock minus the never-stepping line now, to read their wall times back onto it. Returns
    how many alerts are firing again."""
    tracker.set_wall_offset(to_wall)
    for item in tracks:
        steady = {
            name: None if item.get(name) is None else float(item[name]) - to_wall
            for name in STEADY_TIMES  # no_data_since is absent from files of cbmon 0.1
        }
        track = Track(
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
        tracker.tracks[(str(item["slo"]), str(item["event_type"]))] = track
    return sum(1 for track in tracker.tracks.values() if track.firing is not None)


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
