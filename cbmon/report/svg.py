"""Small inline SVG charts: lines or bars over equally spaced time buckets, with threshold lines.

Written by hand so the HTML report is one file that opens anywhere, offline, with no script.
Each series is a ``<g class="series" data-series="NAME">`` and each threshold a
``<line class="threshold" data-threshold="NAME">``, so a reader (or a test) can find them.

Text never collides: threshold labels are spread apart when their lines are close
(:func:`spread`), time labels are thinned to fit their slots, log-scale ticks to the room a
decade has, and the legend wraps. Widths of text are estimated from the font size
(:func:`text_width`, generous on purpose); the tests measure them in a real browser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from cbmon.durations import format_duration

WIDTH, HEIGHT = 860, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 160, 50, 62
TICK_FONT, LEGEND_FONT = 11, 12
LINE_GAP = 14  # pixels between the baselines of two labels that must not touch
_CHAR = 0.62  # average width of a character of the UI sans-serif, as a share of its size


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str
    kind: str = "line"  # or "bar"
    width: float = 2.0  # stroke width of a line


@dataclass(frozen=True)
class Threshold:
    name: str
    label: str
    value: float
    color: str


@dataclass(frozen=True)
class Axis:
    """The time axis: each bucket's start (UTC) and the step between them, in seconds."""

    starts: Sequence[datetime]
    step: float


def text_width(text: str, size: float) -> float:
    """A generous estimate of the width ``text`` takes at ``size`` pixels."""
    return len(text) * size * _CHAR + 2


def nice_step(span: float, count: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten step giving about ``count`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def spread(wanted: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Positions for labels that want to sit at ``wanted``: at least ``gap`` apart, within
    ``[low, high]``, each group of crowded labels centred on where its members want to be.

    Labels keep their order. If they cannot all fit, they are spaced evenly over the range.
    """
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    result = [0.0] * len(wanted)
    if gap * (len(wanted) - 1) > high - low:
        step = (high - low) / max(1, len(wanted) - 1)
        for rank, index in enumerate(order):
            result[index] = low + rank * step
        return result

    def top_of(members: list[float]) -> float:
        first = sum(members) / len(members) - gap * (len(members) - 1) / 2
        return min(max(first, low), high - gap * (len(members) - 1))

    clusters: list[list[float]] = []  # the wanted positions of each crowd, in order
    tops: list[float] = []
    for index in order:
        clusters.append([wanted[index]])
        tops.append(top_of(clusters[-1]))
        while len(clusters) > 1 and tops[-2] + gap * len(clusters[-2]) > tops[-1]:
            merged = clusters[-2] + clusters[-1]
            clusters[-2:] = [merged]
            tops[-2:] = [top_of(merged)]
    ranks = iter(order)
    for members, top in zip(clusters, tops, strict=True):
        for offset in range(len(members)):
            result[next(ranks)] = top + offset * gap
    return result


# -- scales ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    lo: float
    hi: float
    ticks: tuple[float, ...]
    log: bool

    def position(self, value: float, top: float, height: float) -> float:
        if self.log:
            value = math.log10(max(value, 10**self.lo))
        share = (value - self.lo) / (self.hi - self.lo)
        return top + height * (1 - min(max(share, -0.02), 1.02))

    def shows(self, value: float) -> bool:
        value = math.log10(value) if self.log and value > 0 else value
        return self.lo <= value <= self.hi


def _linear(
    values: Sequence[float], floor: float | None, ceiling: float | None, whole: bool
) -> _Scale:
    """The y range on whole steps; ``floor`` is always shown, ``ceiling`` caps the range
    (a success rate never needs room above 100 %); ``whole``: counts, ticked at integers."""
    lo = min(values) if values else 0.0
    hi = max(values) if values else 1.0
    if floor is not None:
        lo = min(lo, floor)
    if hi == lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    step = max(1.0, nice_step(hi - lo)) if whole else nice_step(hi - lo)
    lo = math.floor(lo / step) * step
    top = math.ceil(hi / step) * step
    if ceiling is not None and hi <= ceiling:
        top = min(top, ceiling)
    ticks = tuple(lo + i * step for i in range(round((top - lo) / step) + 1))
    return _Scale(lo, top, ticks, log=False)


def _marks(low: int, high: int) -> list[float]:
    """1, 2 and 5 times each power of ten from ``10**low`` to ``10**high``."""
    return [m * 10.0**d for d in range(low, high + 1) for m in (1, 2, 5)]


def _logarithmic(values: Sequence[float], height: float) -> _Scale:
    """From the 1-2-5 mark at or below the least positive value to the one at or above the
    greatest; ticks at 1, 2 and 5 of each decade when a decade has room for them, else at
    each decade, or at every other one."""
    positive = [v for v in values if v > 0] or [1.0]
    least, most = min(positive), max(positive)
    marks = _marks(math.floor(math.log10(least)), math.ceil(math.log10(most)))
    bottom = max((m for m in marks if m <= least), default=marks[0])
    top = min((m for m in marks if m >= most), default=marks[-1])
    if top <= bottom:
        top = bottom * 10
    lo, hi = math.log10(bottom), math.log10(top)
    per_decade = height / (hi - lo)
    if per_decade * math.log10(2.5) >= LINE_GAP:
        ticks = [m for m in marks if bottom <= m <= top]
    else:
        every = 1 if per_decade >= LINE_GAP else 2
        decades = range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)
        ticks = [10.0**d for d in decades if (d - math.ceil(lo - 1e-9)) % every == 0]
    return _Scale(lo, hi, tuple(ticks), log=True)


# -- the chart ---------------------------------------------------------------------------------


def chart(
    title: str,
    axis: Axis,
    series: Sequence[Series],
    thresholds: Sequence[Threshold] = (),
    *,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
    floor: float | None = None,
    ceiling: float | None = None,
    log: bool = False,
    whole: bool = False,
) -> str:
    """An SVG chart of ``series`` over the buckets of ``axis`` (one value per bucket):
    on a ``log`` scale, or a linear one (ticks at integers for ``whole`` counts)."""
    points = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    limits = [t.value for t in thresholds]
    scale = (
        _logarithmic([*points, *limits], plot_h)
        if log
        else _linear([*points, *limits], floor, ceiling, whole)
    )
    count = max(len(axis.starts), 1)
    slot = plot_w / count

    def x(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    def y(value: float) -> float:
        return scale.position(value, TOP, plot_h)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="20" class="chart-title" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    out += _y_axis(scale, y, y_format, plot_w)
    out += _x_axis(axis, x, slot, plot_w)
    bars = [s for s in series if s.kind == "bar"]
    base = scale.lo if log else max(scale.lo, 0.0)
    for position, item in enumerate(bars):
        out.append(_bars(item, position, len(bars), slot, x, y, base))
    out += [_line(item, x, y) for item in series if item.kind != "bar"]
    shown = [item for item in thresholds if scale.shows(item.value)]
    out += _thresholds(shown, y, plot_w, plot_h)
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def _text(x: float, y: float, text: str, css: str, size: int, anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{css}" '
        f'font-size="{size}">{escape(text)}</text>'
    )


def _y_axis(
    scale: _Scale, y: Callable[[float], float], y_format: Callable[[float], str], plot_w: float
) -> list[str]:
    out = []
    for value in scale.ticks:
        pos = y(value)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{pos:.1f}" y2="{pos:.1f}" '
            f'class="grid" stroke="#eaeef2"/>'
            + _text(LEFT - 6, pos + 4, y_format(value), "tick", TICK_FONT, "end")
        )
    return out


def _clock(start: datetime, step: float) -> str:
    if step >= 86400:
        return ""
    return f"{start:%H:%M:%S}" if step < 60 or start.second else f"{start:%H:%M}"


# Spacings between time labels, in seconds: round steps of the clock and the calendar.
_LABEL_SPACINGS = (
    *(1, 2, 5, 10, 15, 30),
    *(60, 120, 300, 600, 900, 1800),
    *(3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600),
    *(86400, 2 * 86400, 7 * 86400, 14 * 86400),
)


def _multiple(value: float, of: float) -> bool:
    return abs(value / of - round(value / of)) < 1e-6


def label_positions(axis: Axis, every: int) -> list[int]:
    """The buckets to label, at least ``every`` apart: those starting on a round time (every
    15 minutes, 6 hours, 2 days...) when the step allows, else every ``every``-th one."""
    needed = every * axis.step
    for spacing in _LABEL_SPACINGS:
        if spacing >= needed and _multiple(spacing, axis.step):
            found = [i for i, s in enumerate(axis.starts) if _multiple(s.timestamp(), spacing)]
            if found:
                return found
    return list(range(0, len(axis.starts), every))


def time_labels(axis: Axis, positions: Sequence[int] | None = None) -> list[tuple[int, str, str]]:
    """The labels of the buckets at ``positions`` (all by default): the index, the time of
    day (empty for daily steps) and the date, given on the first label and wherever the day
    changes."""
    shown = []
    previous = None
    for index in range(len(axis.starts)) if positions is None else positions:
        start = axis.starts[index]
        date = f"{start:%b} {start.day}" if start.date() != previous else ""
        shown.append((index, _clock(start, axis.step), date))
        previous = start.date()
    return shown


def _years(axis: Axis) -> str:
    years = sorted({start.year for start in axis.starts})
    return "" if not years else f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]}"


def _x_axis(axis: Axis, x: Callable[[int], float], slot: float, plot_w: float) -> list[str]:
    """Time labels under the plot, thinned so none touches the next; the date under the
    first label and wherever the day changes; the zone and the year said once, below."""
    candidates = time_labels(axis)
    widest = max(
        (max(text_width(t, TICK_FONT), text_width(d, TICK_FONT)) for _, t, d in candidates),
        default=0.0,
    )
    every = max(1, math.ceil((widest + 8) / slot))
    bottom = HEIGHT - BOTTOM
    out = []
    for index, time, date in time_labels(axis, label_positions(axis, every)):
        # A bucket's label stands at its start; its point or bar in the middle of its slot.
        at = x(index) - slot / 2
        out.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{bottom}" y2="{bottom + 4}" '
            'class="tick-mark" stroke="#8c959f"/>'
        )
        out.append(_text(at, bottom + 18, time or date, "tick", TICK_FONT, "middle"))
        if time and date:
            out.append(_text(at, bottom + 32, date, "tick date", TICK_FONT, "middle"))
    step = format_duration(axis.step)
    caption = (
        f"time (UTC, {_years(axis)}); a point or bar covers the {step} "
        "that start at the tick on its left"
    )
    out.append(_text(LEFT + plot_w / 2, bottom + 50, caption, "axis-caption", TICK_FONT, "middle"))
    return out


def _line(item: Series, x: Callable[[int], float], y: Callable[[float], float]) -> str:
    """A path broken where a bucket has no value; lone points get a dot so they show."""
    commands, dots, previous = [], [], False
    values = list(item.values)
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            previous = False
            continue
        commands.append(f"{'L' if previous else 'M'}{x(index):.1f},{y(value):.1f}")
        has_next = index + 1 < len(values) and values[index + 1] is not None
        if not previous and not has_next:
            dots.append(f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="3"/>')
        previous = True
    path = (
        f'<path d="{" ".join(commands)}" fill="none" stroke-width="{item.width:g}" '
        'stroke-linejoin="round"/>'
        if commands
        else ""
    )
    return (
        f'<g class="series" data-series="{escape(item.name)}" stroke="{item.color}" '
        f'fill="{item.color}">{path}{"".join(dots)}</g>'
    )


def _bars(
    item: Series,
    position: int,
    count: int,
    slot: float,
    x: Callable[[int], float],
    y: Callable[[float], float],
    base: float,
) -> str:
    width = slot * 0.8 / max(count, 1)
    rects = []
    for index, value in enumerate(item.values):
        if value is None or not math.isfinite(value) or value <= base:
            continue
        left = x(index) - slot * 0.4 + width * position
        top = y(value)
        rects.append(
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{y(base) - top:.1f}"><title>{value:g}</title></rect>'
        )
    return (
        f'<g class="series" data-series="{escape(item.name)}" fill="{item.color}">'
        f"{''.join(rects)}</g>"
    )


def _thresholds(
    items: Sequence[Threshold], y: Callable[[float], float], plot_w: float, plot_h: float
) -> list[str]:
    """Dashed lines across the plot, each labelled on the right; labels of close lines are
    spread apart, with a short leader from the line to its moved label."""
    lines = [y(item.value) for item in items]
    # A label's text is centred on its position (baseline 4 px below).
    places = spread(lines, LINE_GAP, TOP, TOP + plot_h)
    right = LEFT + plot_w
    out = []
    for item, pos, place in zip(items, lines, places, strict=True):
        out.append(
            f'<line class="threshold" data-threshold="{escape(item.name)}" x1="{LEFT}" '
            f'x2="{right}" y1="{pos:.1f}" y2="{pos:.1f}" stroke="{item.color}" '
            f'stroke-dasharray="6 4"/>'
        )
        if abs(place - pos) > 0.5:
            out.append(
                f'<polyline points="{right:.1f},{pos:.1f} {right + 4:.1f},{place:.1f} '
                f'{right + 8:.1f},{place:.1f}" fill="none" stroke="{item.color}"/>'
            )
        out.append(
            f'<text x="{right + 10:.1f}" y="{place + 4:.1f}" class="threshold-label" '
            f'font-size="{TICK_FONT}" fill="{item.color}">{escape(item.label)}</text>'
        )
    return out


def _legend(series: Sequence[Series]) -> list[str]:
    """Swatches under the title, wrapping to another row before the chart's edge."""
    out, left, row = [], float(LEFT), 0
    for item in series:
        width = 16 + text_width(item.name, LEGEND_FONT) + 14
        if left + width > WIDTH - 8 and left > LEFT:
            left, row = float(LEFT), row + 1
        top = 28 + row * 16
        swatch = (
            f'<rect x="{left:.0f}" y="{top + 4}" width="12" height="4" fill="{item.color}"/>'
            if item.kind == "line"
            else f'<rect x="{left:.0f}" y="{top}" width="12" height="12" fill="{item.color}"/>'
        )
        out.append(
            swatch + f'<text x="{left + 16:.0f}" y="{top + 10}" class="legend" '
            f'font-size="{LEGEND_FONT}">{escape(item.name)}</text>'
        )
        left += width
    return out
