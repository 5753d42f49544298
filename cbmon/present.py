"""How cbmon shows values to people, in every screen: the words and colours of a level, the
formats of ratios and durations, and text tables. One place, so that ``cbmon check``, the
report, the demo and the alerts never disagree on how 99.5 % or "critical" looks.

No I/O: functions take values and return text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import TextIO

from cbmon.domain import Level
from cbmon.durations import format_duration

MISSING = "-"

# A problem is written in capitals so it stands out in a column of "ok".
_WORDS = {Level.OK: "ok", Level.WARNING: "WARNING", Level.CRITICAL: "CRITICAL"}
# ANSI SGR codes for a terminal, and colours for HTML (readable on white, GitHub's palette).
_ANSI = {Level.OK: "32", Level.WARNING: "33", Level.CRITICAL: "1;31", Level.UNKNOWN: "2"}
HTML_COLOURS = {
    Level.OK: "#1a7f37",
    Level.WARNING: "#9a6700",
    Level.CRITICAL: "#cf222e",
    Level.UNKNOWN: "#6e7781",
}


def level_word(level: Level, unknown: str = MISSING) -> str:
    """``ok``, ``WARNING``, ``CRITICAL``, or ``unknown`` (``-`` unless told) when not judged."""
    return _WORDS.get(level, unknown)


def colour(text: str, level: Level, enabled: bool) -> str:
    """``text`` in the level's terminal colour when ``enabled``."""
    return f"\x1b[{_ANSI[level]}m{text}\x1b[0m" if enabled else text


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set (no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _shown(value: float, digits: int, boundaries: Iterable[float]) -> str:
    """``value`` with ``digits`` decimals, or more when fewer would print a boundary it is not
    at: 598 of 601 is 99.5008 %, shown 99.501 %, never 99.50 %, which is a warning."""
    text = f"{value:.{digits}f}"
    for places in range(digits, digits + 6):
        text = f"{value:.{places}f}"
        near = [b for b in boundaries if text == f"{b:.{places}f}" and value != b]
        if not near:
            return text
    # Closer to a boundary than any sensible number of decimals: say which side it is on.
    return ("<" if value < near[0] else ">") + text


def percent(ratio: float | None, digits: int = 2, boundaries: Iterable[float] = ()) -> str:
    """A ratio 0..1 as a percentage: ``99.50%``. ``boundaries`` are ratios it must not seem
    to equal unless it does."""
    if ratio is None or math.isnan(ratio):
        return MISSING
    return _shown(ratio * 100, digits, [b * 100 for b in boundaries]) + "%"


def millis(seconds: float | None, digits: int = 0, boundaries: Iterable[float] = ()) -> str:
    """A duration in seconds as milliseconds: ``150 ms``. ``boundaries`` in seconds."""
    if seconds is None or math.isnan(seconds):
        return MISSING
    return _shown(seconds * 1000, digits, [b * 1000 for b in boundaries]) + " ms"


def count(value: float | None) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.0f}"


def age(seconds: float | None) -> str:
    """A duration to the second, the Prometheus way: ``2m5s``."""
    return MISSING if seconds is None or math.isnan(seconds) else format_duration(round(seconds))


def slo_value(slo: str, value: float | None, boundaries: Iterable[float] = ()) -> str:
    """An indicator's value in its unit: ratios as percentages, latencies in milliseconds,
    the time since the last attempt as a duration, anything else as a count."""
    if slo in ("success_rate", "slow_share"):
        return percent(value, boundaries=boundaries)
    if slo in ("avg_latency", "p95_latency"):
        return millis(value, boundaries=boundaries)
    if slo == "last_attempt_age":
        return age(value)
    return count(value)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Iterable[int] = (0,)
) -> list[str]:
    """Aligned columns: text left, numbers right so their digits line up."""
    left = set(text_columns)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in (headers, *rows):
        parts = [
            cell.ljust(width) if index in left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Iterable[int] = (0,)
) -> list[str]:
    """A GitHub-flavoured Markdown table, numbers right-aligned, cells escaped."""
    left = set(text_columns)
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join(":---" if i in left else "---:" for i in range(len(headers))) + "|")
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
