"""Fixtures of the end-to-end layer."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from cbmon.demo.run import EXECUTOR_ROLE


@pytest.fixture
def demo_schema(pg_dsn: str) -> Iterator[str]:
    name = f"cbmon_demo_{secrets.token_hex(4)}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        # The demo's NOLOGIN executor role is cluster-wide; leave it only if another schema
        # (a demo the user ran by hand) still grants it something.
        with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(EXECUTOR_ROLE)))
