"""A one-line progress indicator for long queries, shown only on an interactive terminal.

A query gives no progress of its own, so the line names the step and the time it has taken.
In a pipe or a file nothing is written: logs and captured output stay clean.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_FRAMES = "|/-\\"


class Progress:
    def __init__(self, stream: TextIO, *, enabled: bool | None = None, interval: float = 0.2):
        self._stream = stream
        self._enabled = stream.isatty() if enabled is None else enabled
        self._interval = interval

    @classmethod
    def silent(cls, stream: TextIO) -> Progress:
        return cls(stream, enabled=False)

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Show ``label`` with a spinner and elapsed seconds until the block ends."""
        if not self._enabled:
            yield
            return
        done = threading.Event()
        started = time.monotonic()
        ticker = threading.Thread(target=self._tick, args=(label, started, done), daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            self._stream.write("\r\033[K")
            self._stream.flush()

    def _tick(self, label: str, started: float, done: threading.Event) -> None:
        frame = 0
        while True:
            elapsed = time.monotonic() - started
            self._stream.write(f"\r\033[K{_FRAMES[frame % 4]} {label} ({elapsed:.1f}s)")
            self._stream.flush()
            frame += 1
            if done.wait(self._interval):
                return
