"""Turning ``--since``, ``--from`` and ``--to`` into the period a report covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cbmon.durations import format_duration, parse_duration
from cbmon.errors import ConfigError

DEFAULT_SINCE = 24 * 3600.0
HOUR, DAY = 3600.0, 86400.0
STEP_NAMES = {"minute": 60.0, "hour": HOUR, "day": DAY}
# The steps a chart picks from when --by is not given: the largest that still gives
# MIN_POINTS buckets, so a one-hour report draws lines (5m steps), not one dot.
CHART_STEPS = (10.0, 60.0, 300.0, 900.0, HOUR, 6 * HOUR, DAY)
MIN_POINTS = 10
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class PeriodRequest:
    """What the user asked for; resolved against the database's clock by :func:`resolve`."""

    since: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    # Without --to the period ends now; rows dated up to this many seconds past now still
    # count (the sidecar's clock_skew), so a clock a little ahead does not hide fresh rows.
    ahead: float = 0.0


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time; without an offset it is read as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is not an ISO time such as 2026-11-27T08:00:00Z"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def check(request: PeriodRequest) -> None:
    """The mistakes visible without the database's clock, caught before connecting."""
    if request.since is not None and request.start is not None:
        raise ConfigError("--since and --from both give the start; use one of them")
    if request.since is not None and request.since <= 0:
        raise ConfigError("--since: must be above 0s")
    if request.start is not None and request.end is not None and request.start >= request.end:
        raise ConfigError(
            f"--from {request.start.isoformat()} is not before --to {request.end.isoformat()}"
        )


def resolve(request: PeriodRequest, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)``: ``--to`` defaults to now, ``--from`` to ``--since`` before the end."""
    check(request)
    end = request.end if request.end is not None else now
    if request.start is not None:
        start = request.start
    else:
        since = request.since if request.since is not None else DEFAULT_SINCE
        start = end - timedelta(seconds=since)
    if request.end is None:
        end += timedelta(seconds=request.ahead)
    if start >= end:
        # Only a given --from can reach this: --since is above 0.
        until = "--to" if request.end is not None else "now"
        raise ConfigError(f"--from {start.isoformat()} is not before {until} ({end.isoformat()})")
    return start.astimezone(UTC), end.astimezone(UTC)


def previous(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period of the same length just before ``[start, end)``, for ``--compare``."""
    return start - (end - start), start


def parse_step(text: str) -> float:
    """``--by``: ``minute``, ``hour``, ``day`` or a duration (``5m``, ``6h``), in seconds."""
    name = text.strip().lower()
    if name in STEP_NAMES:
        return STEP_NAMES[name]
    try:
        seconds = parse_duration(name)
    except ValueError:
        raise ConfigError(
            f"--by: {text!r} is not minute, hour, day or a duration such as 5m"
        ) from None
    if seconds < 1:
        raise ConfigError(f"--by: {text!r} is shorter than a second")
    return seconds


def step_name(seconds: float) -> str:
    """``hour`` and ``day`` by name, other steps as durations: ``5m``."""
    for name, step in STEP_NAMES.items():
        if seconds == step and name != "minute":
            return name
    return format_duration(seconds)


def check_step(start: datetime, end: datetime, step: float) -> None:
    buckets = (end - start).total_seconds() / step
    if buckets > MAX_BUCKETS:
        raise ConfigError(
            f"--by {step_name(step)}: {buckets:.0f} buckets over the period, more than "
            f"{MAX_BUCKETS}; choose a longer step"
        )


def default_step(start: datetime, end: datetime) -> float:
    """The bucket a chart uses when ``--by`` was not given, in seconds."""
    span = (end - start).total_seconds()
    fitting = [step for step in CHART_STEPS if span / step >= MIN_POINTS]
    return fitting[-1] if fitting else CHART_STEPS[0]
