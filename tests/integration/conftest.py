"""Fixtures of the integration layer."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _switch_interval() -> Iterator[None]:
    """:meth:`Service.run` shortens the interpreter's switch interval, process-wide: each test
    gets it back as it was."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
