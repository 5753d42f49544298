"""The status page, the JSON API and ``cbmon check --from-url``, served by an in-process
``Service`` that polls the real database, over real HTTP."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from cbmon.cli import cli
from cbmon.sidecar.service import Service
from tests.conftest import PgSchema
from tests.support.attempts import insert
from tests.support.dom import parse
from tests.support.processes import free_port, wait_for

HOSTILE = "<img src=x onerror=alert(1)>"


@contextmanager
def serving(pg: PgSchema, **overrides: Any) -> Iterator[Service]:
    settings: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "slo": {"for": "0s", "min_events": 10},
        "wake": {"listen": False},
    }
    settings.update(overrides)
    service = Service(pg.config(**settings))
    service.start()
    try:
        yield service
    finally:
        service.stop()
        service.close()


def url(service: Service, path: str = "") -> str:
    assert service.server is not None
    return service.server.url + path


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", *args])
    return result.exit_code, result.output


def test_the_page_and_the_api_show_a_breach_its_event_type_and_state(pg: PgSchema) -> None:
    with serving(pg) as service:
        insert(pg, "pay", ok=95, failed=5)
        insert(pg, HOSTILE, ok=50, failed=0)
        service.poll_once()
        page = requests.get(url(service, "/"), timeout=5)
        assert page.status_code == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert page.headers["Cache-Control"] == "no-store"
        dom = parse(page.text)
        alert = dom.find("li", data_alertname="CallbackSuccessRateLow", data_event_type="pay")
        assert alert.attrs["data-severity"] == "critical"
        assert "Callback success rate 95.00% for event type pay" in alert.text
        row = dom.find("tr", data_event_type=HOSTILE)  # the name, as text
        assert row.find("th").text == HOSTILE
        assert dom.find_all("img") == []
        assert "s-critical" in dom.find("tr", data_event_type="pay").classes

        answer = requests.get(url(service, "/api/v1/status"), timeout=5)
        assert answer.headers["Content-Type"] == "application/json"
        status = answer.json()
        assert (status["version"], status["state"], status["database"]["up"]) == (
            1,
            "critical",
            True,
        )
        assert {(a["alertname"], a["event_type"], a["severity"]) for a in status["alerts"]} == {
            ("CallbackSuccessRateLow", None, "critical"),
            ("CallbackSuccessRateLow", "pay", "critical"),
        }
        assert status["database"]["wake"] == "off"
        alerts = requests.get(url(service, "/api/v1/alerts"), timeout=5).json()
        assert alerts["alerts"] == status["alerts"]
        assert [t["change"] for t in alerts["transitions"]] == ["fired", "fired"]


def test_check_from_url_answers_as_check_from_the_database(pg: PgSchema, tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    tables = ", ".join(f"{t}: {{schema: {pg.name}}}" for t in ("logs", "errors", "queue"))
    config.write_text(f"tables: {{{tables}}}\nslo: {{min_events: 10}}\n")
    with serving(pg) as service:
        insert(pg, "pay", ok=95, failed=5)
        service.poll_once()
        code, out = check("--from-url", url(service))
        direct_code, direct = check("--dsn", pg.dsn, "--config", str(config))
        assert (code, direct_code) == (2, 2)
        assert (
            out.splitlines()[0]
            == direct.splitlines()[0]
            == ("CBMON CRITICAL - success_rate 95.00% (all); success_rate 95.00% (pay)")
        )
        code, out = check("--from-url", url(service, "/api/v1/status"), "--format", "json")
        assert code == 2
        assert json.loads(out)["status"] == "critical"


def test_check_from_url_is_unknown_when_the_serve_cannot_read_its_database(
    pg: PgSchema,
) -> None:
    port = free_port()  # nothing listens there: the database is away
    away = f"postgresql://nobody@127.0.0.1:{port}/nothing?connect_timeout=1"
    service = Service(
        pg.config(listen="127.0.0.1:0", wake={"listen": False}).model_copy(update={"dsn": away})
    )
    service.start()
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_for(lambda: service.store.view().poll_errors_total, timeout=30)
        code, out = check("--from-url", url(service))
    finally:
        service.stop()
        thread.join(30)
        service.close()
    assert not thread.is_alive()
    assert code == 3
    assert out == (
        f"CBMON UNKNOWN - cbmon at {url(service)} cannot read its database (last poll: never)\n"
    )


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers as the test says: a status code and a body, or a body trickled slowly."""

    status = 200
    body = b""
    trickle = 0.0

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        step = 1 if self.trickle else max(1, len(self.body))
        for start in range(0, len(self.body), step):
            try:
                self.wfile.write(self.body[start : start + step])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(self.trickle)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def answering(status: int, body: bytes, trickle: float = 0.0) -> Iterator[str]:
    handler = type("Answer", (_Answer,), {"status": status, "body": body, "trickle": trickle})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (200, b"cbmon_up 1\n", "did not answer with cbmon's status API: not JSON"),
        (200, b'{"version": 2}', "did not answer with cbmon's status API: API version 2"),
        (200, b'{"version": 1}', "did not answer with cbmon's status API: indicators: KeyError"),
        (500, b"oops", "answered HTTP 500"),
        (401, b"unauthorized\n", "answered HTTP 401"),
    ],
)
def test_check_from_url_is_unknown_on_an_answer_that_is_not_the_api(
    status: int, body: bytes, says: str
) -> None:
    with answering(status, body) as base:
        code, out = check("--from-url", base)
    assert code == 3
    assert out.startswith("CBMON UNKNOWN - ")
    assert says in out
    assert out.count("\n") == 1


@pytest.mark.slow
def test_check_from_url_is_unknown_when_nothing_answers_or_too_slowly() -> None:
    port = free_port()
    code, out = check("--from-url", f"http://127.0.0.1:{port}")
    assert (code, out) == (
        3,
        f"CBMON UNKNOWN - cannot reach http://127.0.0.1:{port}: ConnectionError\n",
    )
    with answering(200, b'{"version": 1, "indicators": []}' * 4, trickle=0.1) as base:
        code, out = check("--from-url", base, "--timeout", "500ms")
    assert code == 3
    assert "within 500ms" in out or "too slowly" in out


def test_check_from_url_refuses_a_window_and_a_url_that_is_no_url() -> None:
    assert check("--from-url", "http://127.0.0.1:1", "--window", "1m") == (
        3,
        "CBMON UNKNOWN - --window cannot be used with --from-url: the serve judges its own\n",
    )
    assert check("--from-url", "cbmon:9863") == (
        3,
        "CBMON UNKNOWN - --from-url: must be an http:// or https:// URL of a cbmon serve\n",
    )
