"""The JSON API, version 1: ``/api/v1/status`` and ``/api/v1/alerts``, from a status
:class:`~cbmon.web.status.Snapshot`, and the way back for clients (``cbmon check
--from-url``). Every field is described in docs/api.md.

Values are in base units (ratios 0..1, seconds, items), like the metrics; times are RFC 3339
UTC strings; the overall scope is ``"event_type": null``. Fields are only ever added within a
version: a client ignores those it does not know.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from cbmon.delivery.payload import iso_time
from cbmon.domain import Level
from cbmon.slo.budget import Budget
from cbmon.slo.judge import OVERALL, Indicator
from cbmon.slo.objectives import DEFAULT, Baseline, Limits, Target
from cbmon.slo.tracker import Transition
from cbmon.web.status import BudgetStatus, FiringStatus, IndicatorStatus, Snapshot

VERSION = 1
STATUS_PATH = "/api/v1/status"
ALERTS_PATH = "/api/v1/alerts"


class ApiError(ValueError):
    """An answer that is not version 1 of the API, or not the API at all."""


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def _scope(event_type: str) -> str | None:
    return None if event_type == OVERALL else event_type


def when(seconds: float | None) -> str | None:
    return None if seconds is None else iso_time(seconds)


def _indicator(item: IndicatorStatus) -> dict[str, Any]:
    return {
        "slo": item.slo,
        "event_type": _scope(item.event_type),
        "value": _number(item.value),
        "state": item.state.label,
        "judged": item.judged,
        "no_data": item.no_data,
        "events": item.events,
        "thresholds": {"normal": item.normal, "alert": item.alert} if item.judged else None,
        "trend": [_number(value) for value in item.trend],
    }


def _alert(item: FiringStatus, database: str) -> dict[str, Any]:
    return {
        "database": database,
        "alertname": item.alertname,
        "slo": item.slo,
        "event_type": _scope(item.event_type),
        "severity": item.severity,
        "since": when(item.since),
        "value": _number(item.value),
        "value_now": _number(item.current),
        "threshold": item.threshold,
        "summary": item.summary,
        "description": item.description,
        "no_data_since": when(item.no_data_since),
    }


def _transition(item: Transition) -> dict[str, Any]:
    return {
        "at": when(item.at),
        "change": item.change,
        "alertname": item.alertname,
        "slo": item.slo,
        "event_type": _scope(item.event_type),
        "severity": item.severity,
        "summary": item.summary,
    }


def alerts(snapshot: Snapshot) -> dict[str, Any]:
    """``/api/v1/alerts``: what fires now and the latest changes."""
    return {
        "version": VERSION,
        "generated_at": when(snapshot.generated_at),
        "alerts": [_alert(item, snapshot.database.name) for item in snapshot.firing],
        "transitions": [_transition(item) for item in snapshot.transitions],
    }


def status(snapshot: Snapshot) -> dict[str, Any]:
    """``/api/v1/status``: everything the status page shows."""
    database, leader = snapshot.database, snapshot.leader
    return {
        **alerts(snapshot),
        "cbmon_version": snapshot.version,
        "cluster": snapshot.cluster,
        "state": snapshot.state.label,
        "window_seconds": snapshot.window,
        "min_events": snapshot.min_events,
        "poll_interval_seconds": snapshot.poll_interval,
        "trend_step_seconds": snapshot.trend_step,
        "indicators": [_indicator(item) for item in snapshot.indicators],
        "queue": {
            "backlog": snapshot.backlog,
            "oldest_age_seconds": snapshot.oldest_age_seconds,
            "states": snapshot.queue_states,
        },
        "lifecycle_notes": list(snapshot.lifecycle_notes),
        "mechanism": snapshot.mechanism,
        "database": {
            "name": database.name,
            "up": database.up,
            "last_poll": when(database.last_poll or None),  # null before the first
            "polls_total": database.polls_total,
            "poll_errors_total": database.poll_errors_total,
            "lag_rows": database.lag_rows,
            "wake": database.wake,
            "server_role": database.server_role,
            "fence": database.fence,
            "pooler": database.pooler,
            "exact": database.exact,
            "resets": database.resets,
        },
        "budgets": [_budget(item) for item in snapshot.budgets],
        "leader": {
            "webhooks": leader.webhooks,
            "alertmanagers": leader.alertmanagers,
            "sends_webhooks": leader.sends_webhooks,
            "sender": leader.sender,
            "foreign_holder": leader.foreign_holder,
            "refusal": leader.refusal,
        },
    }


def _budget(item: BudgetStatus) -> dict[str, Any]:
    return {
        "slo": item.slo,
        "event_type": item.event_type or None,
        "target": item.target,
        "period_seconds": item.period,
        "threshold_seconds": item.threshold,
        "events": item.events,
        "bad": item.bad,
        "remaining": _finite(item.remaining),
        "burn_rate": {window: _finite(rate) for window, rate in item.burn.items()},
        "exhausted_in_seconds": _finite(item.exhausted_in),
    }


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an overspent 100 % objective says null, with remaining below 0."""
    return None if value is None or math.isinf(value) or math.isnan(value) else value


def encode(document: dict[str, Any]) -> bytes:
    """Compact: a status of five hundred event types is large enough; ``jq`` shows it."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


# -- the way back, for clients ---------------------------------------------------------------
def decode(body: bytes) -> dict[str, Any]:
    """A version 1 document, or :class:`ApiError` saying in a few words what is wrong."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("not JSON") from None
    if not isinstance(document, dict):
        raise ApiError("not a JSON object")
    if document.get("version") != VERSION:
        raise ApiError(f"API version {document.get('version')!r}, expected {VERSION}")
    return document


def indicators(document: dict[str, Any]) -> list[Indicator]:
    """The indicators of a status document, as the judge made them."""
    try:
        return [
            Indicator(
                slo=str(item["slo"]),
                event_type=OVERALL if item["event_type"] is None else str(item["event_type"]),
                value=None if item["value"] is None else float(item["value"]),
                state=Level[str(item["state"]).upper()],
                events=int(item["events"]),
            )
            for item in document["indicators"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(f"indicators: {type(exc).__name__} {exc}") from None


def budgets(document: dict[str, Any]) -> list[Budget]:
    """The error budgets a status document carries, as the check judges them."""
    try:
        return [
            Budget(
                slo=str(item["slo"]),
                event_type=str(item["event_type"] or OVERALL),
                target=Target(
                    float(item["target"]),
                    float(item["period_seconds"]),
                    None if item["threshold_seconds"] is None else float(item["threshold_seconds"]),
                ),
                events=int(item["events"]),
                bad=int(item["bad"]),
                burn={k: None if v is None else float(v) for k, v in item["burn_rate"].items()},
            )
            for item in document.get("budgets", [])
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ApiError(f"budgets: {type(exc).__name__}") from None


def baseline(document: dict[str, Any]) -> Baseline:
    """The baseline a status document was judged against: the limits of its judged
    indicators (the defaults for one it does not carry) and its ``min_events``."""
    limits = dict(DEFAULT.limits)
    try:
        for item in document["indicators"]:
            found = item.get("thresholds")
            if item["slo"] in limits and found and found.get("normal") is not None:
                alert = found.get("alert")
                limits[str(item["slo"])] = Limits(
                    float(found["normal"]), None if alert is None else float(alert)
                )
        return dataclasses.replace(
            DEFAULT,
            limits=limits,
            min_events=int(document["min_events"]),
            window=float(document["window_seconds"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(f"thresholds: {type(exc).__name__}") from None
