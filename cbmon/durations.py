"""Durations written the Prometheus way: ``500ms``, ``5s``, ``1m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_PATTERN = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


MAX_SECONDS = 100 * 365 * 86400.0  # 100y: beyond it, dates and timers overflow


def parse_duration(text: str) -> float:
    """Return the number of seconds ``text`` stands for, or raise ``ValueError``.

    ``0`` alone is accepted, as Prometheus does; any other value needs a unit. Nothing longer
    than 100 years is a duration anyone means.
    """
    text = text.strip()
    if text == "0":
        return 0.0
    match = _PATTERN.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(
            f"{text!r} is not a duration; write it the Prometheus way, e.g. 500ms, 5s, 1m, 24h"
        )
    if len(text) > 64:
        raise ValueError(f"{text[:20]!r}... is too long for a duration")
    seconds = sum(
        int(amount) * factor
        for amount, (_, factor) in zip(match.groups(), _UNITS, strict=True)
        if amount is not None
    )
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than 100y")
    return seconds


def format_duration(seconds: float) -> str:
    """Write ``seconds`` back the Prometheus way, the inverse of :func:`parse_duration`."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    parts: list[str] = []
    for unit, factor in _UNITS:
        size = round(factor * 1000)
        if millis >= size:
            count, millis = divmod(millis, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)
