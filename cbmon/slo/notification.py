"""What an alert says to a receiver: the alerts and the notifications that carry them.

Plain values with stable ids: the same transition always has the same id, so receivers that
deduplicate on ``webhook-id`` page once, whichever replica sends it and however often.
"""

from __future__ import annotations

import dataclasses
import hashlib

from cbmon.slo.objectives import OVERALL


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


def group_of(alert: Alert) -> dict[str, str]:
    """The labels a notification groups its alerts by: all but the severity."""
    labels = alert.labels
    labels.pop("severity")
    return labels
