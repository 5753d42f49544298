"""Every statement a connection sends, as it goes over the wire: libpq's own trace (PQtrace)
of the client's messages, read back and turned into statements.

The trace sees what cbmon cannot hide from it: statements sent through any cursor, the
``BEGIN`` psycopg sends for a transaction and its ``COMMIT``, prepared statements run again
by name. It is what design.md's cost claims are about, so the tests assert on it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
from psycopg import pq

# A message from the frontend: "F", its length, its type, then its fields.
_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$")
# Parse: the statement's name, its text (which may hold quotes and newlines), then the number
# of parameter types.
_PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+(?: .*)?$', re.DOTALL)
# Bind: the portal's name, then the statement's.
_BIND = re.compile(r'^ "[^"]*" "([^"]*)"')
_QUERY = re.compile(r'^ "(.*)"$', re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Sent:
    """One statement run, in the order the server received it."""

    text: str

    @property
    def words(self) -> str:
        """The statement on one line, spaces squeezed: easy to match."""
        return " ".join(self.text.split())


def parse(trace: str, prepared: dict[str, str] | None = None) -> list[Sent]:
    """The statements run in a libpq trace: each simple query, and each Bind of a statement
    parsed in the trace (unnamed, or prepared: ``prepared`` keeps those across calls)."""
    messages: list[tuple[str, str, str]] = []
    for line in trace.splitlines():
        match = _MESSAGE.match(line)
        if match:
            messages.append((match[1], match[2], match[3]))
        elif messages:  # a field that went on over a newline
            side, kind, fields = messages[-1]
            messages[-1] = (side, kind, f"{fields}\n{line}")
    parsed = {} if prepared is None else prepared
    sent: list[Sent] = []
    for side, kind, fields in messages:
        if side != "F":
            continue
        if kind == "Query":
            query = _QUERY.match(fields)
            assert query is not None, fields
            sent.append(Sent(query[1]))
        elif kind == "Parse":
            parsing = _PARSE.match(fields)
            assert parsing is not None, fields
            parsed[parsing[1]] = parsing[2]
        elif kind == "Bind":
            binding = _BIND.match(fields)
            assert binding is not None, fields
            assert binding[1] in parsed, f"statement {binding[1]!r} was prepared unrecorded"
            sent.append(Sent(parsed[binding[1]]))
    return sent


class Recorder:
    """The statements one connection sends while recording; :meth:`take` hands over what was
    sent since the last call."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._pgconn = conn.pgconn
        # Open as long as the recorder is: closed by close().
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._read = 0
        self._prepared: dict[str, str] = {}
        self._fd: int | None = None
        self._start()

    def _start(self) -> None:
        # libpq writes through a stream of its own on this descriptor; untrace flushes it.
        self._fd = os.dup(self._file.fileno())
        self._pgconn.trace(self._fd)
        self._pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _pause(self) -> None:
        if self._fd is not None:
            self._pgconn.untrace()
            os.close(self._fd)
            self._fd = None

    def take(self) -> list[Sent]:
        """What was sent since the last call (or since recording began)."""
        self._pause()
        self._file.seek(self._read)
        text = self._file.read().decode("utf-8", "replace")
        self._read = self._file.tell()
        self._start()
        return parse(text, self._prepared)

    def close(self) -> None:
        self._pause()
        self._file.close()


@contextmanager
def recording(conn: psycopg.Connection[Any]) -> Iterator[Recorder]:
    """Record what ``conn`` sends inside the block."""
    recorder = Recorder(conn)
    try:
        yield recorder
    finally:
        recorder.close()
