"""Fixtures of the integration layer."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator

import pytest
from psycopg import sql

from cbmon.reference import mechanism
from tests.conftest import PgSchema, reference_schema


@pytest.fixture(autouse=True)
def _switch_interval() -> Iterator[None]:
    """:meth:`Service.run` shortens the interpreter's switch interval, process-wide: each test
    gets it back as it was."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)


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
