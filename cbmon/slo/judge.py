"""Judging a measured value against the operators' baseline: ok, warning or critical.

The boundaries are exact and shared by the sidecar, ``cbmon check`` and ``cbmon report``:
a success rate is ok when above ``normal`` and critical when below ``alert`` (exactly 99.5 %
and exactly 99 % are warnings); latency and backlog are ok when below ``normal`` and critical
when above ``alert``; everything in between, boundaries included, is a warning.
"""

from __future__ import annotations

import enum
import math

from cbmon.config import Thresholds


class State(enum.IntEnum):
    """Values are what ``cbmon_slo_state`` exports; UNKNOWN is exported as -1."""

    UNKNOWN = -1
    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


def judge_higher_is_better(value: float | None, normal: float, alert: float) -> State:
    if value is None or math.isnan(value):
        return State.UNKNOWN
    if value > normal:
        return State.OK
    if value < alert:
        return State.CRITICAL
    return State.WARNING


def judge_lower_is_better(value: float | None, normal: float, alert: float) -> State:
    if value is None or math.isnan(value):
        return State.UNKNOWN
    if value < normal:
        return State.OK
    if value > alert:
        return State.CRITICAL
    return State.WARNING


def judge_success_rate(value: float | None, thresholds: Thresholds) -> State:
    """``value`` is a ratio from 0 to 1."""
    limits = thresholds.success_rate
    return judge_higher_is_better(value, limits.normal, limits.alert)


def judge_avg_latency(value: float | None, thresholds: Thresholds) -> State:
    """``value`` is in seconds."""
    limits = thresholds.avg_latency
    return judge_lower_is_better(value, limits.normal, limits.alert)


def judge_backlog(value: float | None, thresholds: Thresholds) -> State:
    """``value`` counts waiting queue items."""
    limits = thresholds.backlog
    return judge_lower_is_better(value, limits.normal, limits.alert)
