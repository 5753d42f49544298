"""``cbmon report`` as a process on a terminal: progress goes to a real TTY, never to a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PgSchema
from tests.support.report_data import PERIOD, load, write_config

pytestmark = pytest.mark.slow

CBMON = str(Path(sys.executable).with_name("cbmon"))


def test_progress_only_on_a_terminal(pg: PgSchema, tmp_path: Path) -> None:
    load(pg)
    config = write_config(pg, tmp_path / "cbmon.yml")
    args = [CBMON, "report", "--dsn", pg.dsn, "--config", str(config), *PERIOD]
    master, slave = pty.openpty()
    try:
        process = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: everything has been read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert process.returncode == 0
    assert b"aggregating " in seen
    assert b".callback_logs" in seen
    assert b"aggregating" not in process.stdout

    piped = subprocess.run(args, capture_output=True, timeout=60)
    assert piped.returncode == 0
    assert piped.stderr == b""
