"""``cbmon schema apply``'s read-only role: it reads the callback tables and can write nothing."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PgSchema


def test_the_read_only_role_reads_and_cannot_write(pg: PgSchema, read_only_dsn: str) -> None:
    pg.conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('ro', 'COMPLETED')")
    with psycopg.connect(read_only_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg.name)))
        for table in ("callback_logs", "callback_errors", "callback_queue"):
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        assert conn.execute("SELECT count(*) FROM callback_logs").fetchone() == (1,)
        # Sessions are read-only by default...
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO callback_logs (event_type, status) VALUES ('x', 'y')")
        # ...and a session that turns that off still has no right to write.
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "INSERT INTO callback_logs (event_type, status) VALUES ('x', 'y')",
            "DELETE FROM callback_queue",
            "UPDATE callback_queue SET processed_at = now()",
            "TRUNCATE callback_errors",
            "CREATE TABLE stolen (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
