"""Stepping one process's wall clock live, with libfaketime (Debian ``faketime``).

The process runs with libfaketime preloaded, reading its offset from a file at every clock
reading (``FAKETIME_NO_CACHE``), so a test moves the clock while the process runs. Only the
wall clock moves: ``DONT_FAKE_MONOTONIC`` leaves the monotonic clock alone, as an NTP step or
an operator's ``date -s`` does (and a faked monotonic clock stalls Python's timed waits).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

LIBRARY = "/usr/lib/*/faketime/libfaketimeMT.so.1"  # the variant for threaded programs


def library() -> str:
    """The preloadable library; skip without it, or fail when CI demands every binary."""
    found = sorted(glob.glob(LIBRARY))
    if not found:
        message = "libfaketime is not installed (apt-get install faketime)"
        if os.environ.get("CBMON_REQUIRE_BINARIES"):
            pytest.fail(f"{message}, and CBMON_REQUIRE_BINARIES is set")
        pytest.skip(message)
    return found[0]


class FakeTime:
    """The wall clock of the processes started with :attr:`env`, offset by :meth:`step`."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "faketime"
        self.offset = 0
        self.file.write_text("+0\n")
        self.env = {
            "LD_PRELOAD": library(),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def step(self, seconds: int) -> None:
        """Move the wall clock by ``seconds`` (back when negative), at once."""
        self.offset += seconds
        # Written aside and renamed: a reader never sees a half-written offset.
        aside = self.file.with_suffix(".new")
        aside.write_text(f"{self.offset:+d}\n")
        aside.replace(self.file)
