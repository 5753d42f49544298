"""The status page of a real ``cbmon serve``, opened in a real headless Chromium: a breach
appears on a page already open, without a reload, and what the browser shows names the firing
alert, its event type and its state; the page is photographed on a desktop and a phone.

The photographs of a breach in progress land in ``$CBMON_SCREENSHOTS`` when it names a
directory (``CBMON_SCREENSHOTS=docs`` makes the ones docs/ shows), in a temporary one otherwise.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import PgSchema
from tests.support.attempts import insert
from tests.support.browser import chromium, dump_dom, gate, screenshot
from tests.support.dom import parse
from tests.support.processes import answers, free_port, running, serve_command, wait_for

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"


@contextmanager
def serve(
    pg: PgSchema, tmp_path: Path, slo: str = "{for: 0s, min_events: 10}", *extra: str
) -> Iterator[str]:
    config = tmp_path / "c.yml"
    tables = ", ".join(f"{t}: {{schema: {pg.name}}}" for t in ("logs", "errors", "queue"))
    config.write_text(f"tables: {{{tables}}}\nslo: {slo}\n")
    port = free_port()
    with running(serve_command(pg.dsn, config, port, *extra), log=tmp_path / "serve.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base}/readyz"), timeout=30)
        yield base


def firing(base: str) -> list[dict[str, object]] | None:
    alerts: list[dict[str, object]] = requests.get(f"{base}/api/v1/alerts", timeout=5).json()[
        "alerts"
    ]
    return alerts or None


def test_an_open_page_shows_a_breach_without_a_reload(pg: PgSchema, tmp_path: Path) -> None:
    insert(pg, "pay", ok=100, failed=0)
    with serve(pg, tmp_path) as base, gate(base) as held:
        browser: list[subprocess.CompletedProcess[str]] = []

        def open_page() -> None:
            browser.append(chromium("--virtual-time-budget=10000", "--dump-dom", held.url))

        opened = threading.Thread(target=open_page)
        opened.start()
        # The page has loaded (before the breach) and its script asks for it again: held.
        wait_for(lambda: len([s for s in held.seen if s.path == "/"]) >= 2, timeout=60)
        insert(pg, "pay", ok=95, failed=5)
        wait_for(lambda: firing(base), timeout=30)
        held.open.set()
        opened.join(90)
        assert not opened.is_alive()
    first, second = [seen for seen in held.seen if seen.path == "/"][:2]
    assert first.mode == "navigate"
    assert second.mode in ("cors", "same-origin")  # fetch() by the page's script
    assert not any(seen.mode == "navigate" for seen in held.seen[1:])  # never reloaded
    dom = parse(browser[0].stdout)
    alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type="pay")
    assert alert.attrs["data-severity"] == "critical"
    assert "s-critical" in dom.find("tr", data_event_type="pay").classes
    assert dom.find("span", class_="verdict").text == "CRITICAL"


def test_what_the_browser_shows_after_a_breach(pg: PgSchema, tmp_path: Path) -> None:
    with serve(pg, tmp_path) as base:
        insert(pg, "pay", ok=95, failed=5)
        insert(pg, HOSTILE, ok=30, failed=30)
        wait_for(lambda: (alerts := firing(base)) and len(alerts) == 3, timeout=30)
        dom = parse(dump_dom(f"{base}/"))
        alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type="pay")
        assert alert.attrs["data-severity"] == "critical"
        assert "Callback success rate 95.00% for event type pay (below 99.00%)" in alert.text
        cell = dom.find("tr", data_event_type="pay").find("td", data_slo="success_rate")
        assert cell.text.startswith("95.00% CRITICAL")
        # The hostile event type is text in the browser's DOM: no element came out of it.
        assert dom.find_all("img") == []
        hostile = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type=HOSTILE)
        assert HOSTILE in hostile.find("span", class_="scope").text


TYPES = ("order_created", "payment_captured", "refund_issued", "shipment_dispatched")


def traffic(pg: PgSchema, seconds: float) -> None:
    """A breach in progress: steady traffic in which payments start failing, refunds slow
    down and the queue grows; one event type too rare to judge."""
    rng = random.Random(14)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        for event_type in TYPES:
            failing = event_type == "payment_captured" and elapsed > seconds * 0.55
            slow = event_type == "refund_issued" and elapsed > seconds * 0.7
            quiet = elapsed < seconds * 0.3  # a clean start, so the sparklines read well
            odds = 0.12 if failing else 0.0 if quiet else 0.001
            failed = sum(rng.random() < odds for _ in range(8))
            took = rng.uniform(300, 700) if slow else rng.uniform(40, 120)
            insert(pg, event_type, ok=8 - failed, failed=failed, milliseconds=took)
        waiting = 12 if elapsed > seconds * 0.5 else 1
        pg.conn.execute(
            "INSERT INTO callback_queue (event_type) SELECT 'order_created' "
            "FROM generate_series(1, %s)",
            [waiting],
        )
        time.sleep(0.1)
    insert(pg, "rare", ok=1, failed=1)


def test_screenshots_of_a_breach_in_progress(pg: PgSchema, tmp_path: Path) -> None:
    into = Path(os.environ.get("CBMON_SCREENSHOTS") or tmp_path)
    slo = "{window: 1m, for: 3s, min_events: 20}"
    with serve(pg, tmp_path, slo, "--poll-interval", "1s") as base:
        traffic(pg, seconds=45)
        wait_for(lambda: (alerts := firing(base)) and len(alerts) >= 3, timeout=30)
        for name, width, height in (("status-page", 1280, 900), ("status-page-phone", 390, 844)):
            path = into / f"{name}.png"
            assert screenshot(f"{base}/", path, width, height) == (width, height)
