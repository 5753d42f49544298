"""Each output format carries the same figures; the HTML file holds its charts."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgSchema
from tests.support.report_data import PERIOD, load, report_json, run, write_config

EMPTY_PERIOD = ["--from", "2025-01-01T00:00:00Z", "--to", "2025-01-02T00:00:00Z"]


@pytest.fixture
def loaded(pg: PgSchema, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    load(pg)
    config = write_config(pg, tmp_path / "cbmon.yml")
    return config, report_json(pg, config, *PERIOD, "--by", "hour")


def test_table_is_aligned_and_names_every_event_type(
    pg: PgSchema, loaded: tuple[Path, dict[str, Any]]
) -> None:
    config, data = loaded
    result = run(pg, config, *PERIOD)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("event type"))
    rows = lines[header + 1 : header + 2 + len(data["event_types"])]
    assert [line.split()[0] for line in rows] == [
        "(all)",
        *(row["event_type"] for row in data["event_types"]),
    ]
    assert len({len(line) for line in (lines[header], *rows)}) == 1  # one width: aligned
    overall = rows[0].split()
    assert overall[1] == str(data["overall"]["calls"])
    assert overall[3] == f"{data['overall']['success_rate'] * 100:.3f}%"
    assert overall[6] == f"{data['overall']['p95_ms']:.1f}"
    assert "Queue now: 7 waiting" in result.stdout
    assert "HTTP 500" in result.stdout
    assert result.stderr == ""  # no progress when stderr is not a terminal


def test_markdown_tables(pg: PgSchema, loaded: tuple[Path, dict[str, Any]]) -> None:
    config, data = loaded
    result = run(pg, config, *PERIOD, "--format", "markdown", "--by", "hour")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("## Callbacks 2026-03-01 01:00:00Z to 2026-03-01 11:00:00Z")
    table = [line for line in lines if line.startswith("| (all) |")]
    assert len(table) == 2  # the callbacks, then the error budget spent
    cells = [cell.strip() for cell in table[0].strip("|").split("|")]
    calls, failures = data["overall"]["calls"], data["overall"]["failures"]
    spent = f"{(failures / calls) / 0.005 * 100:.1f}%"
    assert table[1] == f"| (all) | success 99.50% | {calls} | {failures} | {spent} |"
    assert cells[1] == str(data["overall"]["calls"])
    assert "|:---|---:|" in result.stdout
    assert sum(line.startswith("| 2026-03-01 ") for line in lines) == 10  # one per hour


def test_csv_matches_json(pg: PgSchema, loaded: tuple[Path, dict[str, Any]]) -> None:
    config, data = loaded
    result = run(pg, config, *PERIOD, "--format", "csv", "--by", "hour")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    summary = [row for row in rows if row["bucket"] == ""]
    assert [row["event_type"] for row in summary] == [
        "",
        *(row["event_type"] for row in data["event_types"]),
    ]
    for row, expected in zip(summary, [data["overall"], *data["event_types"]], strict=True):
        assert int(row["calls"]) == expected["calls"]
        assert int(row["failures"]) == expected["failures"]
        for name in ("success_rate", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
            value = expected[name]
            assert (float(row[name]) if row[name] else None) == value, name
        assert row["verdict_success_rate"] == expected["verdicts"]["success_rate"]
    series = [row for row in rows if row["bucket"] and row["event_type"] == ""]
    assert [row["bucket"] for row in series] == [p["start"] for p in data["series"]]
    assert [float(row["p95_ms"]) for row in series] == [
        p["overall"]["p95_ms"] for p in data["series"]
    ]


@pytest.mark.slow
def test_html_is_one_file_with_charts(
    pg: PgSchema, loaded: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    config, data = loaded
    target = tmp_path / "report.html"
    result = run(pg, config, *PERIOD, "--format", "html", "--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "<link" not in page
    assert re.findall(r'(?:src|href)="', page) == []  # nothing fetched from anywhere
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(charts) == 4  # failures and errors have a chart of their own scale
    rate, latency, calls, problems = charts
    assert "Success rate per hour" in rate
    assert 'data-series="success rate"' in rate
    assert 'data-threshold="normal"' in rate
    assert 'data-threshold="alert"' in rate
    assert "ok &gt; 99.50%" in rate
    assert "critical &lt; 99.00%" in rate
    for series in ("avg", "p50", "p95", "p99"):
        assert f'data-series="{series}"' in latency
    assert 'data-threshold="slow"' in latency
    assert "avg critical &gt; 500 ms" in latency
    assert "log scale" in latency
    assert 'data-series="calls"' in calls
    assert 'data-series="failures"' in problems
    assert 'data-series="errors"' in problems
    # The period [01:00, 11:00) is chosen hourly without --by: ten points per line.
    path = re.search(r'data-series="p95".*?<path d="([^"]+)"', latency, flags=re.S)
    assert path is not None
    assert len(path.group(1).split()) == 10
    assert len(re.findall(r"<rect [^>]*><title>", calls)) == 10
    # The axis says the date and the zone, not the hour alone.
    assert ">01:00<" in rate
    assert ">Mar 1<" in rate
    assert "UTC" in rate
    for row in data["event_types"]:
        assert f'<td class="text">{row["event_type"]}</td>' in page
    assert "critical" in page


def test_empty_period_is_a_valid_report(pg: PgSchema, tmp_path: Path) -> None:
    load(pg)
    config = write_config(pg, tmp_path / "cbmon.yml")
    data = report_json(pg, config, *EMPTY_PERIOD)
    assert data["period"]["empty"] is True
    assert data["overall"]["calls"] == 0
    assert data["overall"]["success_rate"] is None
    assert data["event_types"] == []
    assert data["top_errors"] == []
    assert data["overall"]["verdicts"] == {
        "success_rate": "unknown",
        "avg_latency": "unknown",
        "backlog": "unknown",  # a period long past does not judge today's queue
        # the reference tables tell callbacks apart, but none finished in the period
        "callback_success_rate": "unknown",
        "dead_letters": "unknown",
        "end_to_end_p95": "unknown",
    }
    table = run(pg, config, *EMPTY_PERIOD)
    assert table.exit_code == 0
    assert "No callback attempts and no errors were recorded in this period." in table.stdout
    for output_format in ("markdown", "csv", "html"):
        result = run(pg, config, *EMPTY_PERIOD, "--format", output_format)
        assert result.exit_code == 0, output_format
    html = run(pg, config, *EMPTY_PERIOD, "--format", "html").stdout
    assert html.count("<svg ") == 4
    assert "No callback attempts" in html
