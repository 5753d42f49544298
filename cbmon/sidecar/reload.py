"""Reloading the configuration of a running ``cbmon serve`` (SIGHUP, ``POST /-/reload``).

A reload reads the file and the secret files again, with the same flags and environment as at
start (flags keep their precedence). What can change live applies at the next poll: the
thresholds, the SLO window and ``for``, the receivers and how they are sent to. What cannot
(where cbmon listens, the tables it reads, the database, the leader lock's cluster and secret,
the state file, ...) keeps its running value until a restart, and is named. An invalid file
changes nothing. :func:`plan` decides; :class:`ReloadStatus` is what the two
``cbmon_config_last_reload_*`` metrics export, as Prometheus names its own.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from pydantic import BaseModel

from cbmon.config import Config

# Keys (and the sections under them) that apply at the next poll; every other key keeps its
# running value until a restart. Field names, as the models spell them.
LIVE = (
    "thresholds.success_rate",
    "thresholds.avg_latency",
    "thresholds.backlog",
    "slo.window",
    "slo.for_",
    "slo.min_events",
    "slo.traffic_absent_after",
    "alerting.webhooks",
    "alerting.alertmanagers",
    "alerting.secret_file",
    "alerting.timeout",
    "alerting.ca_file",
    "alerting.max_retries",
    "alerting.repeat_interval",
    "alerting.resend_interval",
    "alerting.resolved_retention",
    "mechanism.interval",
    "mechanism.listeners",
    "mechanism.notify_queue_usage",
    "mechanism.missed_runs",
)
WEBHOOK_SECRET = "the webhook secret"  # noqa: S105 - how the key is named, not a secret
_SHOWN = {"for_": "for", "table_schema": "schema"}  # field names as the file spells them


@dataclasses.dataclass(frozen=True)
class Plan:
    config: Config  # what runs from the next poll
    changed: tuple[str, ...]  # keys that change live, as the file names them
    kept: tuple[str, ...]  # keys that changed in the file but keep their value until a restart

    def summary(self) -> str:
        """The outcome in one line, for the log and the answer to ``POST /-/reload``."""
        if self.changed:
            said = f"{', '.join(self.changed)} changed; applied at the next poll"
        else:
            said = "nothing that can change live changed"
        if self.kept:
            keeps = (
                "keeps its running value" if len(self.kept) == 1 else "keep their running values"
            )
            said += f"; {', '.join(self.kept)} cannot change while cbmon runs and {keeps}"
            said += " until a restart"
        return said


def plan(running: Config, loaded: Config) -> Plan:
    """What reloading ``loaded`` over ``running`` does: the config that results, and which
    keys change or are kept. Secrets are compared, never shown."""
    before, after = _leaves(running.file), _leaves(loaded.file)
    keys = before.keys() | after.keys()
    differ = sorted(key for key in keys if before.get(key) != after.get(key))
    changed = [key for key in differ if _live(key)]
    kept = [key for key in differ if not _live(key)]
    file = running.file
    for key in changed:
        file = _with(file, key.split("."), after[key])
    shown_changed = sorted(_shown(key) for key in changed)
    if loaded.webhook_secret != running.webhook_secret:
        shown_changed.append(WEBHOOK_SECRET)
    shown_kept = sorted(_shown(key) for key in kept)
    if loaded.dsn != running.dsn:
        shown_kept.append("the DSN")
    if loaded.cluster_secret != running.cluster_secret:
        shown_kept.append("the cluster secret")
    config = running.model_copy(
        update={"file": file, "webhook_secret": loaded.webhook_secret, "source": loaded.source}
    )
    return Plan(config, tuple(shown_changed), tuple(shown_kept))


def _leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every value of the tree by its dotted key; a list is one value."""
    found: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found.update(_leaves(value, f"{key}."))
        else:
            found[key] = value
    return found


def _live(key: str) -> bool:
    return any(key == live or key.startswith(f"{live}.") for live in LIVE)


def _with(model: BaseModel, path: list[str], value: Any) -> Any:
    """``model`` with the value at ``path`` replaced (the models are frozen)."""
    name, rest = path[0], path[1:]
    inner = value if not rest else _with(getattr(model, name), rest, value)
    return model.model_copy(update={name: inner})


def _shown(key: str) -> str:
    return ".".join(_SHOWN.get(part, part) for part in key.split("."))


class ReloadStatus:
    """The last reload's outcome; thread-safe (reloads come from a signal or an HTTP request,
    scrapes read). At start the configuration counts as loaded, as Prometheus counts it."""

    def __init__(self, loaded_at: float) -> None:
        self._lock = threading.Lock()
        self._successful = True
        self._success_timestamp = loaded_at

    def succeeded(self, at: float) -> None:
        with self._lock:
            self._successful, self._success_timestamp = True, at

    def failed(self) -> None:
        with self._lock:
            self._successful = False

    def read(self) -> tuple[bool, float]:
        with self._lock:
            return self._successful, self._success_timestamp
