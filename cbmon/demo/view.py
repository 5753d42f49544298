"""The demo's live view: the indicators, their states and the alerts, in a few lines.

On a terminal a small panel is redrawn in place; elsewhere (a pipe, a log file, CI) one status
line is printed every few seconds. Alert events are printed as lines of their own either way.
Rendering is pure: :class:`Snapshot` in, text out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from cbmon import present
from cbmon.demo.receivers import AlertEvent
from cbmon.slo.judge import OVERALL, Indicator

_ALL = "(all)"


@dataclass(frozen=True)
class Snapshot:
    elapsed: float
    duration: float | None
    scenario: str
    phase: str
    phase_text: str
    indicators: Sequence[Indicator]
    calls: dict[str, tuple[int, int]]  # event type -> (attempts, failures) since the start
    backlog: int
    database_up: bool
    fired: int
    resolved: int
    firing: Sequence[str]  # "alertname/severity" of the alerts firing now


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _find(indicators: Sequence[Indicator], slo: str, event_type: str) -> Indicator | None:
    for indicator in indicators:
        if indicator.slo == slo and indicator.event_type == event_type:
            return indicator
    return None


def _percent(indicator: Indicator | None) -> str:
    return present.percent(None if indicator is None else indicator.value)


def _ms(indicator: Indicator | None) -> str:
    return present.millis(None if indicator is None else indicator.value).replace(" ", "")


def _state(indicator: Indicator | None) -> str:
    return present.MISSING if indicator is None else present.level_word(indicator.state)


def _elapsed(snapshot: Snapshot) -> str:
    total = f"/{clock(snapshot.duration)}" if snapshot.duration is not None else ""
    return f"{clock(snapshot.elapsed)}{total}"


def status_line(snapshot: Snapshot) -> str:
    """One line for logs and pipes: the overall indicators and the alert counts."""
    ind = snapshot.indicators
    rate, avg = _find(ind, "success_rate", OVERALL), _find(ind, "avg_latency", OVERALL)
    p95, backlog = _find(ind, "p95_latency", OVERALL), _find(ind, "backlog", OVERALL)
    attempts = sum(a for a, _ in snapshot.calls.values())
    failures = sum(f for _, f in snapshot.calls.values())
    db = "" if snapshot.database_up else " | database DOWN"
    return (
        f"[{_elapsed(snapshot)} {snapshot.phase}] calls {attempts} failed {failures}"
        f" | success {_percent(rate)} {_state(rate)}"
        f" | avg {_ms(avg)} {_state(avg)} | p95 {_ms(p95)}"
        f" | backlog {snapshot.backlog} {_state(backlog)}"
        f" | alerts fired {snapshot.fired} resolved {snapshot.resolved}{db}"
    )


def panel(snapshot: Snapshot) -> list[str]:
    """The terminal panel: one row per event type, then the queue and the alerts."""
    ind = snapshot.indicators
    lines = [
        f"{_elapsed(snapshot)}  scenario {snapshot.scenario}, phase {snapshot.phase}:"
        f" {snapshot.phase_text}",
        f"  {'event type':<15}{'calls':>7}{'failed':>8}  {'success (window)':<22}"
        f"{'avg latency':<20}{'p95':>7}",
    ]
    types = sorted(t for t in snapshot.calls if t)
    for event_type in ["", *types]:
        rate = _find(ind, "success_rate", event_type)
        avg = _find(ind, "avg_latency", event_type)
        p95 = _find(ind, "p95_latency", event_type)
        if event_type:
            attempts, failures = snapshot.calls.get(event_type, (0, 0))
        else:
            attempts = sum(a for a, _ in snapshot.calls.values())
            failures = sum(f for _, f in snapshot.calls.values())
        lines.append(
            f"  {event_type or _ALL:<15}{attempts:>7}{failures:>8}"
            f"  {_percent(rate):>8} {_state(rate):<13}{_ms(avg):>7} {_state(avg):<12}"
            f"{_ms(p95):>7}"
        )
    backlog = _find(ind, "backlog", OVERALL)
    firing = _firing(snapshot.firing)
    db = "" if snapshot.database_up else "   database DOWN"
    lines.append(f"  queue backlog {snapshot.backlog} {_state(backlog)}{db}")
    lines.append(
        f"  alerts: {snapshot.fired} fired, {snapshot.resolved} resolved; firing now: {firing}"
    )
    return lines


def _firing(keys: Sequence[str]) -> str:
    """``alertname/severity`` with a count: the same alert for every event type is one entry."""
    counts = Counter(key.split("[", 1)[0] for key in keys)
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in sorted(counts.items())) or "none"


def alert_line(event: AlertEvent, elapsed: float) -> str:
    scope = f" [{event.event_type}]" if event.event_type else ""
    return (
        f"[{clock(elapsed)}] alert {event.status.upper()} {event.alertname}"
        f" ({event.severity}){scope}: {event.summary}"
    )


class LiveView:
    """Writes the view to ``out``: a redrawn panel on a terminal, status lines elsewhere."""

    def __init__(self, out: TextIO, *, live: bool, every: float = 5.0) -> None:
        self.out = out
        self.live = live
        self.every = every
        self._drawn = 0  # panel lines on screen, erased before the next draw
        self._last_line = float("-inf")

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if self.live:
            self._erase()
            lines = panel(snapshot)
            self.out.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        elif force or snapshot.elapsed - self._last_line >= self.every:
            self.out.write(status_line(snapshot) + "\n")
            self._last_line = snapshot.elapsed
        self.out.flush()

    def note(self, text: str) -> None:
        """A line that stays (an alert, a phase change), printed above the panel."""
        self._erase()
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        """Leave the last panel on screen; later output starts below it."""
        self._drawn = 0

    def _erase(self) -> None:
        if self.live and self._drawn:
            # up to the panel's first line, then clear to the end of the screen
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
