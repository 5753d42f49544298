"""The sparklines' history: one value per step of the window, the newest value of a step,
gaps where an indicator had no judged value, and series dropped once empty."""

from __future__ import annotations

from cbmon.domain import Level
from cbmon.slo.judge import Indicator
from cbmon.slo.trend import Trend


def rate(value: float | None, event_type: str = "pay", state: Level = Level.OK) -> Indicator:
    return Indicator("success_rate", event_type, value, state, 100)


def test_one_sample_per_step_the_newest_value_winning() -> None:
    trend = Trend(window=60, points=6)  # a sample every 10s
    trend.record(0, [rate(0.99)])
    trend.record(4, [rate(0.98)])  # the same step: replaces
    trend.record(10, [rate(0.97)])
    assert trend.series("success_rate", "pay") == (0.98, 0.97)


def test_at_most_a_window_of_samples() -> None:
    trend = Trend(window=60, points=6)
    for step in range(10):
        trend.record(step * 10, [rate(step / 10)])
    assert trend.series("success_rate", "pay") == (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_gaps_for_values_not_judged_and_new_series_line_up() -> None:
    trend = Trend(window=60, points=6)
    trend.record(0, [rate(0.99)])
    trend.record(10, [rate(0.5, state=Level.UNKNOWN), rate(0.9, "ship")])  # 0.5 from few events
    trend.record(20, [rate(None), rate(0.8, "ship")])
    assert trend.series("success_rate", "pay") == (0.99, None, None)
    assert trend.series("success_rate", "ship") == (None, 0.9, 0.8)


def test_a_series_without_a_value_for_a_whole_window_is_dropped() -> None:
    trend = Trend(window=60, points=3)
    trend.record(0, [rate(0.99), rate(0.99, "ship")])
    for at in (20, 40, 60):
        trend.record(at, [rate(0.99, "ship")])
    assert trend.series("success_rate", "pay") == ()
    assert len(trend) == 1
    assert trend.series("p95_latency", "pay") == ()  # only judged indicators are kept
