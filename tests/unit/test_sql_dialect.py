"""Every SQL cbmon ships or composes parses as PostgreSQL and uses nothing openGauss 5.0 lacks,
except where a dialect switch guards it (the reviewed allow-list below). No server needed:
pglast parses with PostgreSQL's own grammar; tests/support/dialect.py names the constructs."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

import pytest
from psycopg import sql

import cbmon
from cbmon.config import load_config
from cbmon.db import catalog, dialect, roles, sqlfiles
from cbmon.domain import Features
from cbmon.ingest import poller as poller_module
from cbmon.ingest.reader import Gap
from cbmon.reference import mechanism, schema, worker
from cbmon.report import query as report_query
from tests.support.dialect import Finding, bind_free, check

OPENGAUSS = dialect.Server("opengauss", "5.0.2", 90204)
PACKAGE = Path(cbmon.__file__).parent

# What openGauss lacks and cbmon uses anyway, each guarded by a dialect switch. Reviewed: an
# entry names the statement's source, the construct, and why it never reaches openGauss.
ALLOWED: dict[tuple[str, str], str] = {
    ("sql/queries/sequence_cache.sql", "pg_sequence"): (
        "read only when Server.has_pg_sequence (PostgreSQL 10+); catalog.py reads cache_value "
        "from the sequence itself elsewhere"
    ),
    ("cbmon/db/dialect.py", "pg_current_wal_insert_lsn"): (
        "Server.insert_lsn: the PostgreSQL form; openGauss gets pg_current_xlog_insert_location"
    ),
    ("cbmon/db/dialect.py", "pg_last_wal_replay_lsn"): (
        "Server.recovery_state: the PostgreSQL form; openGauss gets pg_last_xlog_replay_location"
    ),
    ("cbmon/db/topology.py", "pg_control_system"): (
        "read only when Server.has_control_functions (PostgreSQL 9.6+); elsewhere the history "
        "is unknown and resets are still found by the witness row"
    ),
    ("cbmon/db/topology.py", "pg_control_checkpoint"): ("as pg_control_system"),
    ("cbmon/db/topology.py", "pg_walfile_name"): ("as pg_control_system"),
    ("cbmon/db/topology.py", "pg_current_wal_lsn"): ("as pg_control_system"),
    ("sql/probes/notify_queue.sql", "pg_notification_queue_usage"): (
        "run only when presence.sql found the function in pg_proc; elsewhere the NOTIFY queue "
        "source is absent"
    ),
    ("cbmon/reference/worker.py", "LISTEN"): (
        "the worker catches SQLSTATE 0A000, says so once and polls every poll_interval"
    ),
    ("cbmon/demo/faults.py", "LISTEN"): (
        "the demo's stuck listener catches SQLSTATE 0A000 and leaves that fault out"
    ),
    ("cbmon/ingest/wake.py", "LISTEN"): (
        "the wake listener catches SQLSTATE 0A000 (FeatureNotSupported), says so once and "
        "leaves serve poll-driven"
    ),
}

# Sample fragments for the placeholders the code fills with more than a name.
FRAGMENTS: dict[str, sql.Composable] = {
    "key": sql.SQL('"event_type"::text'),
    "aggregates": sql.SQL("count(*) AS n"),
    "where": sql.SQL('"id" > %(after)s'),
    "bucket_column": sql.SQL(""),
    "bucket": sql.SQL(""),
    "grouping": sql.SQL("(event_type), ()"),
    "duration": sql.SQL('"execution_time"::float8'),
    "schema_literal": sql.Literal("public"),
    "executor_literal": sql.Literal("callback_executor"),
    "attributes": sql.Literal("NOLOGIN"),
}


def rendered_file(name: str) -> str:
    """``cbmon/sql/<name>`` with every placeholder filled with a sample."""
    text = sqlfiles.text(name)
    fields = {field for _, field, _, _ in string.Formatter().parse(text) if field}
    names = {field: FRAGMENTS.get(field, sql.Identifier(field)) for field in fields}
    return sqlfiles.template(name).format(**names).as_string(None)


def sql_files() -> list[str]:
    root = resources.files("cbmon").joinpath("sql")
    found = []
    for path in sorted(Path(str(root)).rglob("*.sql")):
        found.append(path.relative_to(Path(str(root))).as_posix())
    return found


def composed() -> Iterator[tuple[str, str | sql.Composable]]:
    """The statements cbmon composes, from its own objects for a sample configuration."""
    config = load_config(
        overrides={"callbacks": {"event_types": {"pay": {"max_retries": 5}}}}, environ={}
    )
    polls = poller_module.Poller(config, backfill=300)
    # Every lifecycle column found: the statements as they run on the reference schema.
    every = Features(True, True, True, True, True)
    polls.logs.source = poller_module.lifecycle_source(polls.logs.source, config, every)
    yield "poller.queue", polls._queue_query.as_string(None)
    yield "poller.queue", poller_module._queue_query(config.tables.queue, every).as_string(None)
    for reader in (polls.logs, polls.errors):
        source = reader.source
        where, _ = reader._ranges([Gap(1, 2), Gap(5, 9)])
        yield "reader.aggregate", source.formatted("queries/aggregate_new_rows.sql", where)
        created = sql.Identifier("created_at")
        within = sql.SQL(poller_module._WITHIN).format(created_at=created)
        yield (
            "reader.backfill",
            source.formatted("queries/backfill.sql", within, counted=False, created_at=created),
        )
        yield (
            "reader.present",
            sqlfiles.template("queries/present_ranges.sql").format(
                id=source.id_column, table=source.table, where=where
            ),
        )
        yield (
            "reader.gaps",
            sqlfiles.template("queries/find_gaps.sql").format(
                id=source.id_column, table=source.table
            ),
        )
    numeric = catalog.as_float8(sql.Identifier("execution_time"), "numeric")
    yield "catalog.as_float8", sql.SQL("SELECT {} FROM t").format(numeric)
    report = report_query._Source(config)
    named: list[tuple[str, Mapping[str, sql.Composable]]] = [
        ("summary", report.logs),
        ("series", report.logs),
        ("errors", report.errors),
        ("errors_series", report.errors),
        ("top_errors", report.errors),
        ("queue", report.queue),
        ("event_type_seen", report.seen),
    ]
    for name, identifiers in named:
        yield f"report.{name}", report.statement(name, identifiers)
    for name in ("summary", "series"):
        yield f"report.callbacks.{name}", report_query.callbacks_statement(config, every, name)
    statements = worker._Statements("callbacks")
    for name, value in vars(statements).items():
        if isinstance(value, sql.Composable):
            yield f"worker.{name}", value
    for server in (dialect.POSTGRESQL_15, OPENGAUSS):
        yield f"roles.create.{server.flavor}", roles.create_role("cbmon", server)
        yield f"roles.script.{server.flavor}", roles.print_script("cbmon", "app", server)
        for index, statement in enumerate(mechanism.statements("app", "exec", server, "app")):
            yield f"mechanism.{server.flavor}.{index}", statement
    for statement in roles.reader_statements("cbmon", "app", "db"):
        yield "roles.grants", statement
    yield "schema.render", schema.render("cbmon", "app")


def inline_strings() -> Iterator[tuple[str, str]]:
    """SQL written inside Python modules: strings that start like a statement."""
    start = re.compile(
        r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|SET|CREATE|ALTER|GRANT|REVOKE|DROP|LISTEN|DO)\b"
    )
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # docstrings, and the pieces of f-strings (their statements are checked whole, as
        # composed above, where cbmon runs them)
        skipped = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        skipped |= {
            id(part)
            for node in ast.walk(tree)
            if isinstance(node, ast.JoinedStr)
            for part in node.values
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skipped
                and start.match(node.value)
            ):
                text = re.sub(r"\{\w*\}", '"x"', node.value)
                yield f"cbmon/{path.relative_to(PACKAGE).as_posix()}", text


def every_statement() -> Iterator[tuple[str, str]]:
    for name in sql_files():
        yield f"sql/{name}", rendered_file(name)
    for source, statement in composed():
        text = statement if isinstance(statement, str) else statement.as_string(None)
        yield source, text
    yield from inline_strings()


# openGauss-only grammar in statements made for openGauss alone, as the PostgreSQL words for the
# same thing, so the parser can check the rest of the statement.
OPENGAUSS_ONLY = {"PASSWORD DISABLE": "PASSWORD NULL"}


def findings() -> list[Finding]:
    found: list[Finding] = []
    for source, text in every_statement():
        if ".opengauss" in source:
            for gauss, postgres in OPENGAUSS_ONLY.items():
                text = text.replace(gauss, postgres)
        found += check(bind_free(text), source)
    return found


def test_every_statement_parses_and_needs_nothing_opengauss_lacks() -> None:
    unexpected = [f for f in findings() if (f.source, f.construct) not in ALLOWED]
    assert unexpected == []


def test_every_allowed_exception_is_still_needed() -> None:
    used = {(f.source, f.construct) for f in findings()}
    assert set(ALLOWED) - used == set()


def test_the_check_sees_every_kind_of_source() -> None:
    sources = {source for source, _ in every_statement()}
    assert {f"sql/{name}" for name in sql_files()} <= sources
    assert len([s for s in sources if s.startswith("sql/mechanism/")]) == 6
    for expected in (
        "cbmon/delivery/leader.py",  # the leader lock's holder query
        "cbmon/db/roles.py",  # the role audit
        "cbmon/demo/traffic.py",  # the demo's set-based inserts
        "report.summary",
        "worker.claim",
        "mechanism.opengauss.0",
        "reader.gaps",
    ):
        assert expected in sources


BAD = [
    ("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING", "ON CONFLICT"),
    ("SELECT count(*) FILTER (WHERE a > 1) FROM t", "FILTER"),
    ("SELECT * FROM t CROSS JOIN LATERAL generate_series(1, t.n) AS g", "LATERAL"),
    ("SELECT count(*) FROM r, unnest(r.items) AS i", "LATERAL"),
    ("CREATE TRIGGER g AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "EXECUTE FUNCTION"),
    (
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ DECLARE i interval; "
        "BEGIN i := make_interval(secs => 1); END $$",
        "make_interval",
    ),
    (
        "CREATE FUNCTION f() RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_agg(x) FROM t $$",
        "jsonb_agg",
    ),
    ("DO $$ BEGIN PERFORM to_jsonb(1); END $$", "to_jsonb"),
    ("SELECT pg_current_xact_id()", "pg_current_xact_id"),
    ("SELECT '1'::xid8", "xid8"),
    ("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY)", "IDENTITY"),
    ("SELECT pg_notification_queue_usage()", "pg_notification_queue_usage"),
    ("SELECT seqcache FROM pg_sequence", "pg_sequence"),
    ("SELECT to_regclass('t')", "to_regclass"),
    ("SELECT txid_snapshot_xmin(txid_current_snapshot())", "txid_current_snapshot"),
    ("SELECT backend_type FROM pg_stat_activity", "backend_type"),
    ("CREATE INDEX IF NOT EXISTS i ON t (a)", "CREATE INDEX IF NOT EXISTS"),
    ("LISTEN queue", "LISTEN"),
    ("WITH w AS MATERIALIZED (SELECT 1) SELECT * FROM w", "MATERIALIZED"),
]


@pytest.mark.parametrize(("text", "construct"), BAD, ids=[construct for _, construct in BAD])
def test_the_check_names_what_opengauss_lacks(text: str, construct: str) -> None:
    assert construct in {finding.construct for finding in check(text, "sample")}


def test_the_forms_cbmon_uses_instead_pass() -> None:
    for text in (
        "INSERT INTO t (a) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM t WHERE a = 1)",
        "SELECT count(CASE WHEN a > 1 THEN 1 END) FROM t",
        "SELECT id, generate_series(1, n) FROM t",
        "CREATE TRIGGER g AFTER INSERT ON t FOR EACH ROW EXECUTE PROCEDURE f()",
        "SELECT now() + interval '1 second' * 3",
        "SELECT json_build_object('a', 1)::text::jsonb",
    ):
        assert check(text, "sample") == []
