"""Durations are written the Prometheus way, read back exactly, and anything else is refused."""

from __future__ import annotations

import pytest

from cbmon.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5),
        ("1m", 60),
        ("24h", 86400),
        ("1h30m", 5400),
        ("0", 0),
        ("2d", 172800),
        ("1w", 604800),
        ("1m500ms", 60.5),
    ],
)
def test_durations_are_written_the_prometheus_way(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5s", "5 s", "-1s", "1x", "s", "1s1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-3, "0s"),
        (0.15, "150ms"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (4 * 3600, "4h"),
        (86400 + 1.5, "1d1s500ms"),
        (8 * 86400, "1w1d"),
        (366 * 86400, "1y1d"),
    ],
)
def test_durations_are_shown_in_the_largest_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_surrounding_spaces_are_forgiven() -> None:
    assert parse_duration(" 5m\n") == 300
