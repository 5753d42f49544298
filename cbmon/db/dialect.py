"""Which server cbmon talks to: PostgreSQL (and its version), openGauss or GaussDB.

Detected once per connection from ``version()`` (openGauss and GaussDB name themselves there,
and report a PostgreSQL 9.2 ``server_version`` otherwise indistinguishable). Where their SQL
must differ, code asks this one value, never the version string again.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

import psycopg

Flavor = Literal["postgresql", "opengauss", "gaussdb"]


@dataclasses.dataclass(frozen=True)
class Server:
    flavor: Flavor
    version: str  # "15.3", "5.0.2", ...
    number: int  # server_version_num as PostgreSQL reports it (90204 on openGauss)

    @property
    def postgresql(self) -> bool:
        return self.flavor == "postgresql"

    @property
    def has_idle_session_timeout(self) -> bool:
        return self.postgresql and self.number >= 140000

    @property
    def label(self) -> str:
        names = {"postgresql": "PostgreSQL", "opengauss": "openGauss", "gaussdb": "GaussDB"}
        return f"{names[self.flavor]} {self.version}"


_NAMED = re.compile(r"\((openGauss|GaussDB)[^\d]*([\d.]+)", re.IGNORECASE)


def classify(version_text: str, number: int) -> Server:
    """``version()``'s text and ``server_version_num`` as a :class:`Server`."""
    named = _NAMED.search(version_text)
    if named:
        flavor: Flavor = "gaussdb" if named.group(1).lower() == "gaussdb" else "opengauss"
        return Server(flavor, named.group(2), number)
    plain = re.search(r"PostgreSQL ([\d.]+)", version_text)
    return Server("postgresql", plain.group(1) if plain else str(number), number)


def detect(conn: psycopg.Connection[Any]) -> Server:
    row = conn.execute("SELECT version()").fetchone()
    return classify(str(row[0]) if row else "", conn.info.server_version)
