"""cbmon on a real openGauss: opt-in, for anyone with a server.

Set ``CBMON_TEST_OPENGAUSS_DSN`` to a sysadmin's DSN (md5 password, e.g. the
``opengauss/opengauss-server`` image's ``gaussdb`` user; docs/gaussdb.md says how) and run
``pytest -m opengauss``. Each test runs in a database of its own, once in ``DBCOMPATIBILITY 'PG'``
and once in the default ``'A'`` mode, where an empty string is NULL. Without the variable the
tests skip: no openGauss server can run in CI.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import conninfo, sql

from cbmon.cli import cli
from cbmon.db.connect import connect, server_of
from tests.support import gauss_scenario
from tests.support.receiver import receiver

DSN_ENV = "CBMON_TEST_OPENGAUSS_DSN"
# Without the variable these are deselected, not skipped (tests/conftest.py): no openGauss
# server can exist on a machine without one, and a skip would look like a test that ran.
pytestmark = pytest.mark.opengauss


def _in(dsn: str, **changes: str) -> str:
    params = conninfo.conninfo_to_dict(dsn)
    params.update(changes)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


@pytest.fixture(scope="module", params=["PG", "A"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A fresh database in one compatibility mode: (admin DSN into it, the mode)."""
    admin = os.environ[DSN_ENV]
    name = f"cbmon_og_{request.param.lower()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} DBCOMPATIBILITY {}").format(
                sql.Identifier(name), sql.Literal(request.param)
            )
        )
    try:
        yield _in(admin, dbname=name), request.param
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def outcome(
    database: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[gauss_scenario.Outcome, str, str]]:
    admin, mode = database
    tag = secrets.token_hex(3)
    reader, executor = f"cbmon_og_reader_{tag}", f"cbmon_og_exec_{tag}"
    password = f"Cbmon@{secrets.token_hex(6)}"  # openGauss' complexity rules
    gauss_scenario.apply_schema(admin, reader)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(reader), sql.Literal(password)
            )
        )
    reader_dsn = _in(admin, user=reader, password=password)
    try:
        with receiver() as hooks:
            result = gauss_scenario.run(
                admin, reader_dsn, executor, tmp_path_factory.mktemp(f"og_{mode}"), hooks
            )
            yield result, reader_dsn, mode
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for role in (reader, executor):
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_detected_as_opengauss(database: tuple[str, str]) -> None:
    conn = connect(database[0])
    with conn:
        assert server_of(conn).flavor == "opengauss"


def test_the_whole_scenario(outcome: tuple[gauss_scenario.Outcome, str, str]) -> None:
    result, _, _ = outcome
    flavors = [
        s.labels["flavor"]
        for metric in result.registry.collect()
        if metric.name == "cbmon_database_info"
        for s in metric.samples
    ]
    assert flavors == ["opengauss"]
    assert result.delivered == gauss_scenario.ORDERS
    attempts = result.registry.get_sample_value(
        "cbmon_callback_attempts_total", {"event_type": "order_created"}
    )
    assert attempts == gauss_scenario.ORDERS
    cache = {"table": "logs", "check": "sequence_cache_1"}
    assert result.registry.get_sample_value("cbmon_reader_assumption_ok", cache) == 1
    assert result.check.exit_code in (0, 1, 2), result.check.output
    assert result.report.exit_code == 0, result.report.output
    assert json.loads(result.report.output)["overall"]["calls"] == gauss_scenario.ORDERS


def test_an_empty_error_message_is_not_printed_as_none(
    database: tuple[str, str], outcome: tuple[gauss_scenario.Outcome, str, str], tmp_path: Path
) -> None:
    admin, _ = database
    _, reader_dsn, _ = outcome
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.callback_errors (event_type, error_message) VALUES ('x', '')"
            ).format(sql.Identifier(gauss_scenario.SCHEMA))
        )
    config = gauss_scenario.config_file(tmp_path, tmp_path / "state")
    result = CliRunner().invoke(
        cli, ["report", "--dsn", reader_dsn, "--config", str(config), "--since", "1h"]
    )
    assert result.exit_code == 0, result.output
    assert "None" not in result.output
