"""openGauss/GaussDB handling that needs no server: detection, the sha256 login message, the
gaussdb driver's error and statement translation, the database info metric, unknown checks."""

from __future__ import annotations

import dataclasses
import importlib

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import sql

from cbmon.db import dialect, driver, roles
from cbmon.db.connect import explain
from cbmon.domain import Assumption, DatabaseInfo
from cbmon.ingest.store import Store
from cbmon.web.collector import CallbackCollector
from tests.support.sidecar import poll_result

OPENGAUSS_502 = (
    "(openGauss 5.0.2 build 48a25b11) compiled at 2024-05-14 10:25:27 commit 0 last mr on "
    "x86_64-unknown-linux-gnu, compiled by g++ (GCC) 7.3.0, 64-bit"
)


@pytest.mark.parametrize(
    ("text", "number", "flavor", "version"),
    [
        ("PostgreSQL 15.3 on x86_64-pc-linux-gnu", 150003, "postgresql", "15.3"),
        (OPENGAUSS_502, 90204, "opengauss", "5.0.2"),
        ("(openGauss-lite 7.0.0-RC3 build ) compiled at ...", 90204, "opengauss", "7.0.0"),
        (
            "gaussdb (GaussDB Kernel 505.2.0 build 1a2b) compiled at ...",
            90204,
            "gaussdb",
            "505.2.0",
        ),
    ],
)
def test_the_server_is_named_from_version(
    text: str, number: int, flavor: str, version: str
) -> None:
    server = dialect.classify(text, number)
    assert (server.flavor, server.version) == (flavor, version)
    assert server.info == DatabaseInfo(flavor, version)


def test_only_postgresql_10_and_later_have_pg_sequence() -> None:
    assert dialect.classify("PostgreSQL 15.3", 150003).has_pg_sequence
    assert not dialect.classify("PostgreSQL 9.6.1", 90601).has_pg_sequence
    assert not dialect.classify(OPENGAUSS_502, 90204).has_pg_sequence


def test_roles_are_made_in_each_grammar() -> None:
    gauss = dialect.classify(OPENGAUSS_502, 90204)
    pg = roles.create_role("cbmon", dialect.POSTGRESQL_15).as_string(None)
    og = roles.create_role("cbmon", gauss).as_string(None)
    assert "NOSUPERUSER" in pg
    assert "PASSWORD" not in pg
    assert og == (
        'CREATE ROLE "cbmon" LOGIN NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION PASSWORD DISABLE'
    )


@pytest.mark.parametrize(
    "message",
    [
        "connection failed: none of the server's SASL authentication mechanisms are supported",
        "connection failed: authentication method 10 not supported",
    ],
)
def test_a_sha256_login_failure_names_cause_and_fix(message: str) -> None:
    line = explain(psycopg.OperationalError(message))
    assert "\n" not in line
    assert "sha256" in line
    assert "password_encryption_type = 1" in line
    assert "docs/gaussdb.md" in line


def test_other_login_failures_are_left_as_they_are() -> None:
    assert explain(psycopg.OperationalError("password authentication failed")) == (
        "password authentication failed"
    )


def test_gaussdb_errors_become_psycopg_errors_of_the_same_sqlstate() -> None:
    gaussdb = importlib.import_module("gaussdb")
    refused = driver.translate(gaussdb.errors.FeatureNotSupported("LISTEN is not supported"))
    assert isinstance(refused, psycopg.errors.FeatureNotSupported)
    assert str(refused) == "LISTEN is not supported"
    lost = driver.translate(gaussdb.OperationalError("the connection is lost"))
    assert type(lost) is psycopg.OperationalError
    with pytest.raises(psycopg.errors.UndefinedTable), driver.translated():
        raise gaussdb.errors.UndefinedTable("no such table")


def test_composed_statements_reach_another_driver_as_text() -> None:
    query = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
        sql.Identifier("a b"), sql.Identifier("app", "t")
    )
    assert driver.as_text(query) == 'SELECT "a b" FROM "app"."t" WHERE id = %s'
    assert driver.as_text("SELECT 1") == "SELECT 1"


def _registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CallbackCollector(store))
    return registry


def test_database_info_follows_the_polls() -> None:
    store = Store(100)
    registry = _registry(store)
    labels = {"flavor": "opengauss", "version": "5.0.2"}
    assert registry.get_sample_value("cbmon_database_info", labels) is None
    result = dataclasses.replace(poll_result(), database=DatabaseInfo("opengauss", "5.0.2"))
    store.apply(result, store.label(result), 0.01)
    assert registry.get_sample_value("cbmon_database_info", labels) == 1


def test_a_check_that_cannot_be_made_is_unknown_not_failed() -> None:
    store = Store(100)
    unknown = Assumption("logs", "sequence_cache_1", None, "cannot read")
    result = poll_result(assumptions=(unknown,))
    store.apply(result, store.label(result), 0.01)
    labels = {"table": "logs", "check": "sequence_cache_1"}
    assert _registry(store).get_sample_value("cbmon_reader_assumption_ok", labels) == -1
