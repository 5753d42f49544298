"""Baselines for tests: the defaults with a few values changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from cbmon.slo.objectives import DEFAULT, TRAFFIC, Baseline, Limits


def baseline(**changes: Any) -> Baseline:
    """:data:`DEFAULT` with ``changes``; ``traffic_absent_after`` sets the traffic rule's
    limit, as ``slo.traffic_absent_after`` does."""
    absent = changes.pop("traffic_absent_after", None)
    found = dataclasses.replace(DEFAULT, **changes)
    if absent is not None:
        found = dataclasses.replace(
            found, limits={**found.limits, TRAFFIC.slo: Limits(float(absent))}
        )
    return found
