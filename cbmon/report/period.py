"""Turning ``--since``, ``--from`` and ``--to`` into the period a report covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cbmon.errors import ConfigError

DEFAULT_SINCE = 24 * 3600.0
# Beyond this span an hourly series has too many points to read; days are the natural step.
_HOURLY_SPAN = timedelta(days=3)


@dataclass(frozen=True)
class PeriodRequest:
    """What the user asked for; resolved against the database's clock by :func:`resolve`."""

    since: float | None = None
    start: datetime | None = None
    end: datetime | None = None


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
    if start >= end:
        # Only a given --from can reach this: --since is above 0.
        until = "--to" if request.end is not None else "now"
        raise ConfigError(f"--from {start.isoformat()} is not before {until} ({end.isoformat()})")
    return start.astimezone(UTC), end.astimezone(UTC)


def default_step(start: datetime, end: datetime) -> str:
    """The bucket a chart uses when ``--by`` was not given."""
    return "hour" if end - start <= _HOURLY_SPAN else "day"
