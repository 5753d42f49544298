"""The state file: what cbmon saved comes back as it was; anything else in its place is moved
aside with one warning line naming it and what was wrong, and no content of the file, however
made, is a traceback then or later."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbmon.delivery import payload
from cbmon.delivery.alertmanager import postable
from cbmon.delivery.dispatcher import Dispatcher, Message, Outbox
from cbmon.delivery.statefile import StateFile, Unusable, parse
from cbmon.domain import Level
from cbmon.slo.judge import Indicator, judge_slo
from cbmon.slo.objectives import DEFAULT
from cbmon.slo.saved import restore, snapshot
from cbmon.slo.tracker import AlertTracker
from tests.support.baselines import baseline
from tests.support.sidecar import Leadership

T = DEFAULT
NOW = 1_700_000_000.0
HOOK = "http://127.0.0.1:9/hook"
ASIDE = re.compile(r"alerts\.json\.corrupt-\d{8}T\d{6}Z(-\d+)?")


def rate(value: float, event_type: str = "pay") -> Indicator:
    return Indicator("success_rate", event_type, value, judge_slo("success_rate", value, T), 1000)


def few(event_type: str) -> Indicator:
    return Indicator("success_rate", event_type, 1.0, Level.UNKNOWN, 3)


def tracker() -> AlertTracker:
    return AlertTracker(baseline(for_=0.0, window=300.0, min_events=20), 600.0)


def dispatcher() -> Dispatcher:
    return Dispatcher([Outbox(HOOK, None)], Leadership(True), "http://cbmon:9863")


def busy() -> dict[str, Any]:
    """What a cbmon with alerts firing, resolved, without data and waiting to be delivered
    saves."""
    alerts = tracker()
    notes = alerts.update([rate(0.95), rate(0.95, "ship"), rate(0.993, "refund")], now=NOW)
    alerts.update([rate(0.95), few("ship"), rate(0.999, "refund")], now=NOW + 10, wall=NOW + 12)
    outboxes = dispatcher()
    for note in notes:
        outboxes.outboxes[0].send(Message(note.id, payload.encode(note, "http://cbmon:9863")))
    return {"version": 1, "tracks": snapshot(alerts), "outboxes": outboxes.snapshot()}


def exercise(state: dict[str, Any]) -> None:
    """Everything cbmon does with a restored state, from the next evaluation to the next save."""
    alerts = tracker()
    restore(alerts, state.get("tracks", []), to_wall=5.0)
    for now in (NOW + 20, NOW + 2000):  # an evaluation, then one where repeats are due
        alerts.update([rate(0.95), rate(0.999, "refund"), few("ship")], now=now)
    for note in alerts.current(NOW + 2000, 900):
        payload.encode(note, "http://cbmon:9863")
    for alert in alerts.alerts(NOW + 2000, 900):
        postable(alert, NOW + 2000, 240.0, "http://cbmon:9863/", "cbmon")
    alerts.active(), alerts.firing_counts(), alerts.transitions()
    json.dumps(snapshot(alerts))
    outboxes = dispatcher()
    outboxes.restore(state.get("outboxes", {}))
    json.dumps(outboxes.snapshot())


def test_what_was_saved_comes_back_as_it_was(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "alerts.json")
    saved = busy()
    state.write({key: value for key, value in saved.items() if key != "version"})
    read = state.read()
    assert read == saved
    again = tracker()
    assert restore(again, read["tracks"]) == 2  # pay, and ship without data; refund resolved
    assert snapshot(again) == saved["tracks"]
    outboxes = dispatcher()
    assert outboxes.restore(read["outboxes"]) == 3
    assert outboxes.snapshot() == saved["outboxes"]


def valid_but(change: Any) -> bytes:
    saved = busy()
    change(saved)
    return json.dumps(saved).encode()


def firing_without_numbers(saved: dict[str, Any]) -> None:
    saved["tracks"][0]["last"] = None


CORRUPT = {
    "not UTF-8": (b'{"version": 1, "tracks": [\xff\xfe]}', "not UTF-8 text (byte 26)"),
    "cut short": (json.dumps(busy()).encode()[:-40], "not JSON (cut short): "),
    "empty": (b"", "not JSON (cut short): Expecting value (line 1 column 1)"),
    "not an object": (b"[1, 2, 3]", "not a state file: JSON an array, not an object"),
    "no version": (b'{"tracks": []}', "not a state file: no version"),
    "newer": (b'{"version": 2, "tracks": {}}', "written by another version of cbmon (format 2"),
    "version true": (b'{"version": true}', "written by another version of cbmon (format true"),
    "tracks not a list": (b'{"version": 1, "tracks": {}}', "tracks: Input should be a valid list"),
    "a track short of keys": (
        b'{"version": 1, "tracks": [{"slo": "success_rate"}]}',
        "tracks.0.event_type: Field required (and 8 more)",
    ),
    "unknown indicator": (
        valid_but(lambda s: s["tracks"][0].update(slo="p95_latency")),
        "tracks.0.slo: 'p95_latency' is no indicator that alerts",
    ),
    "level out of range": (
        valid_but(lambda s: s["tracks"][0].update(firing=5)),
        "tracks.0.firing: Input should be 1 or 2",
    ),
    "a time that is no time": (
        valid_but(lambda s: s["tracks"][0].update(started_at=1e400)),
        "tracks.0.started_at: Input should be a finite number",
    ),
    "a time as text": (
        valid_but(lambda s: s["tracks"][0].update(last_sent="yesterday")),
        "tracks.0.last_sent: Input should be a valid number",
    ),
    "firing without its numbers": (
        valid_but(firing_without_numbers),
        "tracks.0: Value error, firing, but without the indicator",
    ),
    "a lone surrogate": (
        b'{"version": 1, "outboxes": {"a": [{"id": "m", "body": "\\ud800"}]}}',
        "holds an escaped lone surrogate",
    ),
    "nested too deep": (b"[" * 100_000, "not a state file: JSON nested too deep"),
    "a number of 5000 digits": (b'{"version": 1' + b"0" * 5000 + b"}", "not JSON cbmon reads"),
}


@pytest.mark.parametrize(("content", "problem"), CORRUPT.values(), ids=CORRUPT.keys())
def test_an_unusable_file_is_moved_aside_and_named_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: str
) -> None:
    path = tmp_path / "alerts.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="cbmon.delivery.statefile"):
        assert StateFile(path).read() == {}
    [aside] = [p for p in tmp_path.iterdir() if p != path]
    assert ASIDE.fullmatch(aside.name)
    assert aside.read_bytes() == content  # kept for whoever looks into it
    assert not path.exists()
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith(f"alert state {path} is unusable (")
    assert problem.removeprefix("tracks.0: Value error, ") in message or problem in message
    assert f"moved to {aside};" in message
    assert "alerts still firing fire again" in message


def test_a_directory_in_its_place_is_moved_aside_and_saving_works_again(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    (path / "inside").mkdir(parents=True)
    state = StateFile(path)
    assert state.read() == {}
    state.write({"tracks": [], "outboxes": {}})
    assert state.read() == {"version": 1, "tracks": [], "outboxes": {}}
    [aside] = [p for p in tmp_path.iterdir() if p != path]
    assert (aside / "inside").is_dir()


def test_a_fifo_in_its_place_does_not_block_the_start(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    os.mkfifo(path)
    assert StateFile(path).read() == {}
    assert not path.exists()


def test_two_unusable_files_in_one_second_are_both_kept(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    for content in (b"one", b"two"):
        path.write_bytes(content)
        assert StateFile(path).read() == {}
    kept = sorted(p.read_bytes() for p in tmp_path.iterdir())
    assert kept == [b"one", b"two"]


def test_a_failing_save_is_said_once_then_that_it_works_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parent = tmp_path / "state"
    parent.write_text("a file where the directory should be")
    state = StateFile(parent / "alerts.json")
    with caplog.at_level(logging.INFO, logger="cbmon.delivery.statefile"):
        for _ in range(3):
            state.write({"tracks": []})
        parent.unlink()
        parent.mkdir()
        state.write({"tracks": []})
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"cannot save alert state to {parent / 'alerts.json'}",
        f"alert state saved to {parent / 'alerts.json'} again",
    ]


# -- no content is a traceback -------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def read_back(raw: bytes) -> dict[str, Any] | None:
    try:
        return parse(raw)
    except Unusable:
        return None


@given(st.binary(max_size=300))
def test_no_bytes_are_a_traceback(raw: bytes) -> None:
    saved = read_back(raw)
    if saved is not None:
        exercise(saved)


@given(JSON)
def test_no_json_value_is_a_traceback(value: Any) -> None:
    saved = read_back(json.dumps({"version": 1, "tracks": [value], "outboxes": value}).encode())
    if saved is not None:
        exercise(saved)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.data())
def test_no_change_to_a_saved_file_is_a_traceback(data: st.DataObject) -> None:
    """One value anywhere in a real file replaced by any JSON value: refused with a reason, or
    read and used without a traceback."""
    saved = busy()
    node: Any = saved
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or not child or data.draw(st.booleans()):
            node[key] = data.draw(JSON)
            break
        node = child
    restored = read_back(json.dumps(saved).encode())
    if restored is not None:
        exercise(restored)
