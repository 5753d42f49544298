"""Invalid durations are said in the log once, then at most every five minutes with the count
since, the value shown short; and each poll error has its reason."""

from __future__ import annotations

import logging

import pytest

from cbmon.db.catalog import shortened
from cbmon.ingest.poller import InvalidDurations
from cbmon.ingest.store import Store
from tests.support.sidecar import ManualClock


def rows(invalid: int, sample: str | None) -> list[dict[str, object]]:
    return [{"present": 10 + invalid, "observed": 10, "invalid_sample": sample}]


def test_said_once_then_every_five_minutes_with_the_count_since(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    told = InvalidDurations("app.logs.took", clock)
    with caplog.at_level(logging.WARNING, logger="cbmon.ingest.poller"):
        told.found(rows(0, None), 3600000, "ms")
        assert caplog.records == []
        told.found(rows(2, "3:n/a"), 3600000, "ms")
        for _ in range(10):
            clock.advance(5)
            told.found(rows(1, "2:-5"), 3600000, "ms")
        clock.advance(300)
        told.found([], 3600000, "ms")  # an idle poll says what was left
        clock.advance(300)
        told.found([], 3600000, "ms")  # nothing new: nothing said
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("2 rows of app.logs.took hold a duration cbmon cannot use, such ")
    assert "'n/a'" in lines[0]
    assert lines[1].startswith("10 rows of app.logs.took")
    assert "'-5'" in lines[1]
    assert "from 0 to 3600000ms" in lines[0]


def test_a_long_value_is_its_start_and_its_length() -> None:
    assert shortened("401:100000000000000000000000") == (
        "'100000000000000000000000'... (401 characters)"
    )
    assert shortened("3:n/a") == "'n/a'"
    assert shortened("0:") == "''"


def test_only_a_database_that_does_not_answer_is_down() -> None:
    store = Store(10, clock=ManualClock())
    store.poll_failed("permission")
    assert store.database_up
    store.poll_failed("connection")
    assert not store.database_up
    store.poll_failed("timeout")
    view = store.view()
    assert view.database_up
    assert view.poll_errors["permission"] == 1
    assert view.poll_errors["connection"] == 1
    assert view.poll_errors_total == 3
