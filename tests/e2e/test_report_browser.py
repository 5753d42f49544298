"""The HTML report rendered by headless Chromium: no two texts of a chart overlap, every text
stays inside its chart, whatever the period and the step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support.browser import measure_charts, screenshot
from tests.support.cli import cbmon
from tests.support.report_data import write_config

pytestmark = pytest.mark.slow

# A month of traffic, denser over the last two days: fast callbacks with slow outliers (so
# the latency chart spans decades and the 150 and 200 ms lines lie close), failures and
# errors at a small scale beside thousands of calls.
TRAFFIC = """
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT (ARRAY['order_created', 'order_shipped', 'refund'])[1 + i % 3],
       CASE WHEN i % 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
       CASE WHEN i % 250 = 0 THEN 4000 + i % 3000 WHEN i % 20 = 0 THEN 600 ELSE 8 + i % 40 END,
       now() - i * interval '5 seconds'
FROM generate_series(1, 34560) AS i;
INSERT INTO callback_logs (event_type, status, execution_time, created_at)
SELECT 'order_created', 'COMPLETED', 30 + i % 200,
       now() - interval '2 days' - i * interval '10 minutes'
FROM generate_series(1, 4000) AS i;
INSERT INTO callback_errors (event_type, error_message, created_at)
SELECT 'order_created', 'HTTP 500', now() - i * interval '97 seconds'
FROM generate_series(1, 1500) AS i;
INSERT INTO callback_queue (event_type) SELECT 'order_created' FROM generate_series(1, 1100);
"""


@pytest.fixture
def reports(pg: PgSchema, tmp_path: Path) -> dict[str, Path]:
    pg.conn.execute(TRAFFIC)
    config = write_config(pg, tmp_path / "cbmon.yml")
    cases = {
        "1h": ["--since", "1h"],
        "24h compared": ["--since", "24h", "--compare"],
        "30d": ["--since", "30d"],
        "3h by minute": ["--since", "3h", "--by", "1m"],
        "48h by 10m": ["--since", "48h", "--by", "10m"],
        "empty": ["--from", "2020-01-01", "--to", "2020-01-02"],
    }
    pages = {}
    for name, args in cases.items():
        page = tmp_path / (name.replace(" ", "-") + ".html")
        base = ["--dsn", pg.dsn, "--config", str(config), "--format", "html", "-o", str(page)]
        ran = cbmon("report", *base, *args)
        assert ran.code == 0, ran.stderr
        pages[name] = page
    return pages


def test_no_text_of_a_chart_overlaps_another_or_leaves_the_chart(
    reports: dict[str, Path],
) -> None:
    for name, page in reports.items():
        boxes = measure_charts(page)
        assert len({box.chart for box in boxes}) == 4, name
        outside = [box.text for box in boxes if not box.inside]
        assert outside == [], (name, outside)
        collisions = [
            (a.text, b.text)
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
            if a.chart == b.chart and a.overlaps(b)
        ]
        assert collisions == [], (name, collisions)


def test_the_latency_chart_labels_its_close_thresholds_apart(
    reports: dict[str, Path],
) -> None:
    boxes = measure_charts(reports["24h compared"])
    latency = {box.text: box for box in boxes if box.chart == 1}
    ok, slow = latency["avg ok < 150 ms"], latency["slow > 200 ms"]
    assert not ok.overlaps(slow)
    assert "time (UTC" in " ".join(latency)


def test_a_screenshot_of_the_report(reports: dict[str, Path], tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    assert screenshot(reports["24h compared"].as_uri(), shot, 1000, 3000) == (1000, 3000)
    assert shot.stat().st_size > 50_000  # a page of tables and four charts, not a blank


# A day of callbacks told apart: most delivered at once, some after a retry or three, a few
# dead letters, queue waits from milliseconds to minutes so end to end spans decades.
CALLBACKS = """
INSERT INTO callback_queue (id, event_type, created_at)
OVERRIDING SYSTEM VALUE
SELECT i, (ARRAY['order_created', 'order_shipped'])[1 + i % 2], now() - i * interval '30 seconds'
FROM generate_series(1, 2880) AS i;
INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt, created_at)
SELECT q.event_type,
       CASE WHEN (q.id % 101 = 0) OR (a < 1 + q.id % 4 AND q.id % 9 = 0) THEN 'FAILED'
            ELSE 'COMPLETED' END,
       20 + q.id % 50, q.id, a,
       q.created_at + (q.id % 7) * interval '100 milliseconds'
           + (a - 1) * (1 + q.id % 120) * interval '1 second'
FROM callback_queue AS q,
     generate_series(1, CASE WHEN q.id % 101 = 0 THEN 4 WHEN q.id % 9 = 0 THEN 1 + q.id % 4
                             ELSE 1 END) AS a
WHERE q.id <= 2880;
"""


def test_the_callbacks_charts_keep_their_texts_apart(pg: PgSchema, tmp_path: Path) -> None:
    pg.conn.execute(CALLBACKS)
    config = write_config(pg, tmp_path / "cbmon.yml")
    for args in (["--since", "24h"], ["--since", "3h", "--by", "1m"]):
        page = tmp_path / "callbacks.html"
        base = ["--dsn", pg.dsn, "--config", str(config), "--format", "html", "-o", str(page)]
        ran = cbmon("report", *base, *args)
        assert ran.code == 0, ran.stderr
        boxes = measure_charts(page)
        assert len({box.chart for box in boxes}) == 6, args  # end to end and dead letters too
        assert [box.text for box in boxes if not box.inside] == [], args
        collisions = [
            (a.text, b.text)
            for i, a in enumerate(boxes)
            for b in boxes[i + 1 :]
            if a.chart == b.chart and a.overlaps(b)
        ]
        assert collisions == [], (args, collisions)
