"""Two clocks, each for what it is good at.

The wall clock (``time.time``) says what time it is, so it dates what people and receivers
read: an alert's ``startsAt`` and ``endsAt``, a webhook's timestamp, the status page, the last
poll's timestamp. It also steps: NTP corrects it, a VM resumes, someone fixes a wrong clock.
The monotonic clock never steps, so every decision that measures a span runs on it: the SLO
window, ``for``, repeat intervals, the resolved retention, how long an alert has had no data,
the Alertmanager resends, readiness. A step of the wall clock changes no decision; it is
logged once, with its size. Row times are the database's, whatever either clock says.

:meth:`SystemClock.monotonic` is shifted to read like the wall clock did at start, so the times
decisions keep look like unix seconds; only the wall clock's own readings are shown to anyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from cbmon.durations import format_duration

log = logging.getLogger(__name__)

# How far the wall clock may move against the monotonic one between two looks before it is
# a step: NTP slews by at most half a millisecond a second, and steps only from 128 ms up.
STEP = 1.0


class Clock(Protocol):
    """What cbmon asks of a clock; tests pass one they move by hand."""

    def monotonic(self) -> float:
        """Seconds on a line that never steps: for every span that decides something."""
        ...

    def wall(self) -> float:
        """Unix seconds as the system says now: for every time shown or sent."""
        ...


class SystemClock:
    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._shift = wall() - monotonic()  # fixed: the monotonic line reads like unix time
        self._offset = self._shift  # the wall clock against the monotonic one, at the last look

    def monotonic(self) -> float:
        return self._monotonic() + self._shift

    def wall(self) -> float:
        return self._wall()

    def check(self) -> float:
        """How far the wall clock stepped since the last check (seconds, negative when back;
        0 when it did not), said in one line when it did."""
        offset = self._wall() - self._monotonic()
        step, self._offset = offset - self._offset, offset
        if abs(step) < STEP:
            return 0.0
        log.warning(
            "the wall clock stepped %s by %s; windows, `for` and every other wait run on the "
            "monotonic clock and are unchanged; times shown and sent from now on follow the "
            "new wall clock",
            "forward" if step > 0 else "back",
            format_duration(round(abs(step))),
        )
        return step
