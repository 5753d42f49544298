"""The driver under cbmon's connections: psycopg 3, or Huawei's ``gaussdb`` fork of it.

cbmon is written and typed against psycopg. ``gaussdb`` (PyPI, the ``cbmon[gaussdb]`` extra) is
psycopg 3 renamed and adapted to Huawei's libpq, which speaks openGauss' default ``sha256``
password method that a stock libpq refuses. Its objects behave like psycopg's, but its classes
are its own. This module is the one place that chooses (``database.driver``): a gaussdb
connection is opened with a connection and cursor class that

* accept cbmon's ``psycopg.sql`` statements, rendered to text first, and
* raise psycopg's exception classes (same SQLSTATE, same message),

so every ``except psycopg.Error`` in cbmon, and every statement it composes, work unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Iterator
from typing import Any, Literal

import psycopg
from psycopg import sql

from cbmon.errors import ConfigError

Driver = Literal["psycopg", "gaussdb"]
DRIVERS: tuple[Driver, ...] = ("psycopg", "gaussdb")


def connect(driver: Driver, conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection through ``driver``; raises ``psycopg.Error`` whichever it is."""
    if driver == "psycopg":
        return psycopg.connect(conninfo, **kwargs)
    connection_class, cursor_class = _gaussdb_classes()
    with translated():
        return connection_class.connect(  # type: ignore[no-any-return]
            conninfo, cursor_factory=cursor_class, **kwargs
        )


def error_classes() -> tuple[type[Exception], ...]:
    """The base error class of every driver loaded in this process."""
    loaded = sys.modules.get("gaussdb")
    extra = getattr(loaded, "Error", None)
    return (psycopg.Error,) if extra is None else (psycopg.Error, extra)


def translate(exc: BaseException) -> psycopg.Error:
    """A gaussdb error as the psycopg error of the same SQLSTATE (or of the same DB-API
    class when it has none), with the same message."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, psycopg.Error):
        return exc
    cls: type[psycopg.Error] | None = None
    if sqlstate:
        with contextlib.suppress(KeyError):
            cls = psycopg.errors.lookup(sqlstate)
    if cls is None:
        cls = _same_class(type(exc))
    return cls(str(exc))


def _same_class(kind: type[BaseException]) -> type[psycopg.Error]:
    for base in kind.__mro__:
        found = getattr(psycopg, base.__name__, None)
        if isinstance(found, type) and issubclass(found, psycopg.Error):
            return found
    return psycopg.Error


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise psycopg's error for any driver error raised inside the block."""
    try:
        yield
    except psycopg.Error:
        raise
    except error_classes() as exc:
        raise translate(exc) from exc


def as_text(query: Any) -> Any:
    """cbmon's composed statements as text another driver accepts; anything else as it is.

    Identifiers are quoted and literals rendered the way psycopg does without a connection.
    """
    if isinstance(query, sql.Composable):
        return query.as_string(None)
    return query


@functools.cache
def _gaussdb_classes() -> tuple[Any, Any]:
    try:
        gaussdb = importlib.import_module("gaussdb")
    except ImportError as exc:
        raise ConfigError(
            f"database.driver is gaussdb, but the gaussdb package cannot be loaded ({exc}): "
            "pip install 'cbmon[gaussdb]' and Huawei's libpq (see docs/gaussdb.md)"
        ) from None

    class Cursor(gaussdb.Cursor):  # type: ignore[misc,name-defined]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            with translated():
                return super().execute(as_text(query), params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            with translated():
                return super().executemany(as_text(query), params_seq, **kwargs)

    class Connection(gaussdb.Connection):  # type: ignore[misc,name-defined]
        def commit(self) -> None:
            with translated():
                super().commit()

        def rollback(self) -> None:
            with translated():
                super().rollback()

        @contextlib.contextmanager
        def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            with translated(), super().transaction(*args, **kwargs) as tx:
                yield tx

        def notifies(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            with translated():
                yield from super().notifies(*args, **kwargs)

    return Connection, Cursor
