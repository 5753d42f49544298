"""The report's pure parts: period resolution, verdicts, JSON shape and chart scaling."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from cbmon.domain import Figures, Level
from cbmon.errors import ConfigError
from cbmon.report import svg
from cbmon.report.jsonout import render_json
from cbmon.report.model import Latency, Period, Queue, Report, Row
from cbmon.report.period import PeriodRequest, default_step, parse_time, resolve
from cbmon.slo.judge import Verdicts, judge
from cbmon.slo.objectives import DEFAULT
from tests.support.baselines import baseline

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_since_counts_back_from_now_or_to() -> None:
    assert resolve(PeriodRequest(), NOW) == (NOW - timedelta(hours=24), NOW)
    assert resolve(PeriodRequest(since=3600), NOW) == (NOW - timedelta(hours=1), NOW)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    assert resolve(PeriodRequest(since=60, end=end), NOW) == (end - timedelta(minutes=1), end)


def test_times_without_offset_are_utc_and_offsets_are_kept() -> None:
    assert parse_time("2026-11-27T08:00", "--from") == datetime(2026, 11, 27, 8, tzinfo=UTC)
    start = parse_time("2026-11-27T10:00:00+02:00", "--from")
    assert resolve(PeriodRequest(start=start), NOW)[0] == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert parse_time("2026-11-27T08:00:00Z", "--to").tzinfo is not None


def test_from_must_come_before_to_or_now() -> None:
    with pytest.raises(ConfigError, match="is not before now"):
        resolve(PeriodRequest(start=NOW + timedelta(seconds=1)), NOW)
    with pytest.raises(ConfigError, match="is not before --to"):
        resolve(PeriodRequest(start=NOW, end=NOW), NOW)


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(minutes=5), 10.0),  # too short for 10 points of a minute: 10 s steps
        (timedelta(hours=1), 300.0),  # an hour draws 12 points, not one dot
        (timedelta(hours=10), 3600.0),
        (timedelta(days=1), 3600.0),
        (timedelta(days=3), 6 * 3600.0),
        (timedelta(days=30), 86400.0),
    ],
)
def test_default_chart_step_gives_enough_points(span: timedelta, step: float) -> None:
    """The largest step that still gives at least 10 buckets."""
    assert default_step(NOW - span, NOW) == step
    assert span.total_seconds() / step >= 10 or step == 10.0


def test_the_report_judges_with_the_sidecars_judge() -> None:
    few = Figures(attempts=19, failures=19, observed=19, sum_seconds=19 * 0.9)
    assert judge(few, baseline(min_events=20)) == Verdicts(Level.UNKNOWN, Level.UNKNOWN)
    enough = Figures(attempts=20, failures=0, observed=20, sum_seconds=20 * 0.15)
    assert judge(enough, baseline(min_events=20)) == Verdicts(Level.OK, Level.WARNING)
    # avg 500.0000001 ms is above the alert limit of 500 ms
    over = Figures(attempts=20, observed=20, sum_seconds=20 * 0.5000000001)
    assert judge(over, baseline(min_events=20)).avg_latency is Level.CRITICAL
    assert judge(Figures(), baseline(min_events=0)) == Verdicts(Level.UNKNOWN, Level.UNKNOWN)


def _report(overall: Figures, latency: Latency | None = None) -> Report:
    latency = latency or Latency()
    row = Row(None, overall, latency, judge(overall, baseline(min_events=20)))
    typed = Row("a", overall, latency, judge(overall, baseline(min_events=20)))
    return Report(
        period=Period(NOW - timedelta(hours=1), NOW),
        overall=row,
        event_types=(typed,),
        queue=Queue.judged(0, 0.0, DEFAULT),
        top_errors=(),
        series=None,
        baseline=DEFAULT,
        generated_at=NOW,
    )


def test_json_shape() -> None:
    figures = Figures(
        attempts=200, failures=1, observed=100, sum_seconds=100 * 0.12, slow=25, errors=3
    )
    latency = Latency(p50_ms=100.0, p95_ms=300.0, p99_ms=400.0, max_ms=450.0)
    data = json.loads(render_json(_report(figures, latency)))
    assert {"overall", "event_types", "queue", "period"} <= set(data)
    (row,) = data["event_types"]
    assert list(row) == [
        "event_type",
        "calls",
        "failures",
        "success_rate",
        "avg_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "slow_share",
        "errors",
        "observed",
        "verdicts",
        "callbacks",
    ]
    assert row["callbacks"] is None  # callbacks not told apart
    assert row["success_rate"] == 0.995
    assert row["slow_share"] == 0.25
    assert row["verdicts"] == {"success_rate": "warning", "avg_latency": "ok"}
    assert "event_type" not in data["overall"]
    assert data["period"] == {
        "from": "2026-11-27T11:00:00Z",
        "to": "2026-11-27T12:00:00Z",
        "seconds": 3600.0,
        "event_types": None,
        "by": None,
        "empty": False,
    }
    assert data["verdict"] == "warning"


def test_json_has_no_nan_for_missing_figures() -> None:
    text = render_json(_report(Figures()))
    data = json.loads(text)
    assert "NaN" not in text
    assert data["overall"]["avg_ms"] is None
    assert data["period"]["empty"] is True
    assert data["verdict"] == "ok"  # the empty queue is ok; the rest cannot be judged


@pytest.mark.parametrize(("span", "step"), [(1.0, 0.2), (7.0, 2.0), (0.004, 0.001), (480, 100)])
def test_nice_steps(span: float, step: float) -> None:
    assert math.isclose(svg.nice_step(span), step)


def test_chart_draws_gaps_and_thresholds() -> None:
    axis = svg.Axis([NOW + timedelta(hours=h) for h in range(4)], 3600.0)
    chart = svg.chart(
        "t",
        axis,
        [svg.Series("p95", [1.0, None, 3.0, 4.0], "#000")],
        [svg.Threshold("alert", "limit", 2.5, "#f00"), svg.Threshold("off", "far", 99, "#f00")],
        floor=0.0,
    )
    assert chart.count("<svg") == 1
    assert chart.endswith("</svg>")
    path = chart.split('data-series="p95"')[1].split('d="')[1].split('"')[0]
    assert [part[0] for part in path.split()] == ["M", "M", "L"]  # broken at the missing bucket
    assert "<circle" in chart  # the lone first point is still visible
    assert 'data-threshold="alert"' in chart
    assert 'data-threshold="off"' in chart  # the range grows to show every threshold
