"""The exporter-toolkit web configuration: what node_exporter accepts, cbmon accepts, and
what it refuses is one line naming the key."""

from __future__ import annotations

import base64
import http.client
import subprocess
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from cbmon.errors import ConfigError
from cbmon.web.exposition import Exposition
from cbmon.web.server import MetricsServer
from cbmon.web.webconfig import BasicAuth, load
from tests.conftest import require_binary

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bogus_key: 1\n", "bogus_key: unknown key"),
        ("basic_auth_users: {prometheus: plaintext}\n", "must be a bcrypt hash"),
        ("tls_server_config: {min_version: TLS1.2}\n", "tls_server_config.min_version"),
        ("tls_server_config: {client_auth_type: Foo}\n", "tls_server_config.client_auth_type"),
        ("tls_server_config: {cert_file: a.crt}\n", "needs both cert_file and key_file"),
        ("http_server_config: {headers: {X-Custom: x}}\n", "can not be configured"),
        ("http_server_config: {headers: {X-Frame-Options: allow}}\n", "expected one of"),
        ("tls_server_config: {cert_file: nowhere.crt, key_file: nowhere.key}\n", "No such file"),
        ("basic_auth_excluded_paths: [healthz]\n", "basic_auth_excluded_paths.0: must be a path"),
        ("basic_auth_excluded_paths: ['/readyz?x=1']\n", "must be a path such as /healthz"),
        ("basic_auth_excluded_paths: /healthz\n", "basic_auth_excluded_paths"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text))
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"basic_auth_users: {{prometheus: '{HASH}'}}\n",
        "http_server_config: {http2: false, headers: {X-Content-Type-Options: nosniff}}\n",
    ],
)
def test_files_promtool_accepts_load(tmp_path: Path, text: str) -> None:
    promtool = require_binary("promtool")
    path = write(tmp_path, text)
    checked = subprocess.run([promtool, "check", "web-config", str(path)], capture_output=True)
    assert checked.returncode == 0, checked.stderr
    load(path)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_lets_in_only_the_right_password() -> None:
    auth = BasicAuth({"prometheus": HASH})
    assert auth.allows(basic("prometheus", "s3cret"))
    assert auth.allows(basic("prometheus", "s3cret"))  # cached the second time
    assert not auth.allows(basic("prometheus", "wrong"))
    assert not auth.allows(basic("nobody", "s3cret"))
    assert not auth.allows(None)
    assert not auth.allows("Bearer abc")
    assert not auth.allows("Basic !!!not-base64")
    assert BasicAuth({}).allows(None)  # no users configured: open


def test_excluded_paths_answer_without_credentials_and_nothing_else_does(tmp_path: Path) -> None:
    """What a kubelet's probe meets with basic auth on: the health endpoints answer it, with
    or without a query; /metrics and any other path still want the password."""
    web = load(
        write(
            tmp_path,
            f"basic_auth_users: {{prometheus: '{HASH}'}}\n"
            "basic_auth_excluded_paths: [/healthz, /readyz]\n",
        )
    )
    registry = CollectorRegistry()
    server = MetricsServer(
        ("127.0.0.1", 0), Exposition(registry, CollectorRegistry()), lambda: (True, "ready"), web
    )
    server.start()

    def status(path: str, headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        try:
            conn.request("GET", path, headers=headers or {})
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        assert [status(p) for p in ("/healthz", "/readyz", "/healthz?probe=1")] == [200] * 3
        assert [status(p) for p in ("/metrics", "/", "/api/v1/status", "/healthz/")] == [401] * 4
        assert status("/metrics", {"Authorization": basic("prometheus", "s3cret")}) == 200
    finally:
        server.stop()
