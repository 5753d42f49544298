"""Rule groups as plain values, in the order Prometheus reads them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

EMPTY: Mapping[str, str] = {}


@dataclasses.dataclass(frozen=True)
class Rule:
    """A recording rule (``record``) or an alerting rule (``alert``)."""

    expr: str
    record: str | None = None
    alert: str | None = None
    for_: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: EMPTY)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: EMPTY)

    @property
    def name(self) -> str:
        return self.record or self.alert or ""


@dataclasses.dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    comment: str = ""  # written above the group, one "# " line per line


@dataclasses.dataclass(frozen=True)
class RuleFile:
    groups: tuple[Group, ...]
    comment: str = ""  # written at the top of the file
