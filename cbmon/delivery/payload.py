"""Notifications as Alertmanager's webhook payload, version "4", so its receivers accept them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cbmon.slo.notification import Alert, Notification, fingerprint

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires
RECEIVER = "cbmon"


def iso_time(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


DATABASE = "database"


def labels_of(alert: Alert, database: str) -> dict[str, str]:
    """An alert's labels as sent: its own and the database it is about."""
    return {**alert.labels, DATABASE: database} if database else alert.labels


def message_id(note: Notification, identity: str | None) -> str:
    """The ``webhook-id``: the notification's own, or, for a named database, one that tells
    it from the same notification about another database."""
    if identity is None:
        return note.id
    digest = hashlib.sha256(f"{note.id}|{identity}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def _alert(alert: Alert, external_url: str, database: str) -> dict[str, Any]:
    value = "" if alert.value is None else f"{alert.value:g}"
    labels = labels_of(alert, database)
    return {
        "status": alert.status,
        "labels": labels,
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "value": value,
            "threshold": alert.threshold,
        },
        "startsAt": iso_time(alert.starts_at),
        "endsAt": ZERO_TIME if alert.ends_at is None else iso_time(alert.ends_at),
        "generatorURL": f"{external_url}/metrics",
        "fingerprint": fingerprint(labels),
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    common = dict(maps[0]) if maps else {}
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def build(notification: Notification, external_url: str, database: str = "") -> dict[str, Any]:
    """The payload; ``database`` (its label) is in every alert's labels and the group's."""
    alerts = [_alert(alert, external_url, database) for alert in notification.alerts]
    group = {**notification.group, DATABASE: database} if database else notification.group
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": RECEIVER,
        "groupLabels": group,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }


def encode(notification: Notification, external_url: str, database: str = "") -> bytes:
    body = build(notification, external_url, database)
    return json.dumps(body, separators=(",", ":")).encode()
