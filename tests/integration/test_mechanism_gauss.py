"""The mechanism probe on an emulated openGauss: version() says openGauss (shadowed on the
search_path), and a ``pg_job`` catalog of openGauss' shape holds the jobs. The probe must take
the openGauss forms of the dialect switch: PG_JOB for the scheduler, no NOTIFY queue."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import conninfo, sql

from cbmon.db.connect import server_of
from cbmon.domain import Level
from cbmon.ingest.mechanism import MechanismProbe, Settings
from cbmon.slo import mechanism as judged
from tests.conftest import PgSchema

VERSION = "(openGauss 5.0.2 build 48a25b11) compiled at 2024-05-14 10:25:27 commit 0 last mr"


@pytest.fixture
def gauss(pg: PgSchema) -> Iterator[str]:
    """A DSN whose sessions see openGauss' version and its PG_JOB catalog first on the path."""
    shadow = f"gauss_{secrets.token_hex(4)}"
    ident = sql.Identifier(shadow)
    conn = pg.conn
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
    conn.execute(
        sql.SQL("CREATE FUNCTION {}.version() RETURNS text LANGUAGE sql AS {}").format(
            ident, sql.Literal(f"SELECT {sql.Literal(VERSION).as_string(None)}::text")
        )
    )
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION {}.current_setting(text) RETURNS text LANGUAGE sql AS "
            "$$ SELECT CASE WHEN $1 = 'server_version_num' THEN '90204' "
            "ELSE pg_catalog.current_setting($1) END $$"
        ).format(ident)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {}.pg_job (job_id bigint PRIMARY KEY, job_name text, dbname name,"
            " job_status \"char\" NOT NULL DEFAULT 's', failure_count smallint DEFAULT 0,"
            ' "interval" text, start_date timestamp, last_suc_date timestamp)'
        ).format(ident)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.pg_job VALUES"
            " (1, 'drain', current_database(), 's', 0, 'sysdate + 1/1440',"
            "  localtimestamp - interval '1 hour', localtimestamp - interval '30 seconds'),"
            " (2, NULL, current_database(), 'd', 16, 'sysdate + 1/1440',"
            "  localtimestamp - interval '1 hour', NULL),"
            " (3, 'elsewhere', 'postgres', 's', 0, 'sysdate + 1', localtimestamp, NULL)"
        ).format(ident)
    )
    path = f"-c search_path={shadow},pg_catalog,{pg.name}"
    try:
        yield conninfo.make_conninfo(pg.dsn, options=path)
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(ident))


def test_jobs_are_read_from_pg_job_and_the_notify_queue_is_off(pg: PgSchema, gauss: str) -> None:
    probe = MechanismProbe(Settings.of(pg.config()), time.monotonic)
    # Not cbmon's connect(): it would SET openGauss' session_timeout, which PostgreSQL lacks.
    with psycopg.connect(gauss, autocommit=True) as conn:
        assert server_of(conn).flavor == "opengauss"
        state = probe.probe(conn)
        rows = conn.execute(
            "SELECT coalesce(job_name, job_id::text), job_status <> 'd', failure_count,"
            " extract(epoch FROM last_suc_date AT TIME ZONE current_setting('TimeZone'))::float8"
            " FROM pg_job WHERE dbname = current_database() ORDER BY job_id"
        ).fetchall()
    notify = state.source("notify_queue")
    assert notify is not None
    assert (notify.state, notify.detail) == ("absent", "openGauss has no NOTIFY queue")
    assert state.notify_usage is None
    assert state.jobs is not None
    found = [(j.name, j.enabled, j.failed, j.last_success, j.interval) for j in state.jobs]
    assert [row[:3] for row in found] == [tuple(row[:3]) for row in rows]
    assert found[0][3] == pytest.approx(rows[0][3], abs=1e-3)
    assert found[1][3] is None
    assert [row[4] for row in found] == [60.0, 60.0]
    level = {i.slo: (i.value, i.state) for i in judged.indicators(state, pg.config().baseline, 3)}
    assert level["scheduler_jobs_failing"] == (1.0, Level.CRITICAL)  # job 2, disabled
    assert "notify_queue_usage" not in level


def test_a_role_that_may_not_read_pg_job_is_told_the_grant(pg: PgSchema, gauss: str) -> None:
    role = f"cbmon_g_{secrets.token_hex(4)}"
    ident = sql.Identifier(role)
    pg.conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    shadow = str(conninfo.conninfo_to_dict(gauss)["options"]).split("=")[1].split(",")[0]
    pg.conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(shadow), ident))
    try:
        probe = MechanismProbe(Settings.of(pg.config()), time.monotonic)
        with psycopg.connect(conninfo.make_conninfo(gauss, user=role)) as conn:
            state = probe.probe(conn)
    finally:
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    source = state.source("scheduler")
    assert source is not None
    assert source.state == "unreadable"
    assert f"GRANT SELECT ON pg_catalog.pg_job TO {role}" in source.detail
    assert state.jobs is None
