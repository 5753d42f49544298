"""``cbmon serve --log-format json`` as a log collector reads it: every line of the process,
from the first to ``stopped``, is one JSON object, and the DSN's password is in none."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from tests.conftest import PgSchema
from tests.support.processes import answers, free_port, running, serve_command, wait_for

pytestmark = pytest.mark.slow

PASSWORD = "json-l0g-Secret"


def test_every_line_of_serve_is_a_json_record_without_the_password(
    pg: PgSchema, tmp_path: Path
) -> None:
    dsn = conninfo.make_conninfo(pg.dsn, password=PASSWORD)  # trust: the password is unused
    with psycopg.connect(dsn):
        pass
    port = free_port()
    log = tmp_path / "serve.log"
    config = pg.write_config(tmp_path / "cbmon.yml")
    command = serve_command(dsn, config, port, "--log-format", "json", "--log-level", "debug")
    with running(command, log=log) as process:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    text = log.read_text(encoding="utf-8")
    assert PASSWORD not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert {"time", "level", "logger", "msg"} <= set(records[0])
    serving = next(r for r in records if r["msg"].startswith("serving http://"))
    assert serving["level"] == "INFO"
    assert records[-1]["msg"] == "stopped"
