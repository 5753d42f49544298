"""Fixtures of the integration layer."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from cbmon.reference import mechanism
from tests.conftest import PgSchema, reference_schema, require_servers
from tests.support.cluster import Cluster


@pytest.fixture(autouse=True)
def _switch_interval() -> Iterator[None]:
    """:meth:`Service.run` shortens the interpreter's switch interval, process-wide: each test
    gets it back as it was."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)


CONTROL = Path("/usr/share/postgresql/15/extension/pg_cron.control")


@pytest.fixture(scope="module")
def cron_dsn() -> Iterator[str]:
    """A private cluster with pg_cron preloaded, its jobs run by background workers in the
    database postgres."""
    require_servers()
    if not CONTROL.exists():
        if os.environ.get("CBMON_REQUIRE_BINARIES"):
            pytest.fail("pg_cron (postgresql-15-cron) is not installed")
        pytest.skip("pg_cron (postgresql-15-cron) is not installed")
    from tests.support.cluster import lab

    with lab() as root:
        settings = {
            "shared_preload_libraries": "'pg_cron'",
            "cron.database_name": "'postgres'",
            "cron.use_background_workers": "on",
            "max_worker_processes": "16",
        }
        cluster = Cluster(root, "cron").init(**settings).start()
        yield cluster.dsn()


@pytest.fixture
def cron(cron_dsn: str) -> Iterator[PgSchema]:
    executor = f"cbmon_exec_{secrets.token_hex(4)}"
    with reference_schema(cron_dsn) as pg:
        mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor)
        yield pg
        pg.conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(executor)))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(executor)))


@pytest.fixture
def mech(pg: PgSchema) -> Iterator[PgSchema]:
    """The reference mechanism (router, limiter) in the test's schema."""
    executor = f"cbmon_exec_{secrets.token_hex(4)}"
    mechanism.apply(pg.dsn, schema=pg.name, executor_role=executor)
    yield pg
    ident = sql.Identifier(executor)
    pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))
