"""``cbmon`` run in this process the way its console script runs it.

The entry point :func:`cbmon.cli.main` is what turns a :class:`~cbmon.errors.CbmonError` into
one ``cbmon: ...`` line on stderr and its exit code, and the command group sets up logging to
stderr; ``CliRunner.invoke`` would bypass the first and pytest's own log handlers the second.
So the command line goes through ``main()`` itself, inside click's stream isolation, with the
root logger bare as in a fresh interpreter: stdout, stderr and the exit code are what a user
sees from the real command, without the cost of starting Python.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from click.testing import CliRunner

from cbmon.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def cbmon(*args: str, env: Mapping[str, str | None] | None = None) -> Outcome:
    """``cbmon ARGS...`` with ``env`` over the environment (None removes a variable)."""
    with CliRunner().isolation(env=env) as (stdout, stderr, _), _bare_root_logger():
        argv = sys.argv
        sys.argv = ["cbmon", *args]
        try:
            main()
            code = 0  # main() always exits; this is only reached if that changes
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv = argv
        sys.stdout.flush()
        sys.stderr.flush()
        return Outcome(code, stdout.getvalue().decode(), stderr.getvalue().decode())


@contextmanager
def _bare_root_logger() -> Iterator[None]:
    """No handlers on the root logger meanwhile, so the CLI's ``logging.basicConfig`` writes
    to the isolated stderr as it would in its own process; everything is put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)
