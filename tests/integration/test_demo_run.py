"""``cbmon demo``'s own resources: a free port is found, a taken one costs one line and
nothing else; a schema, a data directory and a server belong to one demo at a time."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from cbmon.db.embedded import DataDirInUse, EmbeddedPostgres, running_postmaster
from cbmon.demo.run import Demo, DemoOptions, demo_lock_key, reserve_listen
from cbmon.errors import ConfigError
from tests.conftest import PgSchema
from tests.support.cli import cbmon


@contextmanager
def _listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_reserve_listen_picks_a_free_port_for_port_zero() -> None:
    host, _, port = reserve_listen("127.0.0.1:0").rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_a_taken_port_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with _listening() as port:
        with pytest.raises(ConfigError, match="address already in use"):
            reserve_listen(f"127.0.0.1:{port}")
        result = cbmon("demo", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "pg"))
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"cbmon: --listen 127.0.0.1:{port}: address already in use; "
        "pass --listen 127.0.0.1:0 for a free port"
    ]
    assert not (tmp_path / "pg").exists()  # no database was started for nothing


def test_without_listen_the_default_port_or_a_free_one_when_it_is_taken() -> None:
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 9863))
        taken.listen()
    except OSError:
        pass  # another program has it already: the same case
    try:
        host, _, port = reserve_listen(None).rpartition(":")
    finally:
        taken.close()
    assert host == "127.0.0.1"
    assert int(port) not in (0, 9863)


def test_a_second_demo_on_the_same_schema_is_refused_before_it_drops_anything(
    pg: PgSchema,
) -> None:
    """The first demo holds its schema; the second would drop the tables under it."""
    holder = psycopg.connect(pg.dsn, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [demo_lock_key(pg.name)])
        options = DemoOptions(dsn=pg.dsn, schema=pg.name, listen="127.0.0.1:0")
        with pytest.raises(ConfigError, match=f"--schema {pg.name}: another cbmon demo"):
            Demo(options, io.StringIO()).run()
    finally:
        holder.close()
    tables = pg.conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [pg.name]
    ).fetchone()
    assert tables is not None
    assert tables[0] >= 3  # the reference tables are all still there


@pytest.mark.slow  # starts an embedded server
def test_the_embedded_server_is_stopped_only_by_whoever_started_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    owner = EmbeddedPostgres(data_dir).start()
    try:
        assert owner.started_here
        guest = EmbeddedPostgres(data_dir).start()
        assert not guest.started_here
        guest.stop()
        with psycopg.connect(owner.dsn) as conn:  # still up
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(DataDirInUse, match="a PostgreSQL server cbmon did not start"):
            EmbeddedPostgres(data_dir, exclusive=True).lock()
    finally:
        owner.stop()
    assert running_postmaster(data_dir) is None


def test_an_exclusive_data_directory_is_refused_to_a_second_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    first = EmbeddedPostgres(data_dir, exclusive=True)
    first.lock()
    try:
        with pytest.raises(DataDirInUse, match=f"{data_dir} is in use by another cbmon process"):
            EmbeddedPostgres(data_dir, exclusive=True).lock()
    finally:
        first.stop()  # releases the lock; nothing was started
    second = EmbeddedPostgres(data_dir, exclusive=True)
    second.lock()
    second.stop()
