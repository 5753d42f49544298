"""The rules against real promtool: the shipped files are valid, the hand-written tests (recording
rules, cbmon watching itself) and the generated ones (every baseline, mechanism and burn-rate
alert, the traffic rule) pass, for the default configuration and changed ones, and fail when a rule
changes under them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cbmon.cli import cli
from cbmon.slo.objectives import MECHANISM
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts.yml"
TRAFFIC = ROOT / "alerts-traffic.yml"
RULE_TESTS = sorted((ROOT / "tests" / "rules").glob("*.yml"))
METRICS_DOC = ROOT / "docs" / "metrics.md"
MECHANISM_SLOS = {o.slo for o in MECHANISM}
# Other thresholds (the mechanism's too), window, for and min_events, a 28-day objective, a
# latency objective and an event type with an objective of its own: each changes the rules with
# no other edit.
CHANGED = """\
thresholds:
  success_rate: {normal: 0.98, alert: 0.95}
  avg_latency: {normal: 250ms, alert: 1s}
  backlog: {normal: 200, alert: 800}
  slow_callback: 500ms
  slow_share: {normal: 0.1, alert: 0.3}
  callback_success_rate: {normal: 0.999, alert: 0.99}
  dead_letters: {normal: 3, alert: 10}
  end_to_end_p95: {normal: 2s, alert: 12s}
slo: {window: 10m, for: 3m, min_events: 50, traffic_absent_after: 15m}
mechanism:
  notify_queue_usage: {normal: 0.3, alert: 0.75}
  missed_runs: 5
objectives:
  success_rate: {target: 0.999, period: 28d}
  latency: {target: 0.99, threshold: 500ms, period: 7d}
  event_types:
    refund:
      success_rate: {target: 0.99, period: 28d}
"""
CONFIGS = {
    "default": None,
    "changed": CHANGED,
    "no-for-one-event": "slo: {window: 2m, for: 0s, min_events: 1}\n",
}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def generated(tmp_path: Path, config: str | None, *flags: str) -> list[Path]:
    """``cbmon rules [--config] --tests DIR``: the tests' paths it prints."""
    args = ["rules", "--tests", str(tmp_path / "rules"), *flags]
    if config is not None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        path = tmp_path / "cbmon.yml"
        path.write_text(config, encoding="utf-8")
        args += ["--config", str(path)]
    result = CliRunner().invoke(cli, args, env={"CBMON_CONFIG": None})
    assert result.exit_code == 0, result.output
    return [Path(line) for line in result.output.splitlines()]


def _rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.mark.parametrize("path", [ALERTS, TRAFFIC], ids=["alerts.yml", "alerts-traffic.yml"])
def test_promtool_check_rules_passes(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # Lint findings (such as duplicate rules) are printed without failing the exit code.
    assert "FAILED" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
@pytest.mark.slow
def test_hand_written_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "name",
    # promtool over every generated test: seconds for the default, half a minute for the
    # others; the fast layer checks the default rules with promtool and that each alert has
    # a test firing it and one keeping it silent.
    [pytest.param(n, marks=[pytest.mark.slow]) for n in CONFIGS],
)
@pytest.mark.parametrize("traffic", [False, True], ids=["alerts", "traffic"])
def test_generated_rules_and_their_tests_pass(tmp_path: Path, name: str, traffic: bool) -> None:
    tests = generated(tmp_path, CONFIGS[name], *(["--traffic"] if traffic else []))
    rule_file = tmp_path / "rules" / ("alerts-traffic.yml" if traffic else "alerts.yml")
    checked = promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAILED" not in checked.stdout + checked.stderr  # no duplicate rules either
    result = promtool("test", "rules", *map(str, tests), cwd=tmp_path / "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "cbmon:callback_success_ratio:rate5m <= 0.995",
            "cbmon:callback_success_ratio:rate5m < 0.995",
        ),
        (
            "cbmon:callback_duration_seconds:mean5m > 0.5",
            "cbmon:callback_duration_seconds:mean5m > 0.51",
        ),
        (
            "and cbmon:callback_attempts:increase5m >= 20",
            "and cbmon:callback_attempts:increase5m >= 19",
        ),
        ("cbmon:queue_backlog:max >= 1000", "cbmon:queue_backlog:max > 1000"),
        ("for: 1m", "for: 0s"),
        ("cbmon:callback_error_ratio:rate1h > 0.072", "cbmon:callback_error_ratio:rate1h > 0.07"),
        ("cbmon:callback_error_ratio:rate5m > 0.072", "cbmon:callback_error_ratio:rate5m > 0"),
        (
            "cbmon:notify_queue_usage_ratio:max > 0.9",
            "cbmon:notify_queue_usage_ratio:max >= 0.9",
        ),
        (
            "cbmon:notify_queue_usage_ratio:max >= 0.5",
            "cbmon:notify_queue_usage_ratio:max >= 0.5\n        for: 1m",
        ),
        ("cbmon:scheduler_jobs_failing:count >= 1", "cbmon:scheduler_jobs_failing:count > 1"),
        (">= 3 * max by", "> 3 * max by"),
        ("cbmon:rate_limited:increase5m >= 1", "cbmon:rate_limited:increase5m > 1"),
        ("cbmon:route_problems:sum >= 1", "cbmon:route_problems:sum > 1"),
    ],
)
@pytest.mark.slow  # a run of every generated test per change
def test_generated_tests_fail_when_a_rule_changes(tmp_path: Path, before: str, after: str) -> None:
    tests = generated(tmp_path, None)
    rules = tmp_path / "rules" / "alerts.yml"
    text = rules.read_text(encoding="utf-8")
    assert before in text
    rules.write_text(text.replace(before, after, 1), encoding="utf-8")
    result = promtool("test", "rules", *map(str, tests), cwd=tmp_path / "rules")
    assert result.returncode != 0, f"no generated test noticed {before!r} -> {after!r}"


def _tested_alerts(tests: list[Path]) -> set[tuple[str, str, str]]:
    """(alertname, severity, long window or "") of every alert some test expects to fire."""
    seen: set[tuple[str, str, str]] = set()
    for path in tests:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for test in case.get("alert_rule_test", []):
                for alert in test.get("exp_alerts") or []:
                    labels = alert["exp_labels"]
                    seen.add((test["alertname"], labels["severity"], labels.get("long_window", "")))
    return seen


def _silent_alerts(tests: list[Path]) -> set[str]:
    """Alert names with a case where some input series (job and instance) must stay silent."""
    silent: set[str] = set()
    series_id = re.compile(r'job="([^"]+)",instance="([^"]+)"')
    for path in tests:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            inputs = {
                m.groups()
                for s in case["input_series"]
                for m in [series_id.search(s["series"])]
                if m
            }
            for test in case.get("alert_rule_test", []):
                fired = [a["exp_labels"] for a in test.get("exp_alerts") or []]
                quiet = [
                    (job, instance)
                    for job, instance in inputs
                    if not any(
                        f.get("job") == job and f.get("instance", instance) == instance
                        for f in fired
                    )
                ]
                if quiet:
                    silent.add(test["alertname"])
    return silent


@pytest.mark.parametrize("name", ["default", pytest.param("changed", marks=pytest.mark.slow)])
def test_every_alert_is_tested_firing_and_silent(tmp_path: Path, name: str) -> None:
    tests = generated(tmp_path, CONFIGS[name])
    tests += generated(tmp_path / "traffic", CONFIGS[name], "--traffic")
    tests += [p for p in RULE_TESTS if p.name == "cbmon_self.yml"]
    rules = _rules(tmp_path / "rules" / "alerts.yml") + _rules(
        tmp_path / "traffic" / "rules" / "alerts-traffic.yml"
    )
    defined = {
        (rule["alert"], rule["labels"]["severity"], rule["labels"].get("long_window", ""))
        for rule in rules
        if "alert" in rule
    }
    assert defined - _tested_alerts(tests) == set()
    assert {rule["alert"] for rule in rules if "alert" in rule} - _silent_alerts(tests) == set()


def test_alerts_carry_actionable_annotations() -> None:
    for rule in _rules() + _rules(TRAFFIC):
        if "alert" not in rule:
            continue
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        # The description tells a person where to look, not only what broke.
        assert re.search(r"\b(look|check|find)\b", annotations["description"], re.I), rule["alert"]
        # The mechanism's fire at once, as cbmon's own (judged at each probe).
        assert ("for" in rule) != (rule["labels"].get("slo") in MECHANISM_SLOS), rule["alert"]


def test_rules_use_only_documented_metrics() -> None:
    documented = set(re.findall(r"`(cbmon_[a-z_]+)[`{]", METRICS_DOC.read_text(encoding="utf-8")))
    text = ALERTS.read_text(encoding="utf-8") + TRAFFIC.read_text(encoding="utf-8")
    used = set(re.findall(r"\bcbmon_[a-z_]+", text))
    histogram_parts = re.compile(r"_(bucket|sum|count)$")
    unknown = {name for name in used if histogram_parts.sub("", name) not in documented}
    assert unknown == set()
    assert "cbmon_callback_attempts_total" in used


def _guide_block(first_line: str) -> str:
    """The fenced YAML block of docs/prometheus.md that starts with ``first_line``."""
    guide = (ROOT / "docs" / "prometheus.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    [block] = [b for b in blocks if b.startswith(first_line)]
    return block


def test_guides_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    config = _guide_block("# prometheus.yml").replace(
        "/etc/prometheus/rules/cbmon.yml", str(ALERTS)
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(config, encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_guides_alertmanager_config_is_valid(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(_guide_block("# alertmanager.yml"), encoding="utf-8")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found:" in result.stdout
