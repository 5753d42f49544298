"""``cbmon demo --listen``: a free port is found, a taken one costs one line and nothing else."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cbmon.demo.run import reserve_listen
from cbmon.errors import ConfigError
from tests.support.cli import cbmon


@contextmanager
def _listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_reserve_listen_picks_a_free_port_for_port_zero() -> None:
    host, _, port = reserve_listen("127.0.0.1:0").rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0


def test_a_taken_port_is_one_line_and_exit_2_before_anything_starts(tmp_path: Path) -> None:
    with _listening() as port:
        with pytest.raises(ConfigError, match="address already in use"):
            reserve_listen(f"127.0.0.1:{port}")
        result = cbmon("demo", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "pg"))
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"cbmon: --listen 127.0.0.1:{port}: address already in use; "
        "pass --listen 127.0.0.1:0 for a free port"
    ]
    assert not (tmp_path / "pg").exists()  # no database was started for nothing
