"""A step of the wall clock changes no decision: windows, `for`, repeats, no data, readiness
and the state file run on the clock that never steps; what is sent and shown follows the wall
clock; the step is said once, with its size."""

from __future__ import annotations

import logging

import pytest

from cbmon.clock import SystemClock
from cbmon.config import load_config
from cbmon.domain import Figures
from cbmon.ingest.store import Store
from cbmon.sidecar.evaluator import Evaluator
from cbmon.slo.notification import Notification
from tests.support.sidecar import ManualClock, callbacks, feed, poll_result

HOUR = 3600.0


class Sidecar:
    """A store and an evaluator fed poll by poll, as ``cbmon serve`` feeds them."""

    def __init__(self, clock: ManualClock | None = None, for_: str = "30s") -> None:
        settings = {"window": "1m", "for": for_, "min_events": 10}
        self.config = load_config(overrides={"slo": settings}, environ={})
        self.clock = clock or ManualClock()
        self.store = Store(self.config.file.max_event_types, clock=self.clock)
        self.evaluator = Evaluator(self.config, clock=self.clock)

    def poll(self, figures: Figures, seconds: float = 5.0) -> list[Notification]:
        """``seconds`` pass, then a poll finds ``figures`` (the database's clock is right)."""
        self.clock.advance(seconds)
        result = poll_result({"pay": figures}, db_now=self.clock.now)
        return self.evaluator.observe(result, feed(self.store, result))

    def statuses(self, notes: list[Notification]) -> list[str]:
        return [alert.status for note in pay(notes) for alert in note.alerts]


def pay(notes: list[Notification]) -> list[Notification]:
    """The notifications about event type pay (each comes with one over all event types)."""
    return [note for note in notes if note.group.get("event_type") == "pay"]


def bad() -> Figures:
    return callbacks([0.04] * 90, failures=10)


def good() -> Figures:
    return callbacks([0.04] * 500)


def test_an_alert_pending_when_the_clock_steps_back_fires_on_time() -> None:
    side = Sidecar()
    assert side.poll(bad()) == []  # pending: `for` is 30s
    side.clock.step(-HOUR)
    side.poll(bad(), seconds=25)
    [fired] = pay(side.poll(bad(), seconds=5))  # 30s after it began, as nothing had happened
    [alert] = fired.alerts
    # What receivers read is dated by the wall clock as it reads now.
    assert alert.starts_at == side.clock.now - HOUR


@pytest.mark.parametrize("step", [HOUR, -HOUR])
def test_a_window_never_freezes_whichever_way_the_clock_steps(step: float) -> None:
    side = Sidecar(for_="0s")
    assert "firing" in side.statuses(side.poll(bad()))
    side.clock.step(step)
    # Stepped away: the breach is still in the window, so nothing resolves for lack of data.
    assert side.poll(bad(), seconds=1) == []
    assert [active.no_data_since for active in side.evaluator.tracker.active()] == [None, None]
    side.clock.step(-step)
    notes = [note for _ in range(13) for note in side.poll(good())]  # one window of health
    assert "resolved" in side.statuses(notes)
    assert side.evaluator.tracker.firing_counts() == {}


def test_repeats_and_no_data_are_timed_by_the_clock_that_never_steps() -> None:
    side = Sidecar(for_="0s")
    side.evaluator.tracker.repeat_interval = 600.0
    side.poll(bad())
    side.clock.step(2 * HOUR)  # forward: no repeat is due for it
    assert side.poll(bad(), seconds=1) == []
    side.clock.step(-3 * HOUR)
    [repeat] = pay([n for _ in range(120) for n in side.poll(bad())])  # 600s later, once
    assert repeat.repeat == 1


def test_the_queue_age_and_readiness_ignore_a_step() -> None:
    clock = ManualClock()
    store = Store(10, clock=clock)
    feed(store, poll_result(backlog=1, oldest_created=clock.now - 60, db_now=clock.now))
    clock.advance(5)
    clock.step(HOUR)
    assert store.oldest_age_seconds() == 65
    assert store.seconds_since_poll() == 5
    # The exported timestamp of the last poll is a wall time, as every timestamp is.
    assert store.view().last_poll_timestamp == clock.now - 5


def test_the_saved_state_is_read_back_onto_a_new_process_monotonic_line() -> None:
    """The monotonic line starts afresh with each process: saved times are wall times."""
    side = Sidecar(for_="0s")
    side.evaluator.tracker.repeat_interval = 600.0
    side.poll(bad())
    saved = side.evaluator.snapshot()
    # A new process, 100s later by the wall clock, whose monotonic line reads otherwise.
    later = ManualClock(side.clock.now + 100 - 50_000)
    later.step(50_000)
    restarted = Sidecar(later, for_="0s")
    restarted.evaluator.tracker.repeat_interval = 600.0
    assert restarted.evaluator.restore(saved) == 2  # overall and pay
    assert restarted.evaluator.tracker.active()[0].alert.starts_at == side.clock.now
    # Due 600s after it was sent, that is 500s into the new process: not sooner, not later.
    assert [n for _ in range(99) for n in restarted.poll(bad())] == []
    [repeat] = pay(restarted.poll(bad()))
    assert repeat.repeat == 1


class Readings:
    """Wall and monotonic readings the test sets."""

    def __init__(self) -> None:
        self.wall, self.monotonic = 1_700_000_000.0, 100.0


def test_a_step_is_said_once_with_its_size(caplog: pytest.LogCaptureFixture) -> None:
    now = Readings()
    clock = SystemClock(wall=lambda: now.wall, monotonic=lambda: now.monotonic)
    assert clock.monotonic() == now.wall  # reads like the wall clock did at start
    caplog.set_level(logging.INFO, logger="cbmon.clock")
    now.wall, now.monotonic = now.wall + 5.0005, now.monotonic + 5  # NTP slewing: no step
    assert clock.check() == 0.0
    now.wall -= HOUR
    assert clock.check() == pytest.approx(-HOUR)
    assert clock.check() == 0.0  # said once
    now.wall += 90.4
    assert clock.check() == pytest.approx(90.4)
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "the wall clock stepped back by 1h",
        "the wall clock stepped forward by 1m30s",
    ]
    assert clock.monotonic() == 1_700_000_005.0  # the decisions' line never moved
