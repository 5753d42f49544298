"""``cbmon check``'s outputs from plain values: the Nagios plugin format above all."""

from __future__ import annotations

import math
import re

import pytest

from cbmon.check import CheckResult, format_value, to_nagios, to_table
from cbmon.domain import Level
from cbmon.slo.judge import OVERALL, Indicator, judge_slo
from cbmon.slo.objectives import DEFAULT

THRESHOLDS = DEFAULT
# 'label'=value[UOM];[warn];[crit];[min];[max], as the Nagios plugin guidelines write it
PERFDATUM = re.compile(
    r"'(?P<label>[^'=]+)'=(?P<value>U|-?[0-9.]+)(?P<uom>%|ms|s|us|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^;]*)(?:;(?P<crit>[^;]*)(?:;(?P<min>[^;]*)(?:;(?P<max>[^;]*))?)?)?)?$"
)


def _result(status: Level = Level.CRITICAL) -> CheckResult:
    indicators = [
        Indicator("success_rate", OVERALL, 0.981, Level.CRITICAL, 1000),
        Indicator("avg_latency", OVERALL, 0.2124, Level.WARNING, 990),
        Indicator("p95_latency", OVERALL, 0.75, Level.UNKNOWN, 990),
        Indicator("slow_share", OVERALL, 0.3, Level.UNKNOWN, 990),
        Indicator("success_rate", "pay|x='y'", None, Level.UNKNOWN, 0),
        Indicator("avg_latency", "pay|x='y'", None, Level.UNKNOWN, 0),
        Indicator("p95_latency", "pay|x='y'", None, Level.UNKNOWN, 0),
        Indicator("slow_share", "pay|x='y'", None, Level.UNKNOWN, 0),
        Indicator("backlog", OVERALL, 1200.0, Level.WARNING, 1200),
    ]
    message = "CBMON CRITICAL - success_rate 98.10% (all)"
    return CheckResult(status, 300.0, indicators, message, {}, THRESHOLDS)


def test_status_line_then_performance_data() -> None:
    first, *rest = to_nagios(_result()).splitlines()
    text, perf = first.split(" | ")
    assert text == "CBMON CRITICAL - success_rate 98.10% (all)"
    assert perf.split() == [
        "'success_rate'=98.1%;@~:99.5;99:;0;100",
        "'avg_latency'=212.4ms;@150:;500;0",
        "'p95_latency'=750ms;;;0",
        "'backlog'=1200;@1000:;5000;0",
        "'calls'=1000;;;0",
    ]
    for datum in perf.split():
        assert PERFDATUM.match(datum), datum
    # one line per event type, the last one carrying their performance data
    (line,) = rest
    words, typed = line.split(" | ")
    assert words.startswith("pay/x='y': success_rate - unknown, avg_latency - unknown")
    assert "|" not in words
    labels = [PERFDATUM.match(datum) for datum in typed.split()]
    assert all(labels), typed
    assert [m["label"] for m in labels if m] == [
        "success_rate[pay_x__y_]",
        "avg_latency[pay_x__y_]",
        "p95_latency[pay_x__y_]",
    ]
    assert {m["value"] for m in labels if m} == {"U"}  # nothing to measure: undetermined


def test_without_event_types_the_output_is_one_line() -> None:
    only = _result()
    overall = [i for i in only.indicators if i.event_type == OVERALL]
    result = CheckResult(Level.OK, 300.0, overall, "CBMON OK - fine", {}, THRESHOLDS)
    assert to_nagios(result).count("\n") == 0


def _alerts(range_text: str, value: float) -> bool:
    """Whether ``value`` alerts under a Nagios threshold range (plugin guidelines): outside
    ``start:end`` alerts; ``@`` alerts inside instead; ``~`` is minus infinity; a missing end
    is infinity; ``N`` alone is ``0:N``."""
    inverted = range_text.startswith("@")
    text = range_text.removeprefix("@")
    start, end = text.split(":") if ":" in text else ("0", text)
    low = -math.inf if start == "~" else float(start or 0)
    high = math.inf if end == "" else float(end)
    inside = low <= value <= high
    return inside if inverted else not inside


def _ranges(slo: str) -> tuple[str, str, float]:
    indicator = Indicator(slo, OVERALL, 1.0, Level.OK, 100)
    datum = PERFDATUM.match(
        to_nagios(CheckResult(Level.OK, 1, [indicator], "x", {})).split(" | ")[1].split()[0]
    )
    assert datum is not None
    scale = {"success_rate": 100.0, "avg_latency": 1000.0, "notify_queue_usage": 100.0}
    return datum["warn"], datum["crit"], scale.get(slo, 1.0)


@pytest.mark.parametrize(
    ("slo", "values"),
    [
        ("success_rate", [0.5, 0.98999, 0.99, 0.992, 0.995, 0.99500001, 1.0]),
        ("avg_latency", [0.01, 0.1499, 0.15, 0.3, 0.5, 0.50001, 5.0]),
        ("backlog", [0, 999, 1000, 3000, 5000, 5001, 10**6]),
        ("notify_queue_usage", [0, 0.4999, 0.5, 0.7, 0.9, 0.90001, 1.0]),
        ("scheduler_jobs_failing", [0, 1, 2]),
        ("rate_limited", [0, 1, 50]),
        ("route_problems", [0, 1, 4]),
    ],
)
def test_the_thresholds_in_the_perfdata_say_exactly_what_cbmon_judges(
    slo: str, values: list[float]
) -> None:
    """At and around each boundary, the ranges alert exactly where the baseline says
    warning or critical (99.5 % itself is a warning; 99 % is not critical)."""
    warn, crit, scale = _ranges(slo)
    for value in values:
        level = judge_slo(slo, value, THRESHOLDS)
        shown = value * scale
        assert _alerts(warn, shown) == (level >= Level.WARNING), (value, warn)
        assert _alerts(crit, shown) == (level is Level.CRITICAL), (value, crit)


def test_p95_and_slow_share_are_shown_not_judged() -> None:
    table = to_table(_result())
    p95 = next(
        line.split() for line in table.splitlines() if line.split()[:2] == ["p95_latency", "all"]
    )
    assert p95[2:5] == ["750.0", "ms", "-"]


def test_values_near_a_limit_never_seem_to_sit_on_it() -> None:
    rate = Indicator("success_rate", OVERALL, 598 / 601, Level.OK, 601)
    latency = Indicator("avg_latency", OVERALL, 0.14999, Level.OK, 601)
    assert format_value(rate, THRESHOLDS) == "99.501%"
    assert format_value(latency, THRESHOLDS) == "149.99 ms"


def test_each_mechanism_indicator_is_a_line_and_absent_sources_follow() -> None:
    indicators = [
        Indicator("success_rate", OVERALL, 1.0, Level.OK, 100),
        Indicator("notify_queue_usage", OVERALL, 0.0, Level.OK, 1),
        Indicator("rate_limited", OVERALL, None, Level.UNKNOWN, 1),
        Indicator("route_problems", OVERALL, 2.0, Level.WARNING, 2),
        Indicator("success_rate", "pay", 1.0, Level.OK, 100),
    ]
    result = CheckResult(
        Level.WARNING,
        300.0,
        indicators,
        "CBMON WARNING - route_problems 2 (all)",
        {},
        THRESHOLDS,
        named={"route_problems": "no_route: a|b"},
        sources=("mechanism: scheduler is off: no pg_cron in this database",),
    )
    first, *rest = to_nagios(result).splitlines()
    perf = first.split(" | ")[1].split()
    assert "'route_problems'=2;@1:;;0" in perf
    assert "'rate_limited'=U;@1:;;0" in perf
    assert rest[:4] == [
        "notify_queue_usage 0.00% ok",
        "rate_limited - unknown",
        "route_problems 2 warning (no_route: a/b)",  # "|" would start performance data
        "mechanism: scheduler is off: no pg_cron in this database",
    ]
    assert rest[4].startswith("pay: success_rate 100.00% ok | ")
