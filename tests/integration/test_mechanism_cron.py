"""The scheduler's jobs on a private PostgreSQL with pg_cron preloaded: the reference job that
``schema apply`` schedules, a job that fails, one disabled, one unscheduled; every figure
compared with cron.job and cron.job_run_details."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import sql

from cbmon.db.connect import connect
from cbmon.domain import Job, Level, Mechanism, SourceState
from cbmon.ingest.mechanism import MechanismProbe, Settings
from cbmon.reference import mechanism
from cbmon.sidecar.service import Service
from cbmon.slo import mechanism as judged
from cbmon.web import api
from cbmon.web.mechanism import MechanismCollector
from tests.conftest import PgSchema, reference_schema, require_servers
from tests.support.cluster import Cluster

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


def probe(pg: PgSchema, found: MechanismProbe | None = None) -> tuple[MechanismProbe, Any]:
    found = found or MechanismProbe(Settings.of(pg.config()), time.monotonic)
    with connect(pg.dsn) as conn:
        return found, found.probe(conn)


def scheduler(state: Mechanism) -> SourceState:
    found = state.source("scheduler")
    assert found is not None
    return found


def jobs(state: Any) -> dict[str, Job]:
    return {job.name: job for job in state.jobs}


def test_apply_schedules_the_reference_job_once(cron: PgSchema) -> None:
    pg = cron
    name = mechanism.job_name(pg.name)
    again = mechanism.apply(pg.dsn, schema=pg.name, executor_role=f"cbmon_exec_{pg.name}")
    assert again.scheduler_job == name
    rows = pg.conn.execute(
        "SELECT schedule, command, active FROM cron.job WHERE jobname = %s", (name,)
    ).fetchall()
    assert rows == [("* * * * *", f'SELECT "{pg.name}".expire_callback_leases()', True)]
    _, state = probe(pg)
    source = state.source("scheduler")
    assert (source.state, source.detail) == ("ok", "")  # a superuser sees every job
    job = jobs(state)[name]
    assert (job.enabled, job.interval) == (True, 60.0)
    pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(f"cbmon_exec_{pg.name}")))
    pg.conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(f"cbmon_exec_{pg.name}")))


def test_a_disabled_job_is_critical_at_the_first_probe(cron: PgSchema) -> None:
    pg = cron
    name = mechanism.job_name(pg.name)
    job_id = pg.conn.execute("SELECT jobid FROM cron.job WHERE jobname = %s", (name,)).fetchone()
    assert job_id is not None
    pg.conn.execute("SELECT cron.alter_job(%s, active := false)", (job_id[0],))
    service = Service(pg.config(listen="127.0.0.1:0"))
    try:
        service.poll_once()
        firing = {a.alert.alertname: a.alert for a in service.evaluator.tracker.active()}
        document = api.status(service.status())
    finally:
        service.close()
    alert = firing["CallbackSchedulerJobFailing"]
    assert alert.severity == "critical"
    assert alert.value == 1
    listed = {j["job"]: j for j in document["mechanism"]["jobs"]}
    assert listed[name]["enabled"] is False
    assert listed[name]["failing"] == "disabled"


def test_a_role_is_told_the_grants_then_that_it_sees_only_its_own_jobs(cron: PgSchema) -> None:
    pg = cron
    role = f"cbmon_ro_{secrets.token_hex(4)}"
    ident = sql.Identifier(role)
    pg.conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    grant = f"GRANT USAGE ON SCHEMA cron TO {role}; GRANT SELECT ON cron.job, cron.job_run_details"
    try:
        dsn = psycopg.conninfo.make_conninfo(pg.dsn, user=role)
        found = MechanismProbe(Settings.of(pg.config()), time.monotonic)
        with connect(dsn) as conn:
            refused = found.probe(conn)
            pg.conn.execute(sql.SQL("GRANT USAGE ON SCHEMA cron TO {}").format(ident))
            pg.conn.execute(
                sql.SQL("GRANT SELECT ON cron.job, cron.job_run_details TO {}").format(ident)
            )
            state = found.probe(conn)
    finally:
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    source = scheduler(refused)
    assert source.state == "unreadable"
    assert grant in source.detail
    assert refused.jobs is None
    source = scheduler(state)
    assert source.state == "ok"
    assert f"ALTER ROLE {role} BYPASSRLS" in source.detail
    assert state.jobs == ()  # row-level security: what the role could see, nothing guessed


@pytest.mark.slow
def test_a_failing_job_is_counted_judged_and_gone_once_unscheduled(cron: PgSchema) -> None:
    """pg_cron 1.4 runs jobs on minute boundaries: this waits for one run of each."""
    pg = cron
    reference = mechanism.job_name(pg.name)
    pg.conn.execute("SELECT cron.schedule('cbmon_failing', '* * * * *', 'SELECT 1/0')")
    found, first = probe(pg)
    assert jobs(first)["cbmon_failing"].failed == 0
    deadline = time.monotonic() + 130
    finished = "SELECT count(*) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')"
    while time.monotonic() < deadline:
        row = pg.conn.execute(finished + " AND runid > 0").fetchone()
        counts = pg.conn.execute(
            "SELECT j.jobname, d.status, count(*) FROM cron.job_run_details d"
            " JOIN cron.job j USING (jobid) GROUP BY 1, 2"
        ).fetchall()
        names = {name for name, _, _ in counts}
        if row is not None and {"cbmon_failing", reference} <= names:
            break
        time.sleep(1)
    else:
        pytest.fail("pg_cron ran no job in two minutes")
    _, state = probe(pg, found)
    expected = {(n, s): int(c) for n, s, c in counts}
    by_name = jobs(state)
    for (name, status), count in expected.items():
        assert getattr(by_name[name], status) >= count  # runs may have finished since
    after = pg.conn.execute(
        "SELECT j.jobname, d.status, count(*) FROM cron.job_run_details d"
        " JOIN cron.job j USING (jobid) GROUP BY 1, 2"
    ).fetchall()
    assert {(n, s): int(c) for n, s, c in after} == {
        (job.name, status): getattr(job, status)
        for job in state.jobs
        for status in ("succeeded", "failed")
        if getattr(job, status)
    }
    last = pg.conn.execute(
        "SELECT extract(epoch FROM max(end_time))::float8 FROM cron.job_run_details d"
        " JOIN cron.job j USING (jobid) WHERE j.jobname = %s AND status = 'succeeded'",
        (reference,),
    ).fetchone()
    assert last is not None
    assert by_name[reference].last_success == last[0]
    assert by_name["cbmon_failing"].last_success is None
    registry = CollectorRegistry()
    registry.register(MechanismCollector(found))
    sample = registry.get_sample_value
    assert sample(
        "cbmon_scheduler_job_runs_total", {"job_name": "cbmon_failing", "result": "failed"}
    ) == (by_name["cbmon_failing"].failed)
    assert (
        sample("cbmon_scheduler_job_last_success_timestamp_seconds", {"job_name": reference})
        == (last[0])
    )
    assert sample("cbmon_scheduler_job_enabled", {"job_name": "cbmon_failing"}) == 1
    # No success for 3 of its intervals (from its first run): critical, not a moment before.
    failing = by_name["cbmon_failing"]
    assert failing.since is not None
    at_limit = dataclasses.replace(state, at=failing.since + 180, jobs=(failing,))
    before = dataclasses.replace(state, at=failing.since + 179, jobs=(failing,))
    baseline = pg.config().baseline
    assert judged.failing_jobs(at_limit.jobs, at_limit.at, 3) == {
        "cbmon_failing": "no success in 3 of its intervals"
    }
    level = {i.slo: i.state for i in judged.indicators(at_limit, baseline, 3)}
    assert level["scheduler_jobs_failing"] is Level.CRITICAL
    level = {i.slo: i.state for i in judged.indicators(before, baseline, 3)}
    assert level["scheduler_jobs_failing"] is Level.OK
    # Unscheduled: the job is no longer listed, nor judged.
    pg.conn.execute("SELECT cron.unschedule('cbmon_failing')")
    _, gone = probe(pg, found)
    assert "cbmon_failing" not in jobs(gone)
    assert sample("cbmon_scheduler_job_enabled", {"job_name": "cbmon_failing"}) is None
