"""``cbmon rules``: the generated rules against the objectives table and cbmon's own judge, the
shipped files against the generator, and the command as a user runs it."""

from __future__ import annotations

import dataclasses
import operator
import re
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cbmon.cli import cli, main
from cbmon.config import load_config
from cbmon.domain import WAIT_BUCKETS, Level, quantile
from cbmon.rules import baseline as baseline_rules
from cbmon.rules import burn, generate, render
from cbmon.rules.feeds import E2E, FEEDS
from cbmon.rules.promql import number
from cbmon.rules.recording import le
from cbmon.rules.unittests import spread
from cbmon.rules.wording import humanize_duration, humanize_percentage
from cbmon.slo.judge import judge_value
from cbmon.slo.objectives import (
    DEFAULT,
    END_TO_END_P95,
    JUDGED,
    MECHANISM,
    NOTIFY_QUEUE,
    P95_LATENCY,
    SCHEDULER_JOBS,
    Baseline,
    Limits,
    Target,
)

ROOT = Path(__file__).resolve().parents[2]
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["rules", *args], env={"CBMON_CONFIG": None})
    assert result.exit_code == 0, result.output
    return result.output


def alerts(text: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def baseline_of(tmp_path: Path, text: str) -> Baseline:
    path = tmp_path / "cbmon.yml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={}).baseline


def made(baseline: Baseline) -> str:
    return render.rule_file(generate.rules(baseline))


# -- the shipped files ------------------------------------------------------------------------


def test_shipped_alerts_are_what_cbmon_rules_prints() -> None:
    shipped = (ROOT / "alerts.yml").read_text(encoding="utf-8")
    assert shipped == run(), "run: cbmon rules > alerts.yml"


def test_shipped_traffic_rule_is_what_cbmon_rules_traffic_prints() -> None:
    shipped = (ROOT / "alerts-traffic.yml").read_text(encoding="utf-8")
    assert shipped == run("--traffic"), "run: cbmon rules --traffic > alerts-traffic.yml"


def test_operator_format_wraps_the_same_groups_as_a_prometheusrule() -> None:
    wrapped = yaml.safe_load(run("--format", "prometheus-operator"))
    assert wrapped["apiVersion"] == "monitoring.coreos.com/v1"
    assert wrapped["kind"] == "PrometheusRule"
    assert wrapped["metadata"]["name"] == "cbmon"
    assert wrapped["spec"]["groups"] == yaml.safe_load(run())["groups"]


# -- the baseline against the judge -----------------------------------------------------------


def _split(expr: str) -> tuple[str, str, float, str | None]:
    """``series op threshold [and events >= n]``."""
    match = re.fullmatch(r"(\S+) (<=|<|>=|>) ([\d.]+)(?:\nand (\S+) >= (\d+))?\n?", expr)
    assert match is not None, expr
    return match[1], match[2], float(match[3]), match[5]


@pytest.mark.parametrize("baseline", [DEFAULT], ids=["default"])
def test_every_judged_indicator_alerts_on_the_judges_side_of_each_boundary(
    baseline: Baseline,
) -> None:
    rules = alerts(made(baseline))
    seen: set[tuple[str, str]] = set()
    for objective in JUDGED:
        if objective.unit == "age" or objective.series is None:
            continue
        limits = baseline.limit(objective.slo)
        assert limits is not None
        around = [limits.normal, *([] if limits.alert is None else [limits.alert])]
        for rule in (r for r in rules if r["alert"] == objective.alertname):
            severity = rule["labels"]["severity"]
            level = Level.CRITICAL if severity == "critical" else Level.WARNING
            _, op, threshold, _ = _split(rule["expr"])
            assert threshold in around
            # Around each boundary, PromQL's comparison and the judge agree.
            for bound in around:
                for value in (bound * 0.999, bound, bound * 1.001, bound + 1, bound - 0.5):
                    fires = OPERATORS[op](value, threshold)
                    assert fires == (judge_value(objective, value, limits) >= level), (
                        objective.slo,
                        severity,
                        value,
                    )
            seen.add((objective.slo, severity))
    expected = {
        (o.slo, s)
        for o in JUDGED
        if o.unit != "age" and o.series is not None
        for s in ("warning", "critical")
        if s == "warning" or (baseline.limit(o.slo) or Limits(0)).alert is not None
    }
    # A failing scheduler job is critical at once: the judge never calls it a warning.
    expected.discard((SCHEDULER_JOBS.slo, "warning"))
    assert seen == expected


def test_a_changed_configuration_changes_the_rules(tmp_path: Path) -> None:
    changed = baseline_of(
        tmp_path,
        "thresholds:\n"
        "  success_rate: {normal: 0.98, alert: 0.95}\n"
        "  backlog: {normal: 200, alert: 800}\n"
        "  dead_letters: {normal: 3, alert: 10}\n"
        "slo: {window: 10m, for: 3m, min_events: 50}\n",
    )
    rules = alerts(made(changed))
    success = [r for r in rules if r["alert"] == "CallbackSuccessRateLow"]
    assert [r["expr"] for r in success] == [
        "cbmon:callback_success_ratio:rate10m <= 0.98\n"
        "and cbmon:callback_attempts:increase10m >= 50\n",
        "cbmon:callback_success_ratio:rate10m < 0.95\n"
        "and cbmon:callback_attempts:increase10m >= 50\n",
    ]
    assert {r["for"] for r in success} == {"3m"}
    dead = {
        r["labels"]["severity"]: r["expr"] for r in rules if r["alert"] == "CallbackDeadLetters"
    }
    assert dead == {
        "warning": "cbmon:callbacks_dead:increase10m >= 3",
        "critical": "cbmon:callbacks_dead:increase10m > 10",
    }
    backlog = [r for r in rules if r["alert"] == "CallbackBacklogHigh"]
    assert (
        "Healthy is below 200; above 800 is critical." in backlog[0]["annotations"]["description"]
    )
    # The 10m window is recorded, beside the standard ones.
    groups = [g["name"] for g in yaml.safe_load(made(changed))["groups"]]
    assert "cbmon-callbacks-10m" in groups
    assert "cbmon-callbacks-5m" in groups


def test_min_events_0_still_guards_on_one_event(tmp_path: Path) -> None:
    rules = alerts(made(baseline_of(tmp_path, "slo: {min_events: 0}\n")))
    [rule, *_] = [r for r in rules if r["alert"] == "CallbackSuccessRateLow"]
    assert rule["expr"].endswith("cbmon:callback_attempts:increase5m >= 1\n")


def test_an_indicator_added_to_the_table_gets_its_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    judged_p95 = dataclasses.replace(P95_LATENCY, better="lower", alertname="CallbackP95High")
    monkeypatch.setattr(baseline_rules, "JUDGED", (*JUDGED, judged_p95))
    limits = {**DEFAULT.limits, judged_p95.slo: Limits(0.3, 1.0)}
    rules = alerts(made(dataclasses.replace(DEFAULT, limits=limits)))
    assert [r["expr"] for r in rules if r["alert"] == "CallbackP95High"] == [
        "cbmon:callback_duration_seconds:p95_5m >= 0.3\n"
        "and cbmon:callback_duration_seconds_count:increase5m >= 20\n",
        "cbmon:callback_duration_seconds:p95_5m > 1\n"
        "and cbmon:callback_duration_seconds_count:increase5m >= 20\n",
    ]


def test_slow_share_needs_the_slow_threshold_on_a_bucket_bound(tmp_path: Path) -> None:
    off = baseline_of(tmp_path, "thresholds: {slow_callback: 250ms}\n")
    assert "CallbackSlowShareHigh" not in made(off)
    [group] = [g for g in generate.rules(off).groups if g.name == "cbmon-baseline"]
    assert "Not judged here, their series cannot be recorded exactly: slow_share" in group.comment
    assert "CallbackSlowShareHigh" in made(
        baseline_of(tmp_path, "thresholds: {slow_callback: 500ms}\n")
    )


def test_every_aggregation_keeps_job_and_database() -> None:
    text = run()
    clauses = re.findall(r"\b(?:by|on) \(([^)]*)\)", text)
    assert clauses
    for clause in clauses:
        assert {"job", "database"} <= {c.strip() for c in clause.split(",")}, clause


def test_runbook_lines_name_options_that_exist() -> None:
    text = run() + run("--traffic")
    assert not re.search(r"cbmon report[^`)]*--window", text)  # report has no --window
    assert "cbmon report --since 1h" in text
    for since in re.findall(r"cbmon report --since (\S+?)\)", text):
        assert re.fullmatch(r"\d+[mhd]", since)


# -- burn rates -------------------------------------------------------------------------------


def _burns(baseline: Baseline) -> dict[tuple[str, str], tuple[str, str]]:
    """(long, short) -> (threshold, severity) of the default success-rate burn alerts."""
    found = {}
    for rule in alerts(made(baseline)):
        if rule["alert"] != "CallbackErrorBudgetBurn" or "event_type" in rule["labels"]:
            continue
        labels = rule["labels"]
        ratio, selector = "cbmon:callback_error_ratio:rate", r"(?:\{[^}]*\})?"
        match = re.fullmatch(
            rf"{ratio}{labels['long_window']}{selector} > ([\d.]+)\n"
            rf"and {ratio}{labels['short_window']}{selector} > ([\d.]+)\n",
            rule["expr"],
        )
        assert match is not None, rule["expr"]
        assert match[1] == match[2]
        found[(labels["long_window"], labels["short_window"])] = (match[1], labels["severity"])
    return found


def test_burn_rates_follow_the_workbook_over_30_days() -> None:
    assert _burns(DEFAULT) == {
        ("1h", "5m"): ("0.072", "page"),
        ("6h", "30m"): ("0.03", "page"),
        ("1d", "2h"): ("0.015", "ticket"),
        ("3d", "6h"): ("0.005", "ticket"),
    }


def test_burn_factors_follow_the_period_never_below_1() -> None:
    days = 86400.0
    month = dataclasses.replace(DEFAULT, targets={"success_rate": Target(0.999, 28 * days)})
    # 2 % of 28 days in 1h is 13.44 times the steady pace; 10 % in 3d would be 0.93: 1.
    assert _burns(month) == {
        ("1h", "5m"): ("0.01344", "page"),
        ("6h", "30m"): ("0.0056", "page"),
        ("1d", "2h"): ("0.0028", "ticket"),
        ("3d", "6h"): ("0.001", "ticket"),
    }
    short = dataclasses.replace(DEFAULT, targets={"success_rate": Target(0.99, 2 * days)})
    assert set(_burns(short)) == {("1h", "5m"), ("6h", "30m"), ("1d", "2h")}  # 3d > 2d


def test_an_event_type_with_its_own_objective_is_out_of_the_default_alerts() -> None:
    own = dataclasses.replace(
        DEFAULT, event_targets={"refund": {"success_rate": Target(0.99, 30 * 86400.0)}}
    )
    rules = [r for r in alerts(made(own)) if r["alert"] == "CallbackErrorBudgetBurn"]
    default = [r for r in rules if "event_type" not in r["labels"]]
    mine = [r for r in rules if r["labels"].get("event_type") == "refund"]
    assert len(default) == len(mine) == 4
    assert all('{event_type!="refund"}' in r["expr"] for r in default)
    assert all('{event_type="refund"}' in r["expr"] for r in mine)
    assert '{event_type="refund"} > 0.144\n' in mine[0]["expr"]  # 14.4 x 1 %


def test_burn_thresholds_print_cleanly() -> None:
    assert number(Fraction(144, 10) * (1 - Fraction("0.995"))) == "0.072"
    assert number(0.995) == "0.995"
    assert number(5000.0) == "5000"
    assert number(Fraction(1, 3)) == "0.333333333333"
    assert str(burn.PAIRS[0].share) == "1/50"


# -- Prometheus' template functions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.989, "98.9%"), (0.995, "99.5%"), (1.0, "100%"), (0.0, "0%"), (0.12345, "12.35%")],
)
def test_humanize_percentage_as_prometheus(value: float, text: str) -> None:
    assert humanize_percentage(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.15, "150ms"),
        (0.0005, "500us"),
        (1.5, "1.5s"),
        (90, "1m 30s"),
        (3600, "1h 0m 0s"),
        (90061, "1d 1h 1m 1s"),
        (0, "0s"),
    ],
)
def test_humanize_duration_as_prometheus(value: float, text: str) -> None:
    assert humanize_duration(value) == text


# -- the command and the package --------------------------------------------------------------


@pytest.mark.slow
def test_tests_option_writes_rules_and_tests_and_prints_the_tests(tmp_path: Path) -> None:
    out = run("--tests", str(tmp_path / "t"))
    paths = [Path(line) for line in out.splitlines()]
    assert paths
    assert all(p.is_file() and p.name.endswith(".test.yml") for p in paths)
    assert (tmp_path / "t" / "alerts.yml").read_text(encoding="utf-8") == run()
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["rule_files"] == ["alerts.yml"]
        assert data["tests"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "{bad}"], "slo.window: 'often' is not a duration"),
        (["--tests", "{dir}", "--format", "prometheus-operator"], "leave out --format"),
        (["--format", "json"], "'json' is not one of"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("slo: {window: often}\n", encoding="utf-8")
    filled = [a.format(bad=bad, dir=tmp_path / "t") for a in args]
    monkeypatch.delenv("CBMON_CONFIG", raising=False)
    monkeypatch.setattr(sys, "argv", ["cbmon", "rules", *filled])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert needle in captured.err
    assert not (tmp_path / "t").exists()


def test_only_render_imports_yaml() -> None:
    code = (
        "import sys\n"
        "import cbmon.rules.generate, cbmon.rules.feeds, cbmon.rules.burn\n"
        "print('yaml' in sys.modules, 'cbmon.config' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]
    sources = (ROOT / "cbmon" / "rules").glob("*.py")
    importers = {p.name for p in sources if re.search(r"^import yaml", p.read_text(), re.M)}
    assert importers == {"render.py"}


# -- the generated tests' inputs --------------------------------------------------------------


@pytest.mark.parametrize(("total", "steps"), [(20, 5), (19, 5), (3, 5), (1, 60), (0, 4)])
def test_spread_counts_total_in_every_window_and_less_before(total: int, steps: int) -> None:
    pattern = spread(total, steps)
    repeated = pattern * 3
    assert all(sum(repeated[i : i + steps]) == total for i in range(2 * steps))
    assert all(sum(pattern[:k]) < total for k in range(steps) if total)


@pytest.mark.parametrize("target", ["0.999", "1", "1.001", "4.999", "5", "5.001", "0.3"])
def test_end_to_end_inputs_give_the_quantile_asked_for_as_cbmon_computes_it(target: str) -> None:
    feed = FEEDS[END_TO_END_P95.slo]
    totals = feed.totals(Fraction(target), 20, DEFAULT)
    value = feed.value(totals, DEFAULT)
    assert value == pytest.approx(float(target), rel=1e-12)
    cumulative = [int(totals[(f"{E2E}_bucket", f'le="{le(b)}"')]) for b in WAIT_BUCKETS]
    count = int(totals[(f"{E2E}_count", "")])
    assert count >= 20
    assert value == pytest.approx(quantile(0.95, WAIT_BUCKETS, cumulative, count), rel=1e-12)


def test_every_alerted_indicator_has_test_inputs() -> None:
    names = generate.recorded(generate.rules(DEFAULT).groups)
    alerted = {c.objective.slo for c in baseline_rules.checks(DEFAULT, names)}
    assert alerted == {o.slo for o in JUDGED if o.unit != "age" and o.series is not None}
    assert alerted <= set(FEEDS)
    assert {o.slo for o in MECHANISM} <= alerted  # the mechanism's too, from the same table
    assert {o.slo for o in JUDGED if o.series is None} == {"last_attempt_age"}


# -- the mechanism ----------------------------------------------------------------------------


def _group(text: str, name: str) -> list[dict[str, Any]]:
    [group] = [g for g in yaml.safe_load(text)["groups"] if g["name"] == name]
    return list(group["rules"])


def test_the_mechanism_alerts_fire_at_once_and_the_others_wait_out_for() -> None:
    text = run()
    mechanism = _group(text, "cbmon-mechanism")
    assert {r["alert"] for r in mechanism} == {o.alertname for o in MECHANISM}
    assert all("for" not in r for r in mechanism)  # cbmon judges them at once, at each probe
    assert {r["labels"]["slo"] for r in mechanism} == {o.slo for o in MECHANISM}
    baseline = _group(text, "cbmon-baseline")
    assert {r["for"] for r in baseline} == {"1m"}
    assert not {r["alert"] for r in baseline} & {o.alertname for o in MECHANISM}
    assert not (ROOT / "alerts-mechanism.yml").exists()  # generated into alerts.yml instead


def test_the_mechanism_rules_follow_the_configuration(tmp_path: Path) -> None:
    changed = made(
        baseline_of(
            tmp_path,
            "mechanism:\n"
            "  notify_queue_usage: {normal: 0.3, alert: 0.75}\n"
            "  missed_runs: 5\n"
            "slo: {window: 10m}\n",
        )
    )
    notify = {
        r["labels"]["severity"]: r["expr"]
        for r in alerts(changed)
        if r["alert"] == NOTIFY_QUEUE.alertname
    }
    assert notify == {
        "warning": "cbmon:notify_queue_usage_ratio:max >= 0.3",
        "critical": "cbmon:notify_queue_usage_ratio:max > 0.75",
    }
    series = {r["record"]: r["expr"] for r in _group(changed, "cbmon-mechanism-series")}
    failing = series["cbmon:scheduler_jobs_failing:count"]
    assert ">= 5 * max by (job, database, job_name) (cbmon_scheduler_job_interval_seconds)" in (
        failing
    )
    assert "increase(cbmon_rate_limited_total[10m])" in series["cbmon:rate_limited:increase10m"]
    [limited] = [r for r in alerts(changed) if r["alert"] == "CallbackRateLimited"]
    assert limited["expr"] == "cbmon:rate_limited:increase10m >= 1"
    assert "In the last 10m" in limited["annotations"]["description"]
    # The default's rules say 50 %, 90 % and 3.
    default = run()
    assert "cbmon:notify_queue_usage_ratio:max >= 0.5\n" in default
    assert ">= 3 * max by" in default


def test_the_generated_mechanism_tests_cross_each_boundary(tmp_path: Path) -> None:
    run("--tests", str(tmp_path))
    data = yaml.safe_load((tmp_path / "mechanism.test.yml").read_text(encoding="utf-8"))
    jobs: dict[str, set[str]] = {}
    fired: dict[str, set[tuple[str, str]]] = {}
    for case in data["tests"]:
        for test in case["alert_rule_test"]:
            name = test["alertname"]
            jobs.setdefault(name, set()).update(
                re.findall(r'job="([^"]+)"', " ".join(s["series"] for s in case["input_series"]))
            )
            fired.setdefault(name, set()).update(
                (a["exp_labels"]["job"], a["exp_labels"]["severity"]) for a in test["exp_alerts"]
            )
    assert set(jobs) == {o.alertname for o in MECHANISM}
    assert jobs["CallbackNotifyQueueFilling"] == {
        f"{side}-{bound}" for side in ("below", "at", "above") for bound in ("0.5", "0.9")
    }
    assert fired["CallbackNotifyQueueFilling"] == {
        ("at-0.5", "warning"),
        ("above-0.5", "warning"),
        ("below-0.9", "warning"),
        ("at-0.9", "warning"),
        ("above-0.9", "warning"),
        ("above-0.9", "critical"),
    }
    for name in ("CallbackRateLimited", "CallbackRouteProblem"):
        assert jobs[name] == {"below-1", "at-1", "above-1"}
        assert fired[name] == {("at-1", "warning"), ("above-1", "warning")}
    assert fired["CallbackSchedulerJobFailing"] == {
        ("at-1", "critical"),
        ("above-1", "critical"),
        ("above-0", "critical"),
    }
    # Every scheduler case has a job one second short of missed_runs intervals, which never
    # fires, and the failing ones exactly at it.
    scheduler = next(
        c
        for c in data["tests"]
        if c["alert_rule_test"][0]["alertname"] == "CallbackSchedulerJobFailing"
    )
    without = {
        s["series"]: s["values"]
        for s in scheduler["input_series"]
        if "without_success" in s["series"]
    }
    assert {v.split("+")[0] for k, v in without.items() if "nearly" in k} == {"179"}
    assert {v.split("+")[0] for k, v in without.items() if "late0" in k} == {"180"}
