"""How cbmon shows values to people, in every screen: the words and colours of a level, the
formats of ratios and durations, and text tables. One place, so that ``cbmon check``, the
report, the demo and the alerts never disagree on how 99.5 % or "critical" looks.

No I/O: functions take values and return text.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import TextIO

from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo.objectives import AVG_LATENCY, BY_SLO, SUCCESS_RATE, Baseline, Limits, Unit

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
    at: 598 of 601 is 99.5008 %, shown 99.501 %, never 99.50 %, which is a warning. A value
    that is not zero is never shown as zero (a limit of 0.0001 % is not "0.00%")."""
    text = f"{value:.{digits}f}"
    for places in range(digits, digits + 6):
        text = f"{value:.{places}f}"
        near = [b for b in boundaries if text == f"{b:.{places}f}" and value != b]
        if value != 0 and float(text) == 0:
            continue
        if not near:
            return text
    if not near:  # closer to zero than any sensible number of decimals
        least = f"{10.0 ** -(digits + 5):.{digits + 5}f}"
        return "<" + least if value > 0 else ">-" + least
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


def number(value: float | None, digits: int = 1, boundaries: Iterable[float] = ()) -> str:
    """A bare number (the column header gives the unit), boundary-honest like the others."""
    if value is None or math.isnan(value):
        return MISSING
    return _shown(value, digits, boundaries)


def count(value: float | None) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.0f}"


def age(seconds: float | None) -> str:
    """A duration to the second, the Prometheus way: ``2m5s``."""
    return MISSING if seconds is None or math.isnan(seconds) else format_duration(round(seconds))


def period(seconds: float) -> str:
    """An objective's period: in days when it is whole days (``30d``, not ``4w2d``)."""
    days, rest = divmod(seconds, 86400.0)
    return f"{days:.0f}d" if days and not rest else format_duration(seconds)


def in_unit(
    unit: Unit, value: float | None, boundaries: Iterable[float] = (), digits: int | None = None
) -> str:
    """A value in its unit: ratios as percentages, seconds in milliseconds, an age as a
    duration, items as a count; ``digits`` decimals at least (2 and 0 unless told)."""
    if unit == "ratio":
        return percent(value, 2 if digits is None else digits, boundaries)
    if unit == "seconds":
        return millis(value, 0 if digits is None else digits, boundaries)
    if unit == "age":
        return age(value)
    return count(value)


def boundaries(limits: Limits | None) -> tuple[float, ...]:
    """The thresholds a shown value must not seem to sit on unless it does."""
    if limits is None:
        return ()
    return (limits.normal,) if limits.alert is None else (limits.normal, limits.alert)


def slo_value(
    slo: str, value: float | None, limits: Limits | None = None, digits: int | None = None
) -> str:
    """An indicator's value in its unit (:mod:`cbmon.slo.objectives`), never seeming to sit on
    one of its ``limits`` unless it does."""
    return in_unit(BY_SLO[slo].unit, value, boundaries(limits), digits)


def success_rate(ratio: float | None, baseline: Baseline, digits: int = 2) -> str:
    """A success rate judged against ``baseline``: ``99.501%`` for 598 of 601."""
    return percent(ratio, digits, boundaries(baseline.limit(SUCCESS_RATE.slo)))


def avg_latency(seconds: float | None, baseline: Baseline, digits: int = 0) -> str:
    """An average latency judged against ``baseline``: ``149.6 ms``, never ``150 ms``."""
    return millis(seconds, digits, boundaries(baseline.limit(AVG_LATENCY.slo)))


def avg_ms(milliseconds: float | None, baseline: Baseline, digits: int = 1) -> str:
    """An average latency in milliseconds as a bare number, for a column headed ``ms``."""
    limits = [limit * 1000 for limit in boundaries(baseline.limit(AVG_LATENCY.slo))]
    return number(milliseconds, digits, limits)


# -- terminal text: widths that ignore colour codes, lines cut or wrapped by design ----------

_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ELLIPSIS = "\u2026"


def plain(text: str) -> str:
    """``text`` without its terminal colour codes."""
    return _ANSI_CODE.sub("", text)


def visible_len(text: str) -> int:
    """The columns ``text`` takes on a terminal (colour codes take none)."""
    return len(plain(text))


def ellipsis_for(stream: TextIO) -> str:
    """``…`` where the stream can write it, ``...`` elsewhere (a Latin-1 terminal)."""
    encoding = getattr(stream, "encoding", None)
    if encoding is None:
        return ELLIPSIS  # text kept in memory holds any character
    try:
        ELLIPSIS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "..."
    return ELLIPSIS


def fit(text: str, width: int, ellipsis: str = ELLIPSIS) -> str:
    """``text`` cut to ``width`` columns, ending in ``ellipsis`` when something was cut.

    Colour codes are kept and never cut in half; a cut line ends with a colour reset.
    """
    if visible_len(text) <= width:
        return text
    room = max(0, width - len(ellipsis))
    out, used, position = [], 0, 0
    for match in _ANSI_CODE.finditer(text):
        chunk = text[position : match.start()]
        if used + len(chunk) >= room:  # the cut falls in this stretch of text
            break
        out += [chunk, match.group()]
        used += len(chunk)
        position = match.end()
    out.append(text[position : position + room - used])
    coloured = _ANSI_CODE.search(text) is not None
    return "".join(out) + ellipsis[:width] + ("\x1b[0m" if coloured else "")


_NUMBER_AND_UNIT = re.compile(r"(\d) (ms|s)\b")


def wrap(text: str, width: int, indent: str = "    ", ellipsis: str = ELLIPSIS) -> list[str]:
    """Plain ``text`` in lines of at most ``width`` columns, broken between words (never
    between a number and its unit); the lines after the first are indented. A word longer
    than a whole line is cut with ``ellipsis``."""
    kept = _NUMBER_AND_UNIT.sub("\\1\u00a0\\2", text)  # a no-break space holds them together
    lines = textwrap.wrap(
        kept,
        width=max(width, len(indent) + 1),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [fit(line.replace("\u00a0", " "), width, ellipsis) for line in lines] or [""]


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    text_columns: Iterable[int] = (0,),
    min_widths: Sequence[int] = (),
) -> list[str]:
    """Aligned columns: text left, numbers right so their digits line up. Cells may hold
    colour codes: alignment counts the columns a terminal shows. ``min_widths`` keeps columns
    from shifting when a table is redrawn with other values."""
    left = set(text_columns)
    widths = [
        max(visible_len(cell) for cell in column) for column in zip(headers, *rows, strict=True)
    ]
    for index, minimum in enumerate(min_widths):
        widths[index] = max(widths[index], minimum)
    lines = []
    for cells in (headers, *rows):
        parts = []
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            pad = " " * (width - visible_len(cell))
            parts.append(cell + pad if index in left else pad + cell)
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
