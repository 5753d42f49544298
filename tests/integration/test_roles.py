"""cbmon's role holds: `schema apply` grants only reading, `schema audit` names every way to
write that remains with the SQL that closes it, and once closed the role cannot write,
whatever it tries. On the private cluster, since closing means revoking from PUBLIC."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

from cbmon.db import roles
from cbmon.db.connect import connect, server_of
from cbmon.reference import schema
from tests.conftest import PgSchema, require_binary
from tests.support.processes import CBMON

ROLE = "cbmon_audited"


@pytest.fixture
def audited(quiet_pg: PgSchema) -> Iterator[str]:
    schema.apply(quiet_pg.dsn, schema=quiet_pg.name, role=ROLE)
    try:
        yield ROLE
    finally:
        conn = quiet_pg.conn
        conn.execute("GRANT TEMPORARY ON DATABASE postgres TO PUBLIC")
        for signature in roles._WRITE_FUNCTIONS:
            conn.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO PUBLIC")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def as_role(pg: PgSchema, role: str) -> psycopg.Connection[psycopg.rows.TupleRow]:
    conn = psycopg.connect(pg.dsn, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg.name)))
    return conn


def audit(pg: PgSchema, role: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CBMON, "schema", "audit", "--dsn", pg.dsn, "--role", role],
        capture_output=True,
        text=True,
        timeout=60,
    )


def fixes(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("REVOKE", "ALTER"))]


@pytest.mark.slow
def test_the_audit_closes_every_way_to_write(quiet_pg: PgSchema, audited: str) -> None:
    before = audit(quiet_pg, audited)
    assert before.returncode == 1
    assert "lo_from_bytea" in before.stdout
    assert "temporary tables" in before.stdout
    assert "pg_notify" in before.stdout
    for statement in fixes(before.stdout):
        quiet_pg.conn.execute(statement)
    after = audit(quiet_pg, audited)
    assert after.returncode == 0, after.stdout
    assert "NOTIFY" in after.stdout  # what PostgreSQL cannot close is still named
    with as_role(quiet_pg, audited) as conn:
        assert conn.execute("SELECT count(*) FROM callback_logs").fetchone() == (0,)
        conn.execute("SET default_transaction_read_only = off")  # what an attacker does first
        for statement, error in [
            ("SELECT lo_from_bytea(0, 'data')", errors.InsufficientPrivilege),
            ("SELECT pg_notify('order_created', '{}')", errors.InsufficientPrivilege),
            ("CREATE TEMP TABLE stolen (x int)", errors.InsufficientPrivilege),
            ("CREATE FUNCTION pg_temp.f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
             errors.InsufficientPrivilege),
            ("INSERT INTO callback_logs (event_type, status) VALUES ('x', 'y')",
             errors.InsufficientPrivilege),
            ("UPDATE callback_queue SET processed_at = now()", errors.InsufficientPrivilege),
            ("CREATE TABLE stolen (x int)", errors.InsufficientPrivilege),
        ]:  # fmt: skip
            with pytest.raises(error):
                conn.execute(statement)


def test_a_mistaken_write_grant_is_named_and_cbmon_still_cannot_write(
    quiet_pg: PgSchema, audited: str
) -> None:
    quiet_pg.conn.execute(
        sql.SQL("GRANT UPDATE ON callback_queue TO {}").format(sql.Identifier(audited))
    )
    found = audit(quiet_pg, audited)
    assert found.returncode == 1
    assert f"may write to {quiet_pg.name}.callback_queue" in found.stdout
    assert any("callback_queue" in fix and fix.startswith("REVOKE") for fix in fixes(found.stdout))
    # cbmon's own sessions start read-only themselves, whatever the role was granted.
    quiet_pg.conn.execute("INSERT INTO callback_queue (event_type) VALUES ('x')")
    quiet_pg.conn.execute(
        sql.SQL("ALTER ROLE {} RESET default_transaction_read_only").format(sql.Identifier(audited))
    )
    dsn = quiet_pg.dsn.replace("postgresql://", f"postgresql://{audited}@", 1)
    if "@" not in quiet_pg.dsn.split("//", 1)[1].split("/", 1)[0]:
        with connect(dsn) as conn, pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute(
                sql.SQL("UPDATE {}.callback_queue SET processed_at = now()").format(
                    sql.Identifier(quiet_pg.name)
                )
            )


@pytest.mark.parametrize("name", ['we$$ird"role', "$cbmon$", "rôle-ünïcode"])
def test_any_role_name_is_quoted_safely(quiet_pg: PgSchema, name: str, tmp_path: Path) -> None:
    try:
        schema.apply(quiet_pg.dsn, schema=quiet_pg.name, role=name)
        schema.apply(quiet_pg.dsn, schema=quiet_pg.name, role=name)  # twice: harmless
        script = tmp_path / "schema.sql"
        script.write_text(schema.render(name, quiet_pg.name))
        ran = subprocess.run(
            [
                require_binary("psql"),
                quiet_pg.dsn,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-f",
                str(script),
            ],
            capture_output=True,
            text=True,
        )
        assert ran.returncode == 0, ran.stderr
        with as_role(quiet_pg, name) as conn:
            assert conn.execute("SELECT count(*) FROM callback_logs").fetchone() == (0,)
    finally:
        quiet_pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        quiet_pg.conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_name_longer_than_postgresql_keeps_is_refused(quiet_pg: PgSchema) -> None:
    name = "é" * 32  # 32 characters, 64 bytes: PostgreSQL would cut it to 63
    ran = subprocess.run(
        [*CBMON, "schema", "apply", "--dsn", quiet_pg.dsn, "--role", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert "63 bytes" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1


def psql(dsn: str, script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("psql"), dsn, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script)],
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_print_into_a_schema_that_does_not_exist_yet_works(
    quiet_pg: PgSchema, tmp_path: Path
) -> None:
    target = f"{quiet_pg.name}_printed"
    script = tmp_path / "schema.sql"
    printed = subprocess.run(
        [*CBMON, "schema", "print", "--schema", target, "--role", "cbmon_printed"],
        capture_output=True,
        text=True,
    )
    script.write_text(printed.stdout)
    try:
        ran = psql(quiet_pg.dsn, script)
        assert ran.returncode == 0, ran.stderr
    finally:
        quiet_pg.conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(target)))  # fmt: skip
        quiet_pg.conn.execute("DROP OWNED BY cbmon_printed")
        quiet_pg.conn.execute("DROP ROLE IF EXISTS cbmon_printed")


def test_a_printed_script_that_fails_leaves_nothing_behind(
    quiet_pg: PgSchema, tmp_path: Path
) -> None:
    target = f"{quiet_pg.name}_new"
    script = tmp_path / "schema.sql"
    text = schema.render("cbmon_printed", target)
    script.write_text(text.replace("COMMIT;", "SELECT 1/0;  -- any failure\nCOMMIT;"))
    ran = psql(quiet_pg.dsn, script)
    assert ran.returncode != 0
    with psycopg.connect(quiet_pg.dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'cbmon_printed'"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [target]
        ).fetchone() == (0,)


def test_the_audit_itself_needs_no_privilege(quiet_pg: PgSchema, audited: str) -> None:
    with as_role(quiet_pg, audited) as conn:
        findings = roles.audit(conn, "postgres", server_of(conn))
    assert any("superuser" in finding.what for finding in findings)
