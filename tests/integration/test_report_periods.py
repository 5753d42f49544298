"""Which period a report covers and what it compares with: ``--compare`` in every format,
``--by`` in minutes, the CSV's period columns, and the queue judged only when the report
ends now."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgSchema
from tests.support import cli
from tests.support.report_data import PERIOD, load, report_json, run, write_config

PREVIOUS = ("2026-02-28T15:00:00Z", "2026-03-01T01:00:00Z")  # the 10 h before PERIOD
EVENT_TYPE = "coalesce(nullif(event_type, ''), 'unknown')"


@pytest.fixture
def loaded(pg: PgSchema, tmp_path: Path) -> Path:
    load(pg)
    return write_config(pg, tmp_path / "cbmon.yml")


def _truth(pg: PgSchema, start: str, end: str) -> dict[str, dict[str, Any]]:
    rows = pg.conn.execute(
        f"""
        SELECT coalesce({EVENT_TYPE}, '(all)'), count(*),
               count(*) FILTER (WHERE status IS DISTINCT FROM 'COMPLETED'),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time) FILTER (
                   WHERE execution_time BETWEEN 0 AND 3600000
                     AND execution_time <> 'NaN'::float8)
        FROM callback_logs WHERE created_at >= %s AND created_at < %s
        GROUP BY ROLLUP ({EVENT_TYPE})
        """,
        [start, end],
    ).fetchall()
    return {r[0]: {"calls": r[1], "failures": r[2], "p95_ms": r[3]} for r in rows}


def test_compare_gives_the_previous_period_of_the_same_length(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--compare")
    previous = data["previous"]
    assert previous["period"] == {"from": PREVIOUS[0], "to": PREVIOUS[1], "seconds": 36000.0}
    truth = _truth(pg, *PREVIOUS)
    assert truth["(all)"]["calls"] == 3600  # the data starts at 00:00: one hour of it
    for row in [previous["overall"], *previous["event_types"]]:
        # an event type with errors only in that period has no attempts
        expected = truth.get(
            row.get("event_type", "(all)"), {"calls": 0, "failures": 0, "p95_ms": None}
        )
        assert (row["calls"], row["failures"], row["p95_ms"]) == (
            expected["calls"],
            expected["failures"],
            expected["p95_ms"],
        )
    # the current period is untouched by the comparison
    assert data["overall"] == report_json(pg, loaded, *PERIOD)["overall"]
    assert report_json(pg, loaded, *PERIOD)["previous"] is None


@pytest.mark.slow
def test_compare_is_shown_in_every_format(pg: PgSchema, loaded: Path) -> None:
    title = "Compared with the previous 10h (2026-02-28 15:00:00Z to 2026-03-01 01:00:00Z)"
    table = run(pg, loaded, *PERIOD, "--compare").stdout
    assert title + ":" in table
    rows = table[table.index(title) :].splitlines()
    assert rows[1].split()[:5] == ["event", "type", "calls", "before", "success"]
    assert rows[2].split()[:3] == ["(all)", "36000", "3600"]
    markdown = run(pg, loaded, *PERIOD, "--compare", "--format", "md").stdout
    assert f"### {title}" in markdown
    assert "| (all) | 36000 | 3600 |" in markdown
    html = run(pg, loaded, *PERIOD, "--compare", "--format", "html").stdout
    assert f"<h2>{title}</h2>" in html
    rows_csv = list(
        csv.DictReader(io.StringIO(run(pg, loaded, *PERIOD, "--compare", "--format", "csv").stdout))
    )
    before = [r for r in rows_csv if r["period_from"] == PREVIOUS[0]]
    assert [r["event_type"] for r in before][:1] == [""]
    assert int(before[0]["calls"]) == 3600
    assert all(r["period_to"] == PREVIOUS[1] for r in before)


def test_csv_says_which_period_it_covers(pg: PgSchema, loaded: Path) -> None:
    text = run(pg, loaded, *PERIOD, "--format", "csv", "--by", "hour").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.startswith("period_from,period_to,bucket,event_type,calls,")
    assert {(r["period_from"], r["period_to"]) for r in rows} == {
        ("2026-03-01T01:00:00Z", "2026-03-01T11:00:00Z")
    }


def test_md_is_markdown(pg: PgSchema, loaded: Path) -> None:
    assert run(pg, loaded, *PERIOD, "--format", "md").stdout == (
        run(pg, loaded, *PERIOD, "--format", "markdown").stdout
    )


def test_error_tables_align_counts_right_and_messages_left(pg: PgSchema, loaded: Path) -> None:
    markdown = run(pg, loaded, *PERIOD, "--format", "markdown").stdout
    assert "| count | last seen | message |\n|---:|:---|:---|" in markdown
    html = run(pg, loaded, *PERIOD, "--format", "html").stdout
    errors = html[html.index("<h2>Most frequent errors</h2>") :]
    assert '<th>count</th><th class="text">last seen</th><th class="text">message</th>' in errors
    assert re.search(
        r'<tr><td>\d+</td><td class="text">[^<]+</td><td class="text">HTTP 500<', errors
    )


def test_the_footer_names_an_unjudged_figure_as_the_table_does(pg: PgSchema, loaded: Path) -> None:
    html = run(pg, loaded, *PERIOD, "--format", "html").stdout
    assert "fewer than 20 events: unknown" in html
    assert "not judged (-)" not in html
    table = run(pg, loaded, *PERIOD).stdout
    assert "fewer than 20 events: not judged (-)" in table


@pytest.mark.slow
def test_by_accepts_minutes_and_matches_sql(pg: PgSchema, loaded: Path) -> None:
    data = report_json(pg, loaded, *PERIOD, "--by", "15m")
    assert data["period"]["by"] == "15m"
    assert len(data["series"]) == 40
    truth = dict(
        pg.conn.execute(
            "SELECT to_timestamp(floor(extract(epoch FROM created_at) / 900) * 900), count(*) "
            "FROM callback_logs WHERE created_at >= %s AND created_at < %s GROUP BY 1",
            ["2026-03-01T01:00:00Z", "2026-03-01T11:00:00Z"],
        ).fetchall()
    )
    got = {datetime.fromisoformat(p["start"]): p["overall"]["calls"] for p in data["series"]}
    assert got == truth
    assert set(got.values()) == {900}
    assert report_json(pg, loaded, *PERIOD, "--by", "hour")["period"]["by"] == "hour"


def test_a_one_hour_html_report_draws_lines(pg: PgSchema, tmp_path: Path) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, created_at) "
        "SELECT 'pay', 'COMPLETED', 40 + i % 50, now() - i * interval '1 second' "
        "FROM generate_series(1, 3500) AS i"
    )
    config = write_config(pg, tmp_path / "cbmon.yml")
    page = run(pg, config, "--since", "1h", "--format", "html").stdout
    latency = re.findall(r"<svg .*?</svg>", page, flags=re.S)[1]
    path = re.search(r'data-series="p95".*?<path d="([^"]+)"', latency, flags=re.S)
    assert path is not None
    assert len(path.group(1).split()) >= 12  # 5-minute steps: a line, not a dot
    assert "per 5m" in latency


QUEUE_OF_1200 = "INSERT INTO callback_queue (event_type) SELECT 'q' FROM generate_series(1, 1200)"


def test_a_historical_report_does_not_judge_todays_queue(pg: PgSchema, loaded: Path) -> None:
    pg.conn.execute(QUEUE_OF_1200)  # a warning now (1000 to 5000)
    base = ["--dsn", pg.dsn, "--config", str(loaded)]
    old = ["--from", "2020-01-01", "--to", "2020-01-02"]
    table = cli.cbmon("report", *base, *old, "--fail-on", "warning")
    assert table.code == 0, table.stdout + table.stderr
    assert "verdict WARNING" not in table.stdout
    assert "backlog not judged: the report ends before now" in table.stdout
    data = json.loads(cli.cbmon("report", *base, *old, "--format", "json").stdout)
    assert data["queue"]["backlog"] == 1207  # shown as it is now ...
    assert data["queue"]["verdicts"] == {"backlog": "unknown"}  # ... and not judged
    assert data["verdict"] == "unknown"  # nothing in 2020 to judge
    # The same queue in a report that ends now is a warning, and --fail-on says so.
    now = cli.cbmon("report", *base, "--since", "1h", "--fail-on", "warning")
    assert now.code == 3
    assert "(backlog warning)" in now.stdout
    future = cli.cbmon("report", *base, "--from", "2026-01-01", "--to", "2099-01-01")
    assert "(backlog warning)" in future.stdout  # a period that includes now judges it
