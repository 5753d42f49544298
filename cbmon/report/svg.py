"""Small inline SVG charts: lines or bars over equally spaced buckets, with threshold lines.

Written by hand so the HTML report is one file that opens anywhere, offline, with no script.
Each series is a ``<g class="series" data-series="NAME">`` and each threshold a
``<line class="threshold" data-threshold="NAME">``, so a reader (or a test) can find them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 860, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 50, 42


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str
    kind: str = "line"  # or "bar"


@dataclass(frozen=True)
class Threshold:
    name: str
    label: str
    value: float
    color: str


def nice_step(span: float, count: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten step giving about ``count`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _bounds(
    values: Sequence[float], floor: float | None, ceiling: float | None
) -> tuple[float, float, float]:
    """The y range on whole steps; ``floor`` is always shown, ``ceiling`` caps the range
    (a success rate never needs room above 100 %)."""
    lo = min(values) if values else 0.0
    hi = max(values) if values else 1.0
    if floor is not None:
        lo = min(lo, floor)
    if hi == lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    step = nice_step(hi - lo)
    lo = math.floor(lo / step) * step
    top = math.ceil(hi / step) * step
    if ceiling is not None and hi <= ceiling:
        top = min(top, ceiling)
    return lo, top, step


def chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    thresholds: Sequence[Threshold] = (),
    *,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
    floor: float | None = None,
    ceiling: float | None = None,
) -> str:
    """An SVG chart of ``series`` over ``labels`` (one label per bucket)."""
    points = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    lo, hi, step = _bounds([*points, *(t.value for t in thresholds)], floor, ceiling)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(labels), 1)
    slot = plot_w / count

    def x(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="20" class="chart-title" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    out += _axes(lo, hi, step, y, y_format, labels, x, plot_w)
    bars = [s for s in series if s.kind == "bar"]
    for position, item in enumerate(bars):
        out.append(_bars(item, position, len(bars), slot, x, y, max(lo, 0.0)))
    out += [_line(item, x, y) for item in series if item.kind != "bar"]
    out += [_threshold(item, y, plot_w) for item in thresholds if lo <= item.value <= hi]
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def _axes(
    lo: float,
    hi: float,
    step: float,
    y: Callable[[float], float],
    y_format: Callable[[float], str],
    labels: Sequence[str],
    x: Callable[[int], float],
    plot_w: float,
) -> list[str]:
    out = []
    ticks = round((hi - lo) / step)
    for i in range(ticks + 1):
        value = lo + i * step
        pos = y(value)
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{pos:.1f}" y2="{pos:.1f}" '
            f'class="grid" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 6}" y="{pos + 4:.1f}" text-anchor="end" class="tick" font-size="11">'
            f"{escape(y_format(value))}</text>"
        )
    every = max(1, math.ceil(len(labels) / 8))
    for index, label in enumerate(labels):
        if index % every == 0:
            out.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" '
                f'class="tick" font-size="11">{escape(label)}</text>'
            )
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
    path = f'<path d="{" ".join(commands)}" fill="none" stroke-width="2"/>' if commands else ""
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


def _threshold(item: Threshold, y: Callable[[float], float], plot_w: float) -> str:
    pos = y(item.value)
    return (
        f'<line class="threshold" data-threshold="{escape(item.name)}" x1="{LEFT}" '
        f'x2="{LEFT + plot_w}" y1="{pos:.1f}" y2="{pos:.1f}" stroke="{item.color}" '
        f'stroke-dasharray="6 4"/>'
        f'<text x="{LEFT + plot_w + 6}" y="{pos + 4:.1f}" class="threshold-label" '
        f'font-size="11" fill="{item.color}">{escape(item.label)}</text>'
    )


def _legend(series: Sequence[Series]) -> list[str]:
    """One row of swatches under the title."""
    out, left = [], float(LEFT)
    for item in series:
        out.append(
            f'<rect x="{left:.0f}" y="28" width="12" height="12" fill="{item.color}"/>'
            f'<text x="{left + 16:.0f}" y="38" class="legend" font-size="12">'
            f"{escape(item.name)}</text>"
        )
        left += 16 + 7.5 * len(item.name) + 18
    return out
