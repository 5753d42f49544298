"""The demo's faults of the mechanism, each caused and undone on a real server: the
scheduler's job switched off where pg_cron runs it, and nothing touched where it does not."""

from __future__ import annotations

import logging

import psycopg
import pytest

from cbmon.demo.faults import Faults
from cbmon.reference import mechanism
from tests.conftest import PgSchema


def active(pg: PgSchema, job: str) -> bool:
    row = pg.conn.execute("SELECT active FROM cron.job WHERE jobname = %s", (job,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_the_job_disabled_phase_switches_the_job_off_and_on_again(cron: PgSchema) -> None:
    job = mechanism.job_name(cron.name)
    faults = Faults(cron.dsn, cron.name, job)
    with psycopg.connect(cron.dsn, autocommit=True) as conn:
        faults.switch(conn, "job_disabled")
        assert active(cron, job) is False
        faults.switch(conn, "")
        assert active(cron, job) is True


def test_without_pg_cron_the_phase_changes_nothing_and_says_so(
    mech: PgSchema, caplog: pytest.LogCaptureFixture
) -> None:
    faults = Faults(mech.dsn, mech.name, None)
    with psycopg.connect(mech.dsn, autocommit=True) as conn, caplog.at_level(logging.INFO):
        faults.switch(conn, "job_disabled")
        faults.switch(conn, "")
    (line,) = [r.getMessage() for r in caplog.records if "scheduler job" in r.getMessage()]
    assert "pg_cron is not preloaded for this database" in line
