"""Callback attempts written straight into a test schema's log, as a worker logs them."""

from __future__ import annotations

from tests.conftest import PgSchema


def insert(pg: PgSchema, event_type: str, ok: int, failed: int, milliseconds: float = 40) -> None:
    """``ok + failed`` attempts of ``event_type`` in one statement, ``failed`` of them FAILED."""
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT %s, CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, %s "
        "FROM generate_series(1, %s) g",
        [event_type, failed, milliseconds, ok + failed],
    )
