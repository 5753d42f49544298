"""alerts.yml: valid for promtool, unit-tested alert by alert, and in step with cbmon itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cbmon.config import Thresholds
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts.yml"
RULE_TESTS = sorted((ROOT / "tests" / "rules").glob("*.yml"))
METRICS_DOC = ROOT / "docs" / "metrics.md"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert(name: str, severity: str) -> dict[str, Any]:
    [rule] = [r for r in _rules() if r.get("alert") == name and r["labels"]["severity"] == severity]
    return rule


def test_promtool_check_rules_passes() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # Lint findings (such as duplicate rules) are printed without failing the exit code.
    assert "FAILED" not in result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_promtool_unit_tests_pass(path: Path) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _tested_alerts() -> set[tuple[str, str, str]]:
    """(alertname, severity, long window or "") of every alert some unit test expects to fire."""
    seen: set[tuple[str, str, str]] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for test in case.get("alert_rule_test", []):
                for alert in test.get("exp_alerts") or []:
                    labels = alert["exp_labels"]
                    seen.add((test["alertname"], labels["severity"], labels.get("long_window", "")))
    return seen


def test_every_alert_is_unit_tested_firing() -> None:
    defined = {
        (rule["alert"], rule["labels"]["severity"], rule["labels"].get("long_window", ""))
        for rule in _rules()
        if "alert" in rule
    }
    assert len(defined) == 15
    assert defined - _tested_alerts() == set()


def test_every_alert_is_unit_tested_not_firing() -> None:
    """Each alert has a case where it must stay silent: a series on the other side of a
    boundary, or one still pending."""
    silent: set[str] = set()
    series_id = re.compile(r'job="([^"]+)",instance="([^"]+)"')
    for path in RULE_TESTS:
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
                if not fired or quiet:
                    silent.add(test["alertname"])
    names = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert names - silent == set()


def test_baseline_alerts_use_cbmons_thresholds_and_boundaries() -> None:
    """Same numbers and the same side of each boundary as cbmon.slo.judge."""
    t = Thresholds()
    success = "cbmon:callback_success_ratio:rate5m"
    mean = "cbmon:callback_duration_seconds:mean5m"
    backlog = "cbmon:queue_backlog:max"
    expected = {
        ("CallbackSuccessRateLow", "warning"): f"{success} <= {t.success_rate.normal:g}",
        ("CallbackSuccessRateLow", "critical"): f"{success} < {t.success_rate.alert:g}",
        ("CallbackLatencyHigh", "warning"): f"{mean} >= {t.avg_latency.normal:g}",
        ("CallbackLatencyHigh", "critical"): f"{mean} > {t.avg_latency.alert:g}",
        ("CallbackBacklogHigh", "warning"): f"{backlog} >= {t.backlog.normal}",
        ("CallbackBacklogHigh", "critical"): f"{backlog} > {t.backlog.alert}",
    }
    for (name, severity), expr in expected.items():
        assert _alert(name, severity)["expr"].strip() == expr


def test_burn_rate_alerts_follow_the_workbook() -> None:
    budget = 1 - Thresholds().success_rate.normal
    expected = {
        ("1h", "5m"): (14.4, "page"),
        ("6h", "30m"): (6.0, "page"),
        ("1d", "2h"): (3.0, "ticket"),
        ("3d", "6h"): (1.0, "ticket"),
    }
    burns = [r for r in _rules() if r.get("alert") == "CallbackErrorBudgetBurn"]
    assert len(burns) == len(expected)
    for rule in burns:
        long, short = rule["labels"]["long_window"], rule["labels"]["short_window"]
        factor, severity = expected[(long, short)]
        assert rule["labels"]["severity"] == severity
        match = re.fullmatch(
            rf"cbmon:callback_error_ratio:rate{long} > ([\d.]+) and "
            rf"cbmon:callback_error_ratio:rate{short} > ([\d.]+)",
            rule["expr"].strip(),
        )
        assert match is not None, rule["expr"]
        assert float(match[1]) == float(match[2]) == pytest.approx(factor * budget)


def test_alerts_carry_actionable_annotations() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        # The description tells a person where to look, not only what broke.
        assert re.search(r"\b(look|check|find)\b", annotations["description"], re.I), rule["alert"]
        assert "for" in rule, rule["alert"]


def test_rules_use_only_documented_metrics() -> None:
    documented = set(re.findall(r"`(cbmon_[a-z_]+)`", METRICS_DOC.read_text(encoding="utf-8")))
    used = set(re.findall(r"\bcbmon_[a-z_]+", ALERTS.read_text(encoding="utf-8")))
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
    assert "SUCCESS: 131 rules found" in result.stdout


def test_guides_alertmanager_config_is_valid(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(_guide_block("# alertmanager.yml"), encoding="utf-8")
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Found:" in result.stdout
