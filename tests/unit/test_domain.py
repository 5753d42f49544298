"""Figures add up and subtract exactly, and their rates and quantiles are what Prometheus says."""

from __future__ import annotations

import pytest

from cbmon.domain import Figures, quantile, total


def test_adding_and_removing_figures_comes_back_to_nothing() -> None:
    a = Figures(10, 1, 9, 0.9, (1, 2, 3, 4, 5, 6, 7, 8, 9), invalid=1, slow=2, errors=3)
    b = Figures(5, 0, 5, 0.1, (5,) * 9)
    both = a + b
    assert (both.attempts, both.failures, both.observed, both.errors) == (15, 1, 14, 3)
    assert (both - b) - a == Figures()
    assert (both - b - a).sum_seconds == 0.0  # exactly, not 1e-17
    assert total([a, b]) == both


def test_rates_need_something_to_rate() -> None:
    assert Figures().success_rate is None
    assert Figures().avg_latency is None
    assert Figures(errors=4).success_rate is None
    figures = Figures(attempts=4, failures=1, observed=2, sum_seconds=0.5, slow=1)
    assert figures.success_rate == 0.75
    assert figures.avg_latency == 0.25
    assert figures.slow_share == 0.5


def test_quantile_interpolates_like_histogram_quantile() -> None:
    # 100 observations: 50 in (0, 0.05], 50 in (0.05, 0.1]; p95 lies 90 % into the second.
    assert quantile(0.95, (0.05, 0.1), (50, 100), 100) == pytest.approx(0.095)
    assert quantile(0.5, (0.05, 0.1), (50, 100), 100) == pytest.approx(0.05)
    assert quantile(0.95, (0.05, 0.1), (0, 0), 10) == 0.1  # all above the last bound
    assert quantile(0.95, (0.05,), (0,), 0) is None
