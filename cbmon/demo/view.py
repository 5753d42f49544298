"""The demo's live view: the indicators, their states and the alerts, in a few lines.

On a terminal a small panel is redrawn in place, cut or wrapped to the terminal's width and
coloured (unless ``NO_COLOR``); elsewhere (a pipe, a log file, CI) one status line is printed
every few seconds. Alert events are printed as lines of their own either way. Rendering is
pure: :class:`Snapshot` and a width in, lines out.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from cbmon import present
from cbmon.demo.receivers import AlertEvent
from cbmon.domain import Level
from cbmon.durations import format_duration
from cbmon.slo.judge import OVERALL, Indicator
from cbmon.slo.objectives import DEFAULT, Baseline

_ALL = "(all)"
_EVENT_TYPE_WIDTH = 20  # longer event types are cut in the panel; the summary has them whole
_INDENT = "    "  # continuation lines of a wrapped line


@dataclass(frozen=True)
class CallbackTotals:
    """Callbacks since the start, and the queue by state now (None: no lease columns)."""

    delivered: int = 0
    dead: int = 0
    duplicates: int = 0
    states: Mapping[str, int] | None = None


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
    window: float = 30.0  # seconds the indicators are judged over
    baseline: Baseline = DEFAULT
    callbacks: CallbackTotals | None = None  # None where the tables do not tell callbacks


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _find(indicators: Sequence[Indicator], slo: str, event_type: str) -> Indicator | None:
    for indicator in indicators:
        if indicator.slo == slo and indicator.event_type == event_type:
            return indicator
    return None


def _value(indicator: Indicator | None) -> float | None:
    return None if indicator is None else indicator.value


class _Words:
    """How values look in this view: boundary-honest numbers, states coloured or not."""

    def __init__(self, baseline: Baseline, colour: bool) -> None:
        self.baseline = baseline
        self.colour = colour

    def rate(self, indicator: Indicator | None) -> str:
        return present.success_rate(_value(indicator), self.baseline)

    # Milliseconds written tight ("212ms"): the panel's columns and the log line are narrow.
    def avg(self, indicator: Indicator | None) -> str:
        return present.avg_latency(_value(indicator), self.baseline).replace(" ", "")

    def millis(self, indicator: Indicator | None) -> str:
        return present.millis(_value(indicator)).replace(" ", "")

    def state(self, indicator: Indicator | None) -> str:
        if indicator is None:
            return present.MISSING
        return self.level(indicator.state)

    def level(self, level: Level, text: str | None = None) -> str:
        word = present.level_word(level) if text is None else text
        return present.colour(word, level, self.colour) if level is not Level.UNKNOWN else word


def _elapsed(snapshot: Snapshot) -> str:
    total = f"/{clock(snapshot.duration)}" if snapshot.duration is not None else ""
    return f"{clock(snapshot.elapsed)}{total}"


def _totals(snapshot: Snapshot, event_type: str) -> tuple[int, int]:
    if event_type:
        return snapshot.calls.get(event_type, (0, 0))
    return (
        sum(a for a, _ in snapshot.calls.values()),
        sum(f for _, f in snapshot.calls.values()),
    )


def status_line(snapshot: Snapshot) -> str:
    """One line for logs and pipes: the overall indicators and the alert counts."""
    ind, words = snapshot.indicators, _Words(snapshot.baseline, colour=False)
    rate, avg = _find(ind, "success_rate", OVERALL), _find(ind, "avg_latency", OVERALL)
    p95, backlog = _find(ind, "p95_latency", OVERALL), _find(ind, "backlog", OVERALL)
    attempts, failures = _totals(snapshot, OVERALL)
    db = "" if snapshot.database_up else " | database DOWN"
    told = snapshot.callbacks
    if told is not None:
        db = (
            f" | callbacks delivered {told.delivered} dead {told.dead}"
            f" duplicates {told.duplicates}{db}"
        )
    return (
        f"[{_elapsed(snapshot)} {snapshot.phase}] calls {attempts} failed {failures}"
        f" | success {words.rate(rate)} {words.state(rate)}"
        f" | avg {words.avg(avg)} {words.state(avg)} | p95 {words.millis(p95)}"
        f" | backlog {snapshot.backlog} {words.state(backlog)}"
        f" | alerts fired {snapshot.fired} resolved {snapshot.resolved}{db}"
    )


_HEADERS = ("event type", "calls", "failed", "success", "", "avg", "", "p95")
# Columns wide enough for any value they hold, so a redraw never shifts them.
_WIDTHS = (13, 6, 6, 7, 8, 6, 8, 6)


def panel(
    snapshot: Snapshot, width: int = 79, *, colour: bool = False, ellipsis: str = present.ELLIPSIS
) -> list[str]:
    """The terminal panel: one row per event type, then the queue and the alerts; no line is
    wider than ``width`` columns (cut with an ellipsis, or wrapped between words)."""
    ind, words = snapshot.indicators, _Words(snapshot.baseline, colour)
    rows = []
    for event_type in ["", *sorted(t for t in snapshot.calls if t)]:
        rate = _find(ind, "success_rate", event_type)
        avg = _find(ind, "avg_latency", event_type)
        attempts, failures = _totals(snapshot, event_type)
        name = present.fit(event_type, _EVENT_TYPE_WIDTH, ellipsis) if event_type else _ALL
        rows.append(
            [
                name,
                str(attempts),
                str(failures),
                words.rate(rate),
                words.state(rate),
                words.avg(avg),
                words.state(avg),
                words.millis(_find(ind, "p95_latency", event_type)),
            ]
        )
    window = format_duration(snapshot.window)
    backlog = _find(ind, "backlog", OVERALL)
    db = "" if snapshot.database_up else "   " + words.level(Level.CRITICAL, "database DOWN")
    lines = [
        f"{_elapsed(snapshot)}  scenario {snapshot.scenario}, phase {snapshot.phase}: "
        f"{snapshot.phase_text}",
        *("  " + line for line in present.table(_HEADERS, rows, (0, 4, 6), _WIDTHS)),
        f"  calls, failed: since the start; success, avg, p95 (estimated): last {window}",
        *_callback_lines(snapshot, words),
        f"  queue backlog {snapshot.backlog} {words.state(backlog)}{db}",
    ]
    fitted = [present.fit(line, width, ellipsis) for line in lines]
    alerts = (
        f"  alerts: {snapshot.fired} fired, {snapshot.resolved} resolved; "
        f"firing now: {_firing(snapshot.firing)}"
    )
    return fitted + present.wrap(alerts, width, indent=_INDENT, ellipsis=ellipsis)


# The queue's states as the panel names them (QUEUE_STATES order).
_STATE_WORDS = {
    "due": "due",
    "retry_scheduled": "retrying",
    "in_flight": "in flight",
    "stuck": "stuck",
    "dead": "dead",
}


def _callback_lines(snapshot: Snapshot, words: _Words) -> list[str]:
    """Callbacks, not attempts: what became of them since the start, their indicators over
    the window, and the queue by state."""
    totals = snapshot.callbacks
    if totals is None:
        return []
    ind = snapshot.indicators
    rate = _find(ind, "callback_success_rate", OVERALL)
    dead = _find(ind, "dead_letters", OVERALL)
    end = _find(ind, "end_to_end_p95", OVERALL)
    limits = snapshot.baseline.limit("callback_success_rate")
    delivered = present.percent(_value(rate), 2, present.boundaries(limits))
    window = format_duration(snapshot.window)
    # In milliseconds, as every latency here, in the alerts and on the status page, never
    # seeming to sit on a threshold it is not on.
    shown = present.slo_value(
        "end_to_end_p95", _value(end), snapshot.baseline.limit("end_to_end_p95")
    ).replace(" ", "")
    lines = [
        f"  callbacks since the start: delivered {totals.delivered}, dead {totals.dead}, "
        f"duplicates {totals.duplicates}",
        f"  last {window}: delivered {delivered} {words.state(rate)}, "
        f"dead {present.count(_value(dead))} {words.state(dead)}, "
        f"e2e p95 {shown} {words.state(end)}",
    ]
    if totals.states is not None:
        states = ", ".join(
            f"{totals.states.get(name, 0)} {word}" for name, word in _STATE_WORDS.items()
        )
        lines.append(f"  queue by state: {states}")
    return lines


def _firing(keys: Sequence[str]) -> str:
    """``alertname/severity`` with a count: the same alert for every event type is one entry."""
    counts = Counter(key.split("[", 1)[0] for key in keys)
    return ", ".join(k if n == 1 else f"{k} x{n}" for k, n in sorted(counts.items())) or "none"


def alert_word(event: AlertEvent) -> str:
    """FIRING, RESOLVED, or ESCALATED / EASED when one alert changed severity."""
    if event.previous:
        rank = {"warning": 1, "critical": 2}
        worse = rank.get(event.severity, 0) > rank.get(event.previous, 0)
        return "ESCALATED" if worse else "EASED"
    return event.status.upper()


def alert_line(event: AlertEvent, elapsed: float) -> str:
    scope = f" [{event.event_type}]" if event.event_type else ""
    severity = f"{event.previous} -> {event.severity}" if event.previous else event.severity
    summary = event.summary.removeprefix("Resolved: ")  # the line says RESOLVED already
    return (
        f"[{clock(elapsed)}] alert {alert_word(event)} {event.alertname}"
        f" ({severity}){scope}: {summary}"
    )


def _alert_level(event: AlertEvent) -> Level:
    if event.status == "resolved":
        return Level.OK
    return Level.CRITICAL if event.severity == "critical" else Level.WARNING


def terminal_width() -> int:
    return shutil.get_terminal_size().columns


class LiveView:
    """Writes the view to ``out``: a redrawn panel on a terminal, status lines elsewhere.

    Lines are kept one column short of the terminal: a line filling the last column leaves
    some terminals' cursor in a pending-wrap state, and the redraw would land one line off.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        every: float = 5.0,
        colour: bool | None = None,
        width: Callable[[], int] = terminal_width,
    ) -> None:
        self.out = out
        self.live = live
        self.every = every
        self.colour = present.use_colour(out) if colour is None else colour
        self._width = width
        self._ellipsis = present.ellipsis_for(out)
        self._drawn: list[int] = []  # columns of each panel line on screen, erased next time
        self._last_line = float("-inf")

    def columns(self) -> int:
        """The widest line this view writes now: the terminal's width, less one."""
        return max(40, self._width()) - 1

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        if self.live:
            self._erase()
            lines = panel(snapshot, self.columns(), colour=self.colour, ellipsis=self._ellipsis)
            self.out.write("\n".join(lines) + "\n")
            self._drawn = [present.visible_len(line) for line in lines]
        elif force or snapshot.elapsed - self._last_line >= self.every:
            self.out.write(status_line(snapshot) + "\n")
            self._last_line = snapshot.elapsed
        self.out.flush()

    def note(self, text: str, indent: str = _INDENT) -> None:
        """A line that stays (a phase change, a header line), printed above the panel; on a
        terminal it is wrapped between words to the width, continuing after ``indent``."""
        self._write(self._lines(text, indent))

    def alert(self, event: AlertEvent, elapsed: float) -> None:
        """An alert as it arrives, its FIRING / RESOLVED word in the alert's colour."""
        lines = self._lines(alert_line(event, elapsed), _INDENT)
        word = alert_word(event)
        lines[0] = lines[0].replace(
            f" {word} ", f" {present.colour(word, _alert_level(event), self.colour)} ", 1
        )
        self._write(lines)

    def close(self) -> None:
        """Leave the last panel on screen; later output starts below it."""
        self._drawn = []

    def _lines(self, text: str, indent: str) -> list[str]:
        if not self.live:
            return [text]  # a log keeps one event on one line, for grep
        return present.wrap(text, self.columns(), indent=indent, ellipsis=self._ellipsis)

    def _write(self, lines: list[str]) -> None:
        self._erase()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def _erase(self) -> None:
        if not (self.live and self._drawn):
            return
        # A terminal narrowed since the draw rewraps long lines: count the rows they take now.
        width = max(1, self._width())
        rows = sum(max(1, math.ceil(columns / width)) for columns in self._drawn)
        # up to the panel's first line, then clear to the end of the screen
        self.out.write(f"\x1b[{rows}F\x1b[J")
        self._drawn = []
