"""The HTML report's charts as geometry: labels that never collide, dates and the zone on the
time axis, log-scale ticks with room between them. Boxes are estimated here from the font
size; tests/e2e/test_report_browser.py measures the same in a real browser."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cbmon.report import svg

START = datetime(2026, 12, 1, 13, tzinfo=UTC)
TEXT = re.compile(
    r'<text x="(?P<x>[-\d.]+)" y="(?P<y>[-\d.]+)"(?: text-anchor="(?P<anchor>\w+)")?'
    r'[^>]*font-size="(?P<size>\d+)"[^>]*>(?P<text>[^<]*)</text>'
)


def boxes(chart: str) -> list[tuple[str, float, float, float, float]]:
    """Each text's estimated box: (text, left, top, right, bottom)."""
    found = []
    for m in TEXT.finditer(chart):
        size, width = float(m["size"]), svg.text_width(m["text"], float(m["size"]))
        x, y = float(m["x"]), float(m["y"])
        left = {"middle": x - width / 2, "end": x - width}.get(m["anchor"] or "start", x)
        found.append((m["text"], left, y - size * 0.8, left + width, y + size * 0.2))
    return found


def overlaps(chart: str) -> list[tuple[str, str]]:
    items = boxes(chart)
    return [
        (a[0], b[0])
        for i, a in enumerate(items)
        for b in items[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


def hourly(hours: int, step: float = 3600.0) -> svg.Axis:
    return svg.Axis([START + timedelta(seconds=step * i) for i in range(hours)], step)


def latency_chart(axis: svg.Axis, values: list[float | None]) -> str:
    return svg.chart(
        "Latency per hour (ms, log scale, all event types)",
        axis,
        [
            svg.Series("avg", values, "#8250df"),
            svg.Series("p99", [None if v is None else v * 20 for v in values], "#0a3069"),
        ],
        [
            svg.Threshold("normal", "avg ok < 150 ms", 150, "#9a6700"),
            svg.Threshold("slow", "slow > 200 ms", 200, "#6e7781"),
            svg.Threshold("alert", "avg critical > 500 ms", 500, "#cf222e"),
        ],
        log=True,
    )


@pytest.mark.parametrize("hours", [1, 2, 24, 72, 24 * 31])
def test_no_two_texts_of_a_chart_overlap(hours: int) -> None:
    values: list[float | None] = [40.0 + (i % 7) * 30 for i in range(hours)]
    assert overlaps(latency_chart(hourly(hours), values)) == []


def test_close_threshold_labels_are_spread_with_a_leader() -> None:
    chart = latency_chart(hourly(24), [1.0] * 24)  # 1 to 500 ms: 150 and 200 lie close
    right = svg.WIDTH - svg.RIGHT
    labels = {b[0]: b for b in boxes(chart) if b[0].startswith(("avg", "slow")) and b[1] > right}
    ys = sorted(b[2] for b in labels.values())
    assert len(ys) == 3
    assert min(b - a for a, b in itertools.pairwise(ys)) >= svg.LINE_GAP - 0.01
    assert "<polyline" in chart  # a moved label points back at its line


def test_the_time_axis_says_the_date_and_utc() -> None:
    """A 24-hour report from 13:00 to 13:00 must not read "13:00 ... 13:00"."""
    chart = latency_chart(hourly(25), [50.0] * 25)
    texts = [b[0] for b in boxes(chart)]
    clocks = [t for t in texts if re.fullmatch(r"\d\d:\d\d", t)]
    assert clocks[:3] == ["14:00", "16:00", "18:00"]  # on round hours, thinned to fit
    assert "Dec 1" in texts
    assert "Dec 2" in texts  # the day changes at midnight, and the axis says so
    assert any("UTC" in text and "2026" in text for text in texts)


def test_daily_steps_are_labelled_by_date() -> None:
    labels = svg.time_labels(svg.Axis([START + timedelta(days=d) for d in range(3)], 86400))
    assert labels == [(0, "", "Dec 1"), (1, "", "Dec 2"), (2, "", "Dec 3")]


def test_labels_stand_on_round_times() -> None:
    axis = svg.Axis([START + timedelta(minutes=7 + i) for i in range(180)], 60.0)
    shown = svg.label_positions(axis, 11)  # 11 minutes apart at least: every 15 minutes
    assert [axis.starts[i].strftime("%H:%M") for i in shown][:3] == ["13:15", "13:30", "13:45"]
    odd = svg.Axis([START + timedelta(minutes=7 * i) for i in range(20)], 420.0)
    assert svg.label_positions(odd, 3) == list(range(0, 20, 3))  # 7m steps: every third


def test_five_minute_steps_are_labelled_by_the_clock() -> None:
    labels = svg.time_labels(hourly(12, 300.0))
    assert [time for _, time, _ in labels][:3] == ["13:00", "13:05", "13:10"]
    assert [date for _, _, date in labels if date] == ["Dec 1"]


def test_log_scale_ticks_have_room_and_cover_the_values() -> None:
    chart = latency_chart(hourly(10), [0.5, 2.0, 30.0, 400.0, 9000.0, 5.0, 50, 80, 90, 100])
    ticks = sorted(
        float(b[2]) for b in boxes(chart) if re.fullmatch(r"[\d.]+", b[0]) and b[1] < svg.LEFT
    )
    assert len(ticks) >= 3
    assert min(b - a for a, b in itertools.pairwise(ticks)) >= svg.LINE_GAP - 0.01
    labels = [b[0] for b in boxes(chart) if b[1] < svg.LEFT and re.fullmatch(r"[\d.]+", b[0])]
    assert float(labels[0]) <= 1  # the scale reaches down to the lowest value's decade
    path = re.search(r'data-series="p99".*?d="([^"]+)"', chart)
    assert path is not None
    ys = [float(point.split(",")[1]) for point in path.group(1).split()]
    assert min(ys) >= svg.TOP
    assert max(ys) <= svg.HEIGHT - svg.BOTTOM


def test_a_lone_value_on_a_log_scale_and_zero_do_not_break_the_scale() -> None:
    chart = latency_chart(hourly(3), [0.0, None, 120.0])
    assert "nan" not in chart.lower()
    assert "inf" not in chart.lower()


def test_the_legend_wraps_before_the_edge() -> None:
    series = [svg.Series(f"series number {i}", [1.0], "#000") for i in range(12)]
    chart = svg.chart("t", hourly(1), series)
    legend = [b for b in boxes(chart) if b[0].startswith("series number")]
    assert max(b[3] for b in legend) <= svg.WIDTH
    assert overlaps(chart) == []


@given(
    st.lists(st.floats(min_value=0, max_value=300), min_size=1, max_size=8),
    st.floats(min_value=5, max_value=20),
)
def test_spread_keeps_order_and_gaps_within_the_range(wanted: list[float], gap: float) -> None:
    low, high = 0.0, 300.0
    placed = svg.spread(wanted, gap, low, high)
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    positions = [placed[i] for i in order]
    assert all(low - 1e-9 <= p <= high + 1e-9 for p in positions)
    fits = gap * (len(wanted) - 1) <= high - low
    for a, b in itertools.pairwise(positions):
        assert b - a >= (gap if fits else (high - low) / (len(wanted) - 1)) - 1e-6


def test_spread_moves_nothing_that_has_room() -> None:
    assert svg.spread([10.0, 100.0, 200.0], 14, 0, 300) == [10.0, 100.0, 200.0]
    assert svg.spread([100.0, 105.0], 14, 0, 300) == [95.5, 109.5]  # centred on both


def test_nice_steps_are_finite() -> None:
    assert math.isfinite(svg.nice_step(1e-12))
