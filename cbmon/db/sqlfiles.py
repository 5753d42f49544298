"""The SQL files shipped with cbmon, loaded once and formatted with quoted identifiers only."""

from __future__ import annotations

import functools
from importlib import resources

from psycopg import sql


@functools.cache
def text(name: str) -> str:
    """The raw text of ``cbmon/sql/<name>`` as shipped in the package."""
    return resources.files("cbmon").joinpath("sql", name).read_text(encoding="utf-8")


def template(name: str) -> sql.SQL:
    """``cbmon/sql/<name>`` as a composable; fill its ``{placeholders}`` with ``sql.Identifier``s.

    The files are part of the package, never user input: they are the literal query text.
    """
    return sql.SQL(text(name))
