"""Polling on notifications: when the next poll is due (the interval, or the floor once woken,
however many notifications come), and the listener's answers to its connection: wakes for the
watched tables only, one wake per (re)connection, and a server without LISTEN said once."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from cbmon.ingest.wake import Listener, Pacer
from tests.support.sidecar import ManualClock


def pacer(interval: float = 5.0, floor: float = 0.2) -> tuple[Pacer, ManualClock]:
    clock = ManualClock(100.0)
    return Pacer(interval, floor, clock=clock), clock


def test_the_first_poll_is_due_at_once_then_every_interval() -> None:
    pace, clock = pacer()
    assert pace.due_in() == 0
    pace.started()
    assert pace.due_in() == 5.0
    clock.advance(4.5)
    assert pace.due_in() == pytest.approx(0.5)
    clock.advance(1)
    assert pace.due_in() == 0


def test_a_wake_makes_the_poll_due_at_the_floor_after_the_last_one() -> None:
    pace, clock = pacer()
    pace.started()
    clock.advance(0.05)
    pace.wake()
    assert pace.due_in() == pytest.approx(0.15)  # not sooner than 200ms after the last poll
    clock.advance(1)
    pace.wake()
    assert pace.due_in() == 0  # long after the last poll: at once


def test_a_burst_of_notifications_costs_one_poll_per_floor() -> None:
    """Notifications every millisecond for two seconds: polls follow, 200ms apart at least,
    never one per notification; then, without any, the interval again."""
    pace, clock = pacer()
    polls = [clock.now]
    pace.started()
    for _ in range(2000):
        clock.advance(0.001)
        pace.wake()
        if pace.due_in() == 0:
            polls.append(clock.now)
            pace.started()
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert len(polls) == 11  # 2s / 200ms, plus the first
    assert min(gaps) >= 0.2 - 1e-9
    assert pace.wakes == 2000
    clock.advance(0.001)
    assert pace.due_in() == pytest.approx(5.0 - 0.001)  # all served: the interval again


def test_wakes_before_a_poll_starts_are_served_by_it() -> None:
    pace, clock = pacer()
    pace.started()
    clock.advance(3)
    pace.wake()
    pace.wake()
    pace.started()  # the poll that reads what those notifications announced
    assert pace.due_in() == 5.0


def test_the_floor_never_exceeds_the_interval() -> None:
    pace, _ = pacer(interval=0.1, floor=1.0)
    pace.started()
    pace.wake()
    assert pace.due_in() == pytest.approx(0.1)


def test_wait_returns_when_due_and_false_once_stopped() -> None:
    pace, clock = pacer()
    assert pace.wait() is True  # due at once: no waiting
    pace.started()
    clock.advance(6)
    assert pace.wait() is True
    pace.started()
    pace.stop()
    assert pace.wait() is False  # stopped: returns without waiting out the interval


# -- the listener, against connections made by the test --------------------------------------
@dataclass(frozen=True)
class Note:
    channel: str
    payload: str
    pid: int = 1


class FakeConnection:
    """Answers LISTEN, the trigger query and the heartbeat; hands out notifications as told.
    ``listen_error`` is raised by LISTEN; after its notifications it stops the listener or
    breaks, as a connection whose server went away does."""

    def __init__(
        self,
        listener: list[Listener],
        notes: list[Note],
        *,
        listen_error: Exception | None = None,
        then: str = "stop",
        triggered: tuple[str, ...] = ("s.callback_logs", "s.callback_errors"),
    ) -> None:
        self.listener = listener
        self.notes = notes
        self.listen_error = listen_error
        self.then = then
        self.triggered = triggered
        self.statements: list[str] = []
        self.closed = False

    def execute(self, query: Any, params: Any = None) -> Any:
        text = " ".join(str(query).split())
        self.statements.append(text.split()[0])
        if text.startswith("LISTEN") and self.listen_error is not None:
            raise self.listen_error
        return self

    def fetchall(self) -> list[tuple[str]]:
        return [(name,) for name in self.triggered]

    def notifies(
        self, *, timeout: float | None = None, stop_after: int | None = None
    ) -> Iterator[Note]:
        """One notification per heartbeat, then the end the test chose."""
        if self.notes:
            yield self.notes.pop(0)
        elif self.then == "stop":
            self.listener[0].stop()
        else:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def close(self) -> None:
        self.closed = True


def run(connections: list[FakeConnection], holder: list[Listener], wakes: list[int]) -> Listener:
    """Run a listener in this thread over ``connections``, one per (re)connection."""
    opened = iter(connections)
    listener = Listener(
        lambda: next(opened),
        {"s.callback_logs", "s.callback_errors"},
        lambda: wakes.append(1),
        heartbeat=0.0,
        retry_base=0.0,  # reconnect at once: the test has no time to wait
    )
    holder.append(listener)
    listener._run()  # the thread's body, in this thread: it returns once stopped
    return listener


def test_notifications_wake_only_for_the_watched_tables() -> None:
    holder: list[Listener] = []
    wakes: list[int] = []
    notes = [
        Note("cbmon_wake", "s.callback_logs"),
        Note("cbmon_wake", "other.callback_logs"),  # another schema's replica's table
        Note("cbmon_wake", "s.callback_errors"),
    ]
    conn = FakeConnection(holder, notes)
    listener = run([conn], holder, wakes)
    assert len(wakes) == 1 + 2  # once on connecting, then one per watched notification
    assert conn.statements == [
        "LISTEN",
        "SELECT",  # the trigger check
        "UNLISTEN",  # a poll is due: no more news until it starts...
        "LISTEN",  # ...and it does (at once here)
        "SELECT",  # the heartbeat after the other table's notification
        "UNLISTEN",
        "LISTEN",
        "SELECT",
    ]
    assert conn.closed
    assert listener.mode == "notify"
    assert not listener.listening.is_set()


def test_a_lost_connection_is_opened_again_and_wakes_once_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder: list[Listener] = []
    wakes: list[int] = []
    first = FakeConnection(holder, [Note("cbmon_wake", "s.callback_logs")], then="break")
    second = FakeConnection(holder, [])
    with caplog.at_level(logging.INFO, logger="cbmon.ingest.wake"):
        run([first, second], holder, wakes)
    assert len(wakes) == 1 + 1 + 1  # first connection, its notification, second connection
    assert first.closed
    assert second.closed
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("not listening for new rows (server closed") for line in lines)


def test_a_server_without_listen_is_said_once_and_left_to_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder: list[Listener] = []
    wakes: list[int] = []
    refused = psycopg.errors.FeatureNotSupported("LISTEN statement is not yet supported.")
    conn = FakeConnection(holder, [], listen_error=refused)
    with caplog.at_level(logging.INFO, logger="cbmon.ingest.wake"):
        listener = run([conn], holder, wakes)  # returns: no retry loop
    assert listener.mode == "unsupported"
    assert wakes == []
    assert conn.closed
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        "the database does not support LISTEN (LISTEN statement is not yet supported.): polls "
        "stay on the poll interval"
    )


def test_a_table_without_the_trigger_is_named(caplog: pytest.LogCaptureFixture) -> None:
    holder: list[Listener] = []
    conn = FakeConnection(holder, [], triggered=("s.callback_errors",))
    with caplog.at_level(logging.INFO, logger="cbmon.ingest.wake"):
        listener = run([conn], holder, [])
    assert listener.mode == "no_trigger"
    assert [r.getMessage() for r in caplog.records] == [
        "no cbmon_wake trigger on s.callback_logs: new rows there are read at the next poll "
        "interval (cbmon schema apply --wake installs it)"
    ]


def test_a_poll_starts_only_once_listen_is_back() -> None:
    """Paused after a notification, the listener takes LISTEN up again when the poll loop
    asks, and the poll waits for it: no commit after the poll's snapshot goes unannounced."""
    holder: list[Listener] = []
    wakes: list[int] = []
    notified = threading.Event()

    def wake() -> None:
        wakes.append(1)
        if len(wakes) == 2:  # the connection's wake, then the notification's: paused now
            notified.set()

    conn = FakeConnection(holder, [Note("cbmon_wake", "s.callback_logs")])
    opened = iter([conn])
    listener = Listener(lambda: next(opened), {"s.callback_logs"}, wake, heartbeat=60.0)
    holder.append(listener)
    listener.before_poll()  # not paused: returns at once
    listener.start()
    assert notified.wait(10)
    listener.before_poll()  # without it the listener would wait its 60s heartbeat
    assert conn.statements[:4] == ["LISTEN", "SELECT", "UNLISTEN", "LISTEN"]
    listener.stop()
    listener.join(10)
    assert not listener.listening.is_set()


def test_a_poll_that_began_without_waiting_for_listen_is_followed_by_another() -> None:
    """A poll that passed before_poll just before the pause took its snapshot while nobody
    listened: once LISTEN is back, the listener wakes the loop once more."""
    holder: list[Listener] = []
    wakes: list[int] = []
    started = [0]

    def wake() -> None:
        wakes.append(1)
        if len(wakes) == 2:
            started[0] += 1  # the poll loop starts a poll now, without asking to resume

    conn = FakeConnection(holder, [Note("cbmon_wake", "s.callback_logs")])
    opened = iter([conn])
    listener = Listener(
        lambda: next(opened), {"s.callback_logs"}, wake, heartbeat=60.0, polls=lambda: started[0]
    )
    holder.append(listener)
    listener._run()
    assert len(wakes) == 3  # connecting, the notification, and the poll that missed the pause
    assert conn.statements == ["LISTEN", "SELECT", "UNLISTEN", "LISTEN", "SELECT"]
