"""cbmon on an emulated openGauss: PostgreSQL with what openGauss lacks taken away.

A database of its own where

* ``version()`` and ``server_version_num`` say openGauss 5.0.2 (shadowed on the search_path),
  so cbmon takes every openGauss path;
* the functions openGauss 5.0 lacks (make_interval, jsonb builders, to_regclass, the xid8 and
  snapshot functions, ...) and the ``pg_sequence`` catalog are revoked from PUBLIC, and cbmon's
  roles are not superusers, so any use of them fails;
* ``pg_notify`` is revoked too (openGauss in thread-pool mode and GaussDB refuse NOTIFY);
* a wire-protocol proxy answers ``LISTEN`` with SQLSTATE 0A000 and ``SET session_timeout``
  with success, as openGauss does, and records every statement.

Then schema apply, the mechanism, the worker, serve, check and report must all work, and
every statement that reached the server must pass the openGauss dialect check.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import conninfo, sql

from tests.support import gauss_scenario
from tests.support.dialect import bind_free, check
from tests.support.pgwire import OpenGaussProxy
from tests.support.receiver import receiver

VERSION = (
    "(openGauss 5.0.2 build 48a25b11) compiled at 2024-05-14 10:25:27 commit 0 last mr "
    "on x86_64-unknown-linux-gnu, compiled by g++ (GCC) 7.3.0, 64-bit"
)
MISSING_FUNCTIONS = (
    "make_interval",
    "jsonb_build_object",
    "jsonb_build_array",
    "jsonb_agg",
    "jsonb_object_agg",
    "to_jsonb",
    "to_regclass",
    "to_regproc",
    "to_regprocedure",
    "to_regtype",
    "pg_current_xact_id",
    "pg_current_snapshot",
    "pg_snapshot_xmin",
    "pg_snapshot_xmax",
    "txid_current_snapshot",
    "txid_snapshot_xmin",
    "txid_snapshot_xmax",
    "txid_visible_in_snapshot",
    "pg_notification_queue_usage",
    "percentile_disc",
    "pg_notify",
)
# The statements cbmon may send that openGauss lacks, each because a dialect switch or an
# error it handles guards it (see tests/unit/test_sql_dialect.py).
GUARDED = {"LISTEN"}


class Emulation:
    def __init__(self, admin_dsn: str, reader_dsn: str, reader: str, executor: str) -> None:
        self.admin_dsn = admin_dsn
        self.reader_dsn = reader_dsn
        self.reader = reader
        self.executor = executor


def _dsn(base: str, port: int, user: str, dbname: str) -> str:
    params = conninfo.conninfo_to_dict(base)
    params.update(
        host="127.0.0.1",
        port=port,
        user=user,
        dbname=dbname,
        sslmode="disable",
        gssencmode="disable",
    )
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def _setup(conn: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA gauss"))
    conn.execute(
        sql.SQL("CREATE FUNCTION gauss.version() RETURNS text LANGUAGE sql AS {}").format(
            sql.Literal(f"SELECT {sql.Literal(VERSION).as_string(None)}::text")
        )
    )
    conn.execute(
        "CREATE FUNCTION gauss.current_setting(text) RETURNS text LANGUAGE sql AS "
        "$$ SELECT CASE WHEN $1 = 'server_version_num' THEN '90204' "
        "ELSE pg_catalog.current_setting($1) END $$"
    )
    conn.execute("GRANT USAGE ON SCHEMA gauss TO PUBLIC")
    conn.execute(
        sql.SQL('ALTER DATABASE {} SET search_path = gauss, pg_catalog, "$user", public').format(
            sql.Identifier(database)
        )
    )
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s)",
        [list(MISSING_FUNCTIONS)],
    ).fetchall()
    for (signature,) in rows:
        conn.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
    conn.execute("REVOKE SELECT ON pg_catalog.pg_sequence, pg_catalog.pg_sequences FROM PUBLIC")


@pytest.fixture(scope="module")
def emulation(pg_dsn: str) -> Iterator[tuple[Emulation, OpenGaussProxy]]:
    tag = secrets.token_hex(4)
    database, admin = f"cbmon_gauss_{tag}", f"cbmon_gauss_admin_{tag}"
    reader, executor = f"cbmon_gauss_reader_{tag}", f"cbmon_gauss_exec_{tag}"
    params = conninfo.conninfo_to_dict(pg_dsn)
    target = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    with psycopg.connect(pg_dsn, autocommit=True) as root:
        root.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(admin)))
        root.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(admin)
            )
        )
    with psycopg.connect(pg_dsn, dbname=database, autocommit=True) as root:
        _setup(root, database)
    proxy = OpenGaussProxy(target)
    proxy.start()
    try:
        yield (
            Emulation(
                _dsn(pg_dsn, proxy.port, admin, database),
                _dsn(pg_dsn, proxy.port, reader, database),
                reader,
                executor,
            ),
            proxy,
        )
    finally:
        proxy.stop()
        with psycopg.connect(pg_dsn, autocommit=True) as root:
            root.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [database],
            )
            root.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))
            for role in (reader, executor, admin):
                root.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def outcome(
    emulation: tuple[Emulation, OpenGaussProxy], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[gauss_scenario.Outcome]:
    emul, _ = emulation
    gauss_scenario.apply_schema(emul.admin_dsn, emul.reader)
    with receiver() as hooks:
        yield gauss_scenario.run(
            emul.admin_dsn, emul.reader_dsn, emul.executor, tmp_path_factory.mktemp("gauss"), hooks
        )


def test_cbmon_sees_opengauss(outcome: gauss_scenario.Outcome) -> None:
    labels = {"flavor": "opengauss", "version": "5.0.2"}
    assert outcome.registry.get_sample_value("cbmon_database_info", labels) == 1


def test_schema_apply_made_a_login_role_in_opengauss_grammar(
    emulation: tuple[Emulation, OpenGaussProxy], outcome: gauss_scenario.Outcome
) -> None:
    emul, proxy = emulation
    created = [s for s in proxy.statements if "CREATE ROLE" in s and emul.reader in s]
    assert created
    assert "PASSWORD DISABLE" in created[0]
    assert "NOSUPERUSER" not in created[0]
    with psycopg.connect(emul.reader_dsn) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        assert row.fetchone() == (True, False)


def test_the_worker_delivers_by_polling_when_listen_is_refused(
    emulation: tuple[Emulation, OpenGaussProxy], outcome: gauss_scenario.Outcome
) -> None:
    _, proxy = emulation
    assert proxy.refused_listens >= 1
    assert outcome.worker.listening is False
    assert outcome.delivered == gauss_scenario.ORDERS


def test_serve_counts_exactly_and_cannot_check_the_cache_without_pg_sequence(
    outcome: gauss_scenario.Outcome,
) -> None:
    registry = outcome.registry
    attempts = registry.get_sample_value(
        "cbmon_callback_attempts_total", {"event_type": "order_created"}
    )
    assert attempts == gauss_scenario.ORDERS
    ids = {"table": "logs", "check": "ids_from_sequence"}
    assert registry.get_sample_value("cbmon_reader_assumption_ok", ids) == 1
    # PostgreSQL's sequences have no cache_value column, so the openGauss read finds nothing:
    # unknown (-1), never a failed poll
    cache = {"table": "logs", "check": "sequence_cache_1"}
    assert registry.get_sample_value("cbmon_reader_assumption_ok", cache) == -1


def test_sessions_turn_opengauss_idle_timeout_off(
    emulation: tuple[Emulation, OpenGaussProxy], outcome: gauss_scenario.Outcome
) -> None:
    _, proxy = emulation
    assert proxy.session_timeouts
    assert 0 in proxy.session_timeouts


def test_check_and_report_work(outcome: gauss_scenario.Outcome) -> None:
    assert outcome.check.exit_code in (0, 1, 2), outcome.check.output
    assert json.loads(outcome.check.output)["status"] in ("ok", "warning", "critical")
    assert outcome.report.exit_code == 0, outcome.report.output
    report = json.loads(outcome.report.output)
    assert report["overall"]["calls"] == gauss_scenario.ORDERS


def test_every_statement_sent_passes_the_dialect_check(
    emulation: tuple[Emulation, OpenGaussProxy], outcome: gauss_scenario.Outcome
) -> None:
    _, proxy = emulation
    assert len(proxy.statements) > 50
    found = []
    for statement in proxy.statements:
        text = statement.replace("PASSWORD DISABLE", "PASSWORD NULL")
        found += [f for f in check(bind_free(text), "sent") if f.construct not in GUARDED]
    assert found == []


def test_the_worker_wrote_every_attempt_without_touching_what_was_revoked(
    outcome: gauss_scenario.Outcome,
) -> None:
    stats = outcome.worker.stats
    assert (stats.completed, stats.failed, stats.lost_leases) == (gauss_scenario.ORDERS, 0, 0)
