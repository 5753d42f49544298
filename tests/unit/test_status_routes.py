"""The status routes on the HTTP server: the page and the two documents, never cached, behind
the same authentication as /metrics; other paths unchanged."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry

from cbmon.web.client import status_url
from cbmon.web.exposition import Exposition
from cbmon.web.pages import StatusPages
from cbmon.web.server import MetricsServer
from cbmon.web.webconfig import WebConfig
from tests.support.sidecar import callbacks
from tests.support.status import Pipeline


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    made = Pipeline()
    made.poll({"pay": callbacks([0.05] * 100, failures=10)})
    return made


@pytest.fixture(scope="module")
def server(pipeline: Pipeline) -> Iterator[MetricsServer]:
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    made = MetricsServer(
        ("127.0.0.1", 0),
        exposition,
        lambda: (True, "ready"),
        pages=StatusPages(pipeline.snapshot),
    )
    made.start()
    try:
        yield made
    finally:
        made.stop()


def test_the_page_and_the_documents(server: MetricsServer) -> None:
    page = requests.get(server.url + "/", timeout=5)
    assert (page.status_code, page.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert page.headers["Cache-Control"] == "no-store"
    assert 'data-alertname="CallbackSuccessRateLow"' in page.text
    for path, keys in (
        ("/api/v1/status", {"indicators", "queue", "database", "leader"}),
        ("/api/v1/alerts", {"alerts", "transitions"}),
    ):
        answer = requests.get(server.url + path + "?pretty=1", timeout=5)
        assert (answer.status_code, answer.headers["Content-Type"]) == (200, "application/json")
        assert answer.headers["Cache-Control"] == "no-store"
        document = json.loads(answer.content)
        assert document["version"] == 1
        assert keys <= set(document)


def test_other_paths_are_as_before(server: MetricsServer) -> None:
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 200
    for path in ("/api/v1", "/api/v1/status/", "/api/v2/status", "/index.html"):
        assert requests.get(server.url + path, timeout=5).status_code == 404, path
    head = requests.head(server.url + "/api/v1/status", timeout=5)
    assert (head.status_code, head.content) == (200, b"")


def test_the_status_routes_ask_for_the_same_password(pipeline: Pipeline) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = WebConfig.model_validate({"basic_auth_users": {"ops": hashed}})
    exposition = Exposition(CollectorRegistry(), CollectorRegistry())
    server = MetricsServer(
        ("127.0.0.1", 0), exposition, lambda: (True, "ready"), web,
        pages=StatusPages(pipeline.snapshot),
    )  # fmt: skip
    server.start()
    try:
        for path in ("/", "/api/v1/status", "/api/v1/alerts"):
            assert requests.get(server.url + path, timeout=5).status_code == 401, path
        token = base64.b64encode(b"ops:s3cret").decode()
        allowed = requests.get(
            server.url + "/api/v1/alerts", headers={"Authorization": f"Basic {token}"}, timeout=5
        )
        assert allowed.status_code == 200
    finally:
        server.stop()


def test_check_finds_the_api_from_a_base_url() -> None:
    assert status_url("http://cbmon:9863") == "http://cbmon:9863/api/v1/status"
    assert status_url("https://u:p@cbmon:9863/") == "https://u:p@cbmon:9863/api/v1/status"
    assert status_url("http://cbmon/api/v1/status") == "http://cbmon/api/v1/status"
    one = "http://cbmon:9863/databases/orders-eu/api/v1/status"
    assert status_url("http://cbmon:9863/databases/orders-eu/") == one
    assert status_url("http://cbmon:9863/databases/orders-eu") == one
    assert status_url(one) == one
