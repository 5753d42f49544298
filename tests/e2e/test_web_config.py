"""The endpoints behind TLS and basic authentication, from the exporter-toolkit web
configuration file: a real Prometheus scrapes cbmon over TLS with a password, and a request
without one gets 401."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import requests

from tests.conftest import PgSchema, require_binary
from tests.support.processes import free_port, running, serve_command, wait_for
from tests.support.promstack import prometheus
from tests.support.tls import make_certificates

pytestmark = pytest.mark.slow


def test_prometheus_scrapes_over_tls_with_basic_auth(pg: PgSchema, tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    certs = make_certificates(tmp_path / "tls")
    password = "scrape-s3cret"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {certs.cert}\n"
        f"  key_file: {certs.key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    config = tmp_path / "c.yml"
    config.write_text("tables: {" + ", ".join(
        f"{t}: {{schema: {pg.name}}}" for t in ("logs", "errors", "queue")) + "}\n")  # fmt: skip
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    args = serve_command(pg.dsn, config, port, "--web.config.file", str(web))
    with running(args, log=tmp_path / "serve.log"):

        def up() -> bool:
            try:
                return (
                    requests.get(f"{url}/healthz", verify=str(certs.ca), timeout=2).status_code
                    == 401
                )
            except requests.RequestException:
                return False

        wait_for(up)  # it answers (401) over TLS
        bare = requests.get(f"{url}/metrics", verify=str(certs.ca), timeout=5)
        assert bare.status_code == 401
        assert bare.headers["WWW-Authenticate"].startswith("Basic")
        wrong = requests.get(f"{url}/metrics", verify=str(certs.ca), auth=("prometheus", "x"),
                             timeout=5)  # fmt: skip
        assert wrong.status_code == 401
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)  # no plain HTTP
        scrape = {
            "scheme": "https",
            "tls_config": {"ca_file": str(certs.ca)},
            "basic_auth": {"username": "prometheus", "password": password},
        }
        with prometheus(binary, tmp_path / "prom", [f"127.0.0.1:{port}"], [],
                        scrape=scrape) as prom:  # fmt: skip
            result = wait_for(lambda: prom.query('up{job="cbmon"} == 1'), timeout=30)
            assert result
            assert wait_for(lambda: prom.query("cbmon_database_up == 1"), timeout=30)
