"""The Grafana dashboards, linted the way grafana/dashboard-linter does, plus the JSON model
fields Grafana needs, PromQL that Prometheus accepts, and colours that agree with cbmon.

The linter's rules, with this project's names: one datasource variable (``DS_PROMETHEUS``) used
by every panel and target, a ``job`` variable matched by every selector, ``$__rate_interval``
in every rate, valid PromQL (checked by promtool), unique refIds. The ``instance`` rules do not
apply: the recording rules aggregate instances away, as the linter's own README allows.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cbmon.domain import Level
from cbmon.slo.judge import judge_slo
from cbmon.slo.objectives import DEFAULT
from tests.conftest import require_binary
from tests.support.promstack import DASHBOARDS, DATASOURCE, expand, load_dashboard, panels, targets

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
IDS = [p.name for p in DASHBOARDS]

PANEL_TYPES = {"stat", "timeseries", "table", "state-timeline", "gauge", "bargauge", "text"}
UNITS = {
    "none", "short", "percent", "percentunit", "s", "ms", "reqps", "ops", "bytes",
}  # fmt: skip
SELECTOR = re.compile(
    r"\b(cbmon_[a-z_]+|cbmon:[a-z0-9_:]+|process_[a-z_]+|up|ALERTS)\b(\{[^}]*\})?"
)
RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase)\((?:[^()\[]|\([^()]*\))*\[([^\]]+)\]\)")
SAMPLE_VALUES = {
    "DS_PROMETHEUS": "prometheus",
    "job": ".+",
    "database": ".*",
    "event_type": "order_created",
    "__rate_interval": "1m",
    "__range": "1h",
}


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


@pytest.fixture(params=DASHBOARDS, ids=IDS)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_dashboard(request.param)


def test_there_are_an_overview_a_drill_down_and_a_fleet() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "cbmon-event-type.json",
        "cbmon-fleet.json",
        "cbmon-overview.json",
    ]


def test_json_model_fields(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["title"], str)
    assert dashboard["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    # A null id lets Grafana assign one on import and on provisioning.
    assert dashboard["id"] is None
    assert isinstance(dashboard["version"], int)
    assert dashboard["editable"] in (True, False)
    assert dashboard["graphTooltip"] in (0, 1, 2)
    assert {"from", "to"} <= dashboard["time"].keys()
    assert isinstance(dashboard["tags"], list)
    assert "cbmon" in dashboard["tags"]
    assert isinstance(dashboard["templating"]["list"], list)
    assert isinstance(dashboard["annotations"]["list"], list)


def test_datasource_variable(dashboard: dict[str, Any]) -> None:
    """template-datasource-rule: exactly one datasource variable, for Prometheus."""
    variables = dashboard["templating"]["list"]
    datasources = [v for v in variables if v["type"] == "datasource"]
    assert len(datasources) == 1
    [ds] = datasources
    assert ds["name"] == "DS_PROMETHEUS"
    assert ds["query"] == "prometheus"
    # File provisioning ignores __inputs; the variable is what makes one file work both ways.
    assert dashboard.get("__inputs", []) == []


def test_job_variable(dashboard: dict[str, Any]) -> None:
    """template-job-rule: a multi-value ``job`` variable from label_values(..., job)."""
    job = _variables(dashboard)["job"]
    assert job["type"] == "query"
    assert job["datasource"] == DATASOURCE
    assert re.fullmatch(r"label_values\(\w+(\{[^}]*\})?, job\)", job["query"]["query"])
    assert job["definition"] == job["query"]["query"]
    assert job["multi"] is True
    assert job["includeAll"] is True
    assert job["allValue"] == ".+"
    assert job["refresh"] == 2  # on time range change, so new jobs appear


def test_panels_have_unique_ids_and_fit_the_grid(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] > 0
        assert pos["h"] > 0
        assert pos["x"] >= 0
        assert pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_every_panel_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    """panel-datasource-rule, and the same for every target."""
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no targets"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_are_titled_described_and_have_units(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel["title"].strip()
        assert len(panel["description"]) > 20, panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        unit = defaults["unit"]
        assert unit in UNITS or unit.startswith("suffix:"), (panel["title"], unit)
        steps = defaults["thresholds"]["steps"]
        assert defaults["thresholds"]["mode"] == "absolute"
        assert steps[0]["value"] is None
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), panel["title"]
        assert isinstance(panel["fieldConfig"]["overrides"], list)


def test_refids_are_unique_and_exprs_present(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        refs = [t["refId"] for t in panel["targets"]]
        assert all(refs), panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_rates_use_rate_interval() -> None:
    """target-rate-interval-rule: every rate and irate over ``$__rate_interval``; an increase
    may also cover the whole time range shown (``$__range``)."""
    seen = 0
    for target in targets():
        for function, window in RANGE_FUNCTION.findall(target.expr):
            seen += 1
            allowed = {"$__rate_interval"} | ({"$__range"} if function == "increase" else set())
            assert window in allowed, f"{target.panel}: {function}(...[{window}])"
        assert not re.search(r"\[\d+[smhd]\]", target.expr), target.panel
    assert seen >= 10


def test_every_selector_matches_the_job_variable() -> None:
    """target-job-rule."""
    for target in targets():
        selectors = SELECTOR.findall(target.expr)
        assert selectors, target.expr
        for name, matchers in selectors:
            assert re.search(r'job=~"\$job\|?"', matchers), f"{target.panel}: {name}{matchers}"


def test_database_variable(dashboard: dict[str, Any]) -> None:
    """Like ``job``: any number of databases, All matching series without the label too."""
    database = _variables(dashboard)["database"]
    assert database["type"] == "query"
    assert database["datasource"] == DATASOURCE
    assert database["query"]["query"] == 'label_values(cbmon_build_info{job=~"$job"}, database)'
    assert database["definition"] == database["query"]["query"]
    assert (database["multi"], database["includeAll"], database["allValue"]) == (True, True, ".*")


def test_every_selector_of_a_database_series_matches_the_database_variable() -> None:
    """Scrape health and process metrics are the process's, with no database label."""
    for target in targets():
        for name, matchers in SELECTOR.findall(target.expr):
            if name == "up" or name.startswith("process_"):
                continue
            wanted = r'database=~"\$database\|?"'
            assert re.search(wanted, matchers), f"{target.panel}: {name}{matchers}"
        # aggregations keep each database apart
        for labels in re.findall(r"by \(([^)]*)\)", target.expr):
            if "job" in labels:
                assert "database" in labels, f"{target.panel}: by ({labels})"


def test_the_fleet_shows_the_worst_databases_first() -> None:
    path = ROOT / "dashboards" / "cbmon-fleet.json"
    fleet = {t.panel: t for t in targets([path])}
    assert fleet["Success rate by database, worst first"].expr.startswith("sort(")
    assert fleet["Backlog by database, largest first"].expr.startswith("sort_desc(")
    assert fleet["Since last poll, oldest first"].expr.startswith("sort_desc(")
    assert "cbmon_database_up" in fleet["Databases down"].expr
    assert all(t.instant for t in targets([path]) if "first" in t.panel)


def test_drill_down_is_for_one_event_type() -> None:
    dashboard = load_dashboard(ROOT / "dashboards" / "cbmon-event-type.json")
    variable = _variables(dashboard)["event_type"]
    assert variable["type"] == "query"
    assert variable["datasource"] == DATASOURCE
    assert re.fullmatch(
        r'label_values\(cbmon_callback_attempts_total\{job=~"\$job"\}, event_type\)',
        variable["query"]["query"],
    )
    assert variable["multi"] is False
    for target in targets([ROOT / "dashboards" / "cbmon-event-type.json"]):
        assert 'event_type="$event_type"' in target.expr, target.panel


def test_overview_shows_what_an_operator_needs() -> None:
    dashboard = load_dashboard(ROOT / "dashboards" / "cbmon-overview.json")
    by_title: dict[str, list[dict[str, Any]]] = {}
    for panel in panels(dashboard):
        by_title.setdefault(panel["title"], []).append(panel)
    exprs = " ".join(t.expr for t in targets([ROOT / "dashboards" / "cbmon-overview.json"]))
    stats = {p["title"] for p in panels(dashboard) if p["type"] == "stat"}
    assert {"Success rate", "Average latency", "Queue backlog"} <= stats
    for needle in (
        "histogram_quantile(0.95",
        "cbmon_queue_oldest_age_seconds",
        "cbmon:callback_errors:rate5m",
        "cbmon_callback_errors_total",
        "cbmon_slo_state",
        "ALERTS{",
        "cbmon_database_up",
        "cbmon_last_poll_timestamp_seconds",
        "up{",
        # callbacks, not attempts
        "cbmon_callbacks_delivered_total",
        "cbmon_callbacks_dead_total",
        "cbmon_callback_duplicate_deliveries_total",
        "cbmon_callback_tries_bucket",
        "histogram_quantile(0.95, sum by (le) (max by (job, database, event_type, le) "
        "(rate(cbmon_callback_end_to_end_seconds_bucket",
        "cbmon_queue_items",
    ):
        assert needle in exprs, needle
    [table] = [p for p in panels(dashboard) if p["type"] == "table" and "event type" in p["title"]]
    assert all(t["instant"] and t["format"] == "table" for t in table["targets"])


def _colour(steps: list[dict[str, Any]], value: float) -> str:
    """Grafana's rule: the last step whose value the number reaches."""
    colour: str = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return colour


COLOURS = {Level.OK: "green", Level.WARNING: "orange", Level.CRITICAL: "red"}


def _steps(panel: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return steps


@pytest.mark.parametrize(
    ("title", "slo", "values"),
    [
        ("Success rate", "success_rate", [0.98, 0.989999, 0.99, 0.993, 0.995, 0.99501, 1.0]),
        ("Average latency", "avg_latency", [0.0, 0.149999, 0.15, 0.3, 0.5, 0.500001, 2.0]),
        ("Queue backlog", "backlog", [0, 999, 1000, 3000, 5000, 5001, 10**6]),
    ],
)
def test_stat_colours_agree_with_cbmons_judgement(
    title: str, slo: str, values: list[float]
) -> None:
    for path in DASHBOARDS:
        for panel in panels(load_dashboard(path)):
            if panel["type"] != "stat" or panel["title"] != title:
                continue
            for value in values:
                assert _colour(_steps(panel), value) == COLOURS[judge_slo(slo, value, DEFAULT)], (
                    path.name,
                    title,
                    value,
                )


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """target-promql-rule and template-label-promql-rule, by Prometheus's own parser."""
    promtool = require_binary("promtool")
    rules = [
        {"record": f"dashboard:target_{i}", "expr": expand(t.expr, SAMPLE_VALUES)}
        for i, t in enumerate(targets())
    ]
    for path in DASHBOARDS:
        for variable in load_dashboard(path)["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                match = re.fullmatch(r"label_values\((.+), \w+\)", query)
                assert match, query
                expr = expand(match[1], SAMPLE_VALUES)
                rules.append({"record": f"dashboard:variable_{len(rules)}", "expr": expr})
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_exist() -> None:
    """Every name a panel queries is a documented cbmon metric or a rule of alerts.yml."""
    documented = set(
        # a name may be documented with its labels: `cbmon_queue_items{state}`
        re.findall(
            r"`(cbmon_[a-z_]+)(?:\{[a-z_,]*\})?`",
            (ROOT / "docs" / "metrics.md").read_text("utf-8"),
        )
    )
    groups = yaml.safe_load((ROOT / "alerts.yml").read_text("utf-8"))["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    for target in targets():
        for name, _ in SELECTOR.findall(target.expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            known = (
                base in documented
                or name in recorded
                or name in {"up", "ALERTS"}
                or name.startswith("process_")
            )
            assert known, f"{target.panel}: {name}"


def test_provisioning_files() -> None:
    [datasources] = (PROVISIONING / "datasources").glob("*.yml")
    ds = yaml.safe_load(datasources.read_text("utf-8"))
    assert ds["apiVersion"] == 1
    [prom] = ds["datasources"]
    assert prom["type"] == "prometheus"
    assert prom["access"] == "proxy"
    assert prom["url"].startswith("http")
    [providers] = (PROVISIONING / "dashboards").glob("*.yml")
    dash = yaml.safe_load(providers.read_text("utf-8"))
    assert dash["apiVersion"] == 1
    [provider] = dash["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


@pytest.mark.parametrize("missed", [0.0, 1.0, 2.9, 2.999, 3.0, 3.5, 10.0])
def test_a_scheduler_job_is_red_where_cbmon_counts_it_failing(missed: float) -> None:
    """Runs missed (the worst job's time without a success over its interval) turns red where
    the judge counts the job failing, at the default mechanism.missed_runs; the count of
    failing jobs turns red from one, where CallbackSchedulerJobFailing fires."""
    from cbmon.config.schema import Mechanism
    from cbmon.domain import Job
    from cbmon.slo.mechanism import job_failing

    missed_runs = Mechanism().missed_runs
    interval, now = 60.0, 10_000.0
    job = Job("drain", enabled=True, interval=interval, since=now - missed * interval)
    failing = job_failing(job, now, missed_runs) is not None
    dashboard = load_dashboard(ROOT / "dashboards" / "cbmon-overview.json")
    by_title = {p["title"]: p for p in panels(dashboard)}
    assert _colour(_steps(by_title["Runs missed (worst job)"]), missed) == (
        "red" if failing else "green"
    )
    count = judge_slo("scheduler_jobs_failing", float(failing), DEFAULT)
    assert _colour(_steps(by_title["Scheduler jobs failing"]), float(failing)) == COLOURS[count]
