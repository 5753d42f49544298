"""``--log-format json``: one JSON object per line on stderr, for log collectors, with every
secret masked as in text lines; ``text`` stays the default."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cbmon import secrets
from cbmon.cli import logs
from cbmon.sidecar import scope
from tests.support.cli import cbmon

PASSWORD = "s3cret-Pa55"


@contextmanager
def command_logging(level: str, log_format: str) -> Iterator[io.StringIO]:
    """The command's logging, set up on a bare root logger as in a fresh interpreter (pytest's
    own handlers put aside meanwhile), writing here instead of stderr."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stderr", stream)
            logs.configure(level, log_format)
        yield stream
    finally:
        root.handlers = saved
        root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    with command_logging("info", "json") as stderr:
        logging.getLogger("cbmon.sidecar").info("polled %d rows\nin one batch", 42)
        logging.getLogger("cbmon.sidecar").debug("not at info")
    (entry,) = _lines(stderr)
    assert list(entry) == ["time", "level", "logger", "msg"]
    assert (entry["level"], entry["logger"]) == ("INFO", "cbmon.sidecar")
    assert entry["msg"] == "polled 42 rows\nin one batch"  # a newline does not split a record
    assert entry["time"].endswith("Z")
    assert len(entry["time"]) == len("2026-01-02T03:04:05.678Z")


def test_secrets_are_masked_in_messages_and_tracebacks() -> None:
    secrets.remember(PASSWORD)
    log = logging.getLogger("cbmon.db")
    with command_logging("info", "json") as stderr:
        log.warning("cannot connect to %s", f"postgresql://cbmon:{PASSWORD}@db/app")
        try:
            raise RuntimeError(f"password={PASSWORD}")
        except RuntimeError:
            log.exception("poll failed")
    assert PASSWORD not in stderr.getvalue()
    first, second = _lines(stderr)
    assert first["msg"] == "cannot connect to postgresql://cbmon:***@db/app"
    assert second["msg"] == "poll failed"
    assert "RuntimeError: password=***" in second["exception"]


def test_text_lines_and_a_switch_to_json_after_the_command() -> None:
    with command_logging("info", "text") as stderr:
        logging.getLogger("cbmon").info("plain")
        logs.use_format("json")
        logging.getLogger("cbmon").info("structured")
    plain, structured = stderr.getvalue().splitlines()
    assert plain.endswith(" INFO cbmon: plain")
    assert json.loads(structured)["msg"] == "structured"


@pytest.mark.parametrize(
    "args",
    [
        ["--log-format", "json", "config", "check", "/nonexistent.yml"],
        ["config", "check", "/nonexistent.yml", "--log-format", "json"],
    ],
    ids=["before", "after"],
)
def test_the_reason_a_command_stops_is_a_json_record_too(args: list[str]) -> None:
    ran = cbmon(*args)
    assert ran.code == 2
    (line,) = ran.stderr.splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"]) == ("ERROR", "cbmon")
    assert entry["msg"] == "/nonexistent.yml: cannot read: No such file or directory"


def test_the_environment_chooses_the_format_and_a_bad_one_is_one_line() -> None:
    by_env = cbmon("config", "check", "/nonexistent.yml", env={"CBMON_LOG_FORMAT": "json"})
    assert json.loads(by_env.stderr)["level"] == "ERROR"
    bad = cbmon("--log-format", "xml", "config", "check", "/nonexistent.yml")
    assert bad.code == 2
    assert bad.stderr.splitlines() == [
        "cbmon: Invalid value for '--log-format': 'xml' is not one of 'text', 'json'. (see --help)"
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_fleets_lines_name_their_database(log_format: str) -> None:
    def poll_thread() -> None:
        scope.enter("orders-eu")
        logging.getLogger("cbmon.sidecar.service").warning("poll failed")

    with command_logging("info", log_format) as stream:
        thread = threading.Thread(target=poll_thread)
        thread.start()
        thread.join()
        logging.getLogger("cbmon.sidecar.fleet").info("serving")
    first, second = stream.getvalue().splitlines()
    if log_format == "json":
        assert json.loads(first)["database"] == "orders-eu"
        assert "database" not in json.loads(second)
    else:
        assert first.endswith("cbmon.sidecar.service: database orders-eu: poll failed")
        assert second.endswith("cbmon.sidecar.fleet: serving")
