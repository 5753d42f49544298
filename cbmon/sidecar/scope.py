"""Which database of a fleet the current thread polls, for the lines it logs: the log's
formatters (:mod:`cbmon.cli.logs`) add it to every record, so two databases' lines tell
themselves apart."""

from __future__ import annotations

import logging
import threading

_local = threading.local()


def enter(database: str | None) -> None:
    """From now on, this thread's log lines are about ``database`` (None: about none)."""
    _local.database = database


def current() -> str | None:
    database: str | None = getattr(_local, "database", None)
    return database


class DatabaseFilter(logging.Filter):
    """Sets ``record.database``: the database the logging thread polls, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.database = current()
        return True
