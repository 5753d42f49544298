"""Which database of a fleet the current thread works for, for the lines it logs: the log's
formatters (:mod:`cbmon.cli.logs`) add it to every record, so two databases' lines tell
themselves apart. A :class:`Thread` carries it on to the threads it starts (the webhook
outboxes, the Alertmanager sender, the LISTEN session, the reloader, an HTTP exchange)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

_local = threading.local()


def enter(database: str | None) -> None:
    """From now on, this thread's log lines are about ``database`` (None: about none)."""
    _local.database = database


def current() -> str | None:
    database: str | None = getattr(_local, "database", None)
    return database


@contextlib.contextmanager
def scoped(database: str | None) -> Iterator[None]:
    """This thread's log lines are about ``database`` within the block, as before after it."""
    before = current()
    enter(database)
    try:
        yield
    finally:
        enter(before)


class Thread(threading.Thread):
    """A thread whose log lines are about the database of the thread that starts it, else of
    the one that made it: what a fleet's target starts names that target."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._scope = current()

    def start(self) -> None:
        self._scope = current() or self._scope
        super().start()

    def run(self) -> None:
        enter(self._scope)
        super().run()


class DatabaseFilter(logging.Filter):
    """Sets ``record.database``: the database the logging thread works for, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.database = current()
        return True
