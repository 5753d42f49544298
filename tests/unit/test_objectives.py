"""The one table of objectives: every indicator defined once, read by every part, and
``cbmon.slo`` pure enough to import alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cbmon.config import load_config
from cbmon.domain import Level
from cbmon.slo import wording
from cbmon.slo.judge import Indicator, judge_value
from cbmon.slo.objectives import BY_SLO, DEFAULT, JUDGED, OBJECTIVES, Limits

HEAVY = ("pydantic", "yaml", "psycopg", "requests", "pandas", "cbmon.config", "cbmon.db")


def test_cbmon_slo_imports_no_configuration_driver_or_parser() -> None:
    """Pure means importable alone: no config, pydantic, YAML, driver or HTTP client."""
    code = (
        "import sys\n"
        "import cbmon.slo.judge, cbmon.slo.tracker, cbmon.slo.wording, cbmon.slo.saved\n"
        "import cbmon.slo.objectives, cbmon.slo.notification\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_every_objective_is_named_once_and_judged_ones_have_an_alert_and_words() -> None:
    names = [objective.slo for objective in OBJECTIVES]
    assert len(names) == len(set(names))
    for objective in JUDGED:
        assert objective.alertname
        assert objective.measured
        assert objective.advice
        assert objective.normal is not None


@pytest.mark.parametrize(
    ("slo", "value", "level"),
    [
        ("success_rate", 0.99501, Level.OK),
        ("success_rate", 0.995, Level.WARNING),
        ("success_rate", 0.99, Level.WARNING),
        ("success_rate", 0.98999, Level.CRITICAL),
        ("avg_latency", 0.1499, Level.OK),
        ("avg_latency", 0.15, Level.WARNING),
        ("avg_latency", 0.5, Level.WARNING),
        ("avg_latency", 0.50001, Level.CRITICAL),
        ("backlog", 999, Level.OK),
        ("backlog", 5001, Level.CRITICAL),
        ("p95_latency", 9.0, Level.UNKNOWN),
    ],
)
def test_the_direction_comes_from_the_table(slo: str, value: float, level: Level) -> None:
    assert judge_value(BY_SLO[slo], value, DEFAULT.limit(slo)) is level


def test_a_threshold_in_the_configuration_reaches_the_judge_and_the_words() -> None:
    config = load_config(
        overrides={"thresholds": {"avg_latency": {"normal": "100ms", "alert": "1s"}}}, environ={}
    )
    baseline = config.baseline
    assert baseline.limit("avg_latency") == Limits(0.1, 1.0)
    slow = Indicator("avg_latency", "pay", 0.7, Level.WARNING, 50)
    phrase, description, threshold = wording.describe(slow, Level.WARNING, baseline)
    assert phrase == "Callback average latency 700 ms for event type pay"
    assert threshold == "at or above 100 ms"
    assert "Healthy is below 100 ms; above 1000 ms is critical." in description
    assert wording.bounds(BY_SLO["avg_latency"], baseline.limit("avg_latency")) == (
        "ok < 100 ms, critical > 1000 ms"
    )
    assert judge_value(BY_SLO["avg_latency"], 0.7, baseline.limit("avg_latency")) is Level.WARNING


def test_objectives_over_a_period_default_and_per_event_type() -> None:
    config = load_config(
        overrides={
            "objectives": {
                "latency": {"target": "99%", "threshold": "200ms"},
                "event_types": {"pay": {"success_rate": {"target": "99.9%", "period": "7d"}}},
            }
        },
        environ={},
    )
    baseline = config.baseline
    assert baseline.target("success_rate") is not None
    assert baseline.target("success_rate", "ship") == baseline.target("success_rate")
    own = baseline.target("success_rate", "pay")
    assert own is not None
    assert (own.target, own.period) == (0.999, 7 * 86400.0)
    latency = baseline.target("latency")
    assert latency is not None
    assert latency.threshold == 0.2
