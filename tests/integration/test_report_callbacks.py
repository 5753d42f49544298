"""``cbmon report`` and ``cbmon check`` on callbacks, not only attempts: the reference worker
delivers to real receivers on 127.0.0.1 that fail, stall and recover, and every callback figure
of the report (per event type and overall, in every format, and the period compared with) equals
an independent computation over the same rows: window functions in SQL for the counts, the
percentiles interpolated here from the raw times."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cbmon.cli import cli
from cbmon.domain import Level
from cbmon.report import build_report, renderer
from cbmon.report.model import TRIES_LABELS, Report
from cbmon.report.period import PeriodRequest
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest
from tests.conftest import PgSchema
from tests.support.delivering import deliver
from tests.support.receiver import Reply, receiver
from tests.support.report_data import write_config

# Outcomes by their definitions, with window functions rather than the report's probes: a
# callback is delivered by its lowest-id successful attempt, any other is a duplicate; dead when
# attempt 1 + 3 retries fails; a failed first attempt is recovered when a later one succeeded.
TRUTH = """
WITH l AS (
    SELECT l.*, l.status = 'COMPLETED' AS ok,
           min(l.id) FILTER (WHERE l.status = 'COMPLETED') OVER (PARTITION BY l.queue_id)
               AS first_ok,
           max(l.id) FILTER (WHERE l.status = 'COMPLETED') OVER (PARTITION BY l.queue_id)
               AS last_ok
    FROM callback_logs AS l
    WHERE l.queue_id IS NOT NULL
), period AS (
    SELECT *, id = first_ok OR (NOT ok AND attempt >= 4) AS finished
    FROM l WHERE created_at >= %(from)s AND created_at < %(to)s
)
SELECT event_type,
       count(DISTINCT queue_id) AS callbacks,
       count(*) FILTER (WHERE id = first_ok) AS delivered,
       count(*) FILTER (WHERE NOT ok AND attempt >= 4) AS dead,
       count(*) FILTER (WHERE ok AND id <> first_ok) AS duplicates,
       count(*) FILTER (WHERE attempt = 1) AS first_attempts,
       count(*) FILTER (WHERE attempt = 1 AND id = first_ok) AS first_try,
       count(*) FILTER (WHERE attempt = 1 AND NOT ok) AS first_failed,
       count(*) FILTER (WHERE attempt = 1 AND NOT ok AND last_ok > id) AS recovered,
       count(*) FILTER (WHERE finished AND attempt = 1) AS tries_1,
       count(*) FILTER (WHERE finished AND attempt = 2) AS tries_2,
       count(*) FILTER (WHERE finished AND attempt = 3) AS tries_3,
       count(*) FILTER (WHERE finished AND attempt = 4) AS tries_4,
       count(*) FILTER (WHERE finished AND attempt >= 5) AS tries_5
FROM period GROUP BY ROLLUP (event_type)
"""
# The raw times: queued to each first attempt, and to each delivering attempt, in ms.
TIMES = """
SELECT l.event_type, l.attempt = 1 AS first,
       l.id = (SELECT min(o.id) FROM callback_logs o
               WHERE o.queue_id = l.queue_id AND o.status = 'COMPLETED') AS delivering,
       extract(epoch FROM l.created_at - q.created_at)::float8 * 1000 AS ms
FROM callback_logs AS l JOIN callback_queue AS q ON q.id = l.queue_id
WHERE l.created_at >= %(from)s AND l.created_at < %(to)s
"""


def percentile(values: Sequence[float], q: float) -> float | None:
    """percentile_cont by its definition: linear between the two nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def truth(pg: PgSchema, start: datetime, end: datetime) -> dict[str | None, dict[str, Any]]:
    period = {"from": start, "to": end}
    found: dict[str | None, dict[str, Any]] = {}
    with pg.conn.cursor() as cur:
        cur.execute(TRUTH, period)
        names = [d.name for d in cur.description or ()]
        for row in cur.fetchall():
            found[row[0]] = dict(zip(names[1:], row[1:], strict=True))
        cur.execute(TIMES, period)
        times = cur.fetchall()
    for key, own in found.items():
        mine = [t for t in times if key is None or t[0] == key]
        waits = [t[3] for t in mine if t[1]]
        ends = [t[3] for t in mine if t[2]]
        for q, name in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            own[f"wait_{name}"] = percentile(waits, q)
            own[f"end_{name}"] = percentile(ends, q)
        own["end_max_ms"] = max(ends, default=None)
    return found


def enqueue(pg: PgSchema, count: int, event_type: str) -> None:
    pg.conn.execute(
        "INSERT INTO callback_queue (event_type) SELECT %s FROM generate_series(1, %s)",
        (event_type, count),
    )


def traffic(pg: PgSchema) -> None:
    """pay: a receiver failing on and off, slow at times; ship: one that never recovers (dead
    letters); then a delivery made twice (a worker's lease ran out after it had delivered)."""
    with receiver() as flaky, receiver() as broken:
        flaky.replies = [
            Reply(500),
            Reply(200, delay=0.25),
            Reply(503),
            Reply(503),
            Reply(200),
            Reply(500),
            Reply(500),
            Reply(500),
            Reply(200, delay=0.1),
        ]
        enqueue(pg, 8, "pay")
        deliver(pg, flaky.url)
        broken.default = Reply(500)
        enqueue(pg, 2, "ship")
        enqueue(pg, 1, "mail")
        broken.replies = [Reply(200)]  # mail (or a ship) gets through at once
        deliver(pg, broken.url)
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt) "
        "SELECT event_type, 'COMPLETED', 30, id, attempts + 1 FROM callback_queue "
        "WHERE outcome = 'delivered' AND event_type = 'pay' ORDER BY id LIMIT 1"
    )


def report(pg: PgSchema, **request: Any) -> Report:
    config = pg.config()
    return build_report(
        config,
        ReportRequest(**request),
        progress=Progress.silent(io.StringIO()),
        statement_timeout=30.0,
    )


def figures(report_: Report) -> dict[str | None, dict[str, Any]]:
    """The report's callback figures, named as the truth names them."""
    found: dict[str | None, dict[str, Any]] = {}
    for row in (report_.overall, *report_.event_types):
        own, c = row.lifecycle, row.figures.callbacks
        assert own is not None
        tries = dict(
            zip(
                TRIES_LABELS, (c.tries[0], *_steps(c.tries), c.finished - c.tries[-1]), strict=False
            )
        )
        found[row.event_type] = {
            "callbacks": own.callbacks,
            "delivered": c.delivered,
            "dead": c.dead,
            "duplicates": c.duplicates,
            "first_attempts": own.first_attempts,
            "first_try": own.first_try,
            "first_failed": own.first_failed,
            "recovered": own.recovered,
            **{f"tries_{label[0]}": n for label, n in tries.items()},
            "wait_p50_ms": own.wait.p50_ms,
            "wait_p95_ms": own.wait.p95_ms,
            "wait_p99_ms": own.wait.p99_ms,
            "end_p50_ms": own.end.p50_ms,
            "end_p95_ms": own.end.p95_ms,
            "end_p99_ms": own.end.p99_ms,
            "end_max_ms": own.end.max_ms,
        }
    return found


def _steps(cumulative: Sequence[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(cumulative)]


def assert_equal(actual: dict[str, Any], expected: dict[str, Any], where: object) -> None:
    for name, value in expected.items():
        if name.endswith("_ms") and value is not None:
            assert actual[name] == pytest.approx(value, rel=1e-9), (where, name)
        else:
            assert actual[name] == value, (where, name)


@pytest.fixture
def delivered(pg: PgSchema) -> PgSchema:
    traffic(pg)
    return pg


@pytest.mark.slow
def test_every_callback_figure_equals_sql(delivered: PgSchema) -> None:
    pg = delivered
    found = report(pg, period=PeriodRequest(since=3600.0))
    assert found.lifecycle
    assert found.lifecycle_notes == ()
    expected = truth(pg, found.period.start, found.period.end)
    actual = figures(found)
    assert set(actual) == set(expected) == {None, "pay", "ship", "mail"}
    for key, own in expected.items():
        assert_equal(actual[key], own, key)
    # What the scenario made happen, so the comparison above is not of two empty sets.
    overall = actual[None]
    assert overall["dead"] >= 1
    assert overall["duplicates"] == 1
    assert overall["recovered"] >= 1
    assert overall["first_failed"] > overall["recovered"]  # the dead letters did not recover
    # The automated exception handling figure and the first-try rate, as shares.
    pay = next(row for row in found.event_types if row.event_type == "pay")
    assert pay.lifecycle is not None
    assert pay.lifecycle.recovered_share == (
        expected["pay"]["recovered"] / expected["pay"]["first_failed"]
    )
    assert pay.lifecycle.first_try_rate == (
        expected["pay"]["first_try"] / expected["pay"]["first_attempts"]
    )
    # Dead letters are judged as serve judges them: any is at least a warning.
    ship = next(row for row in found.event_types if row.event_type == "ship")
    assert ship.lifecycle is not None
    assert ship.lifecycle.state("dead_letters") is Level.WARNING
    assert found.verdict >= Level.WARNING


@pytest.mark.slow
def test_every_format_carries_the_callbacks(delivered: PgSchema) -> None:
    pg = delivered
    found = report(pg, period=PeriodRequest(since=3600.0), by=60.0)
    expected = truth(pg, found.period.start, found.period.end)
    data = json.loads(renderer("json")(found))
    assert data["callbacks"] == {"enabled": True, "notes": []}
    for row in (data["overall"], *data["event_types"]):
        want, got = expected[row.get("event_type")], row["callbacks"]
        flat = {
            **{k: v for k, v in got.items() if not isinstance(v, dict)},
            **{f"tries_{k[0]}": v for k, v in got["tries"].items()},
            **{f"wait_{k}": v for k, v in got["queue_wait"].items()},
            **{f"end_{k}": v for k, v in got["end_to_end"].items()},
        }
        assert_equal(flat, want, row.get("event_type"))
        assert "dead_letters" in row["verdicts"]
    rows = list(csv.DictReader(io.StringIO(renderer("csv")(found))))
    summary = {r["event_type"] or None: r for r in rows if not r["bucket"]}
    for key, want in expected.items():
        assert int(summary[key]["delivered"]) == want["delivered"]
        assert int(summary[key]["dead"]) == want["dead"]
        assert int(summary[key]["tries_5+"]) == want["tries_5"]
        if want["end_p95_ms"] is not None:
            assert float(summary[key]["end_p95_ms"]) == pytest.approx(want["end_p95_ms"])
    series = [r for r in rows if r["bucket"] and not r["event_type"]]
    assert sum(int(r["dead"]) for r in series) == expected[None]["dead"]
    assert sum(int(r["delivered"]) for r in series) == expected[None]["delivered"]
    overall = expected[None]
    table = renderer("table")(found)
    line = next(x for x in table.splitlines() if x.startswith("(all)") and "%" in x and "-" in x)
    assert line.split()[1:4] == [str(overall[k]) for k in ("callbacks", "delivered", "dead")]
    assert "Callbacks (each queued callback once" in table
    assert "Callback times in ms" in table
    markdown = renderer("markdown")(found)
    assert f"| (all) | {overall['callbacks']} | {overall['delivered']} | {overall['dead']} |" in (
        markdown
    )
    page = renderer("html")(found)
    assert 'data-series="e2e p95"' in page
    assert 'data-series="dead"' in page
    assert "End to end per 1m" in page


def test_compare_gives_the_callbacks_of_the_period_before(pg: PgSchema, tmp_path: Path) -> None:
    """Two hours of callbacks logged by hand: the compare table and JSON hold each hour's."""
    now = datetime.now(UTC).replace(microsecond=0)
    earlier, later = now - timedelta(minutes=90), now - timedelta(minutes=30)
    for index, (at, statuses) in enumerate(
        [
            (earlier, ["FAILED", "COMPLETED"]),
            (earlier, ["FAILED"] * 4),
            (later, ["COMPLETED"]),
            (later, ["COMPLETED", "COMPLETED"]),  # delivered, then a duplicate
        ]
    ):
        queued = at - timedelta(seconds=5 + index)
        row = pg.conn.execute(
            "INSERT INTO callback_queue (event_type, created_at) VALUES ('pay', %s) RETURNING id",
            (queued,),
        ).fetchone()
        assert row is not None
        for attempt, status in enumerate(statuses, start=1):
            pg.conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, "
                "attempt, created_at) VALUES ('pay', %s, 20, %s, %s, %s)",
                (status, row[0], attempt if status == "FAILED" or attempt == 1 else 2,
                 at + timedelta(seconds=attempt)),
            )  # fmt: skip
    config = write_config(pg, tmp_path / "cbmon.yml")
    result = CliRunner().invoke(
        cli,
        ["report", "--dsn", pg.dsn, "--config", str(config), "--since", "1h", "--compare",
         "--format", "json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for block in (data, data["previous"]):
        start = datetime.fromisoformat(block["period"]["from"])
        end = datetime.fromisoformat(block["period"]["to"])
        want = truth(pg, start, end)[None]
        got = block["overall"]["callbacks"]
        for name in ("callbacks", "delivered", "dead", "duplicates", "first_failed", "recovered"):
            assert got[name] == want[name], name
    assert data["previous"]["overall"]["callbacks"]["dead"] == 1
    assert data["overall"]["callbacks"]["duplicates"] == 1
    text = CliRunner().invoke(
        cli,
        ["report", "--dsn", pg.dsn, "--config", str(config), "--since", "1h", "--compare"],
        catch_exceptions=False,
    ).stdout  # fmt: skip
    assert "Callbacks compared with the previous 1h" in text
    row = next(x for x in text.splitlines()[::-1] if x.startswith("(all)"))
    assert "(all)" in row


@pytest.mark.slow
def test_check_judges_the_callbacks(delivered: PgSchema) -> None:
    from cbmon.check import run_check, to_nagios, to_table

    result = run_check(delivered.config(), 3600.0)
    dead = {i.event_type: i for i in result.indicators if i.slo == "dead_letters"}
    expected = truth(delivered, datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert dead["ship"].value == expected["ship"]["dead"]
    assert dead["ship"].state is Level.WARNING
    assert result.status >= Level.WARNING
    shown = [line.split() for line in to_table(result).splitlines()]
    assert ["dead_letters", "ship", str(expected["ship"]["dead"]), "warning"] in (
        row[:4] for row in shown
    )
    ends = {i.event_type: i for i in result.indicators if i.slo == "end_to_end_p95"}
    assert ends["pay"].value == pytest.approx(expected["pay"]["end_p95_ms"] / 1000)
    # Nagios performance data carries them, with the thresholds in the guidelines' ranges.
    perf = to_nagios(result).splitlines()[0].split(" | ")[1].split()
    assert f"'dead_letters'={expected[None]['dead']};@1:;;0" in perf
    rate = expected[None]["delivered"] / (expected[None]["delivered"] + expected[None]["dead"])
    datum = next(d for d in perf if d.startswith("'callback_success_rate'="))
    assert datum.endswith("%;@~:99.5;99:;0;100")
    assert float(datum.split("=")[1].split("%")[0]) == pytest.approx(rate * 100, abs=1e-6)


def test_without_the_lifecycle_columns_the_report_says_so_in_one_line(pg: PgSchema) -> None:
    pg.conn.execute("DROP INDEX callback_logs_queue_id_idx")
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt) "
        "VALUES ('pay', 'COMPLETED', 20, 1, 1)"
    )
    found = report(pg, period=PeriodRequest(since=3600.0))
    assert not found.lifecycle
    assert found.overall.lifecycle is None
    table = renderer("table")(found)
    notes = [line for line in table.splitlines() if line.startswith("Callbacks: ")]
    assert len(notes) == 1
    assert "CREATE INDEX ON" in notes[0]
    data = json.loads(renderer("json")(found))
    assert data["callbacks"]["enabled"] is False
    assert data["overall"]["callbacks"] is None
    assert "Callbacks (each queued" not in table


@pytest.mark.slow
def test_an_event_type_filter_keeps_its_callbacks_only(delivered: PgSchema) -> None:
    found = report(delivered, period=PeriodRequest(since=3600.0), event_types=("pay",))
    expected = truth(delivered, found.period.start, found.period.end)
    actual = figures(found)
    assert set(actual) == {None, "pay"}
    assert_equal(actual[None], expected["pay"], None)  # overall is pay's alone
    assert_equal(actual["pay"], expected["pay"], "pay")
