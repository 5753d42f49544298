"""The demo's live view: the status line and the panel, from a snapshot of plain values."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest

from cbmon.demo.receivers import AlertEvent, changes
from cbmon.demo.view import (
    CallbackTotals,
    LiveView,
    Snapshot,
    alert_line,
    alert_word,
    panel,
    status_line,
)
from cbmon.domain import Level
from cbmon.present import plain, visible_len
from cbmon.slo.judge import OVERALL, Indicator


def _snapshot() -> Snapshot:
    indicators = [
        Indicator("success_rate", OVERALL, 0.9712, Level.CRITICAL, 400),
        Indicator("avg_latency", OVERALL, 0.212, Level.WARNING, 400),
        Indicator("p95_latency", OVERALL, 0.75, Level.UNKNOWN, 400),
        Indicator("success_rate", "order_created", 0.96, Level.CRITICAL, 200),
        Indicator("avg_latency", "order_created", 0.3, Level.WARNING, 200),
        Indicator("backlog", OVERALL, 12.0, Level.OK, 12),
    ]
    return Snapshot(
        elapsed=42.0,
        duration=120.0,
        scenario="degraded",
        phase="critical",
        phase_text="receivers answer in ~750 ms, 4.0% failing",
        indicators=indicators,
        calls={"order_created": (200, 8), "order_shipped": (150, 2)},
        backlog=12,
        database_up=True,
        fired=3,
        resolved=1,
        firing=[
            "CallbackLatencyHigh/warning",
            "CallbackLatencyHigh/warning[order_created]",
            "CallbackSuccessRateLow/critical[order_created]",
        ],
    )


def test_status_line_shows_indicators_states_and_alerts() -> None:
    assert status_line(_snapshot()) == (
        "[0:42/2:00 critical] calls 350 failed 10 | success 97.12% CRITICAL"
        " | avg 212ms WARNING | p95 750ms | backlog 12 ok | alerts fired 3 resolved 1"
    )


def test_panel_has_a_row_per_event_type_and_the_firing_alerts() -> None:
    lines = panel(_snapshot())
    assert lines[0].startswith("0:42/2:00  scenario degraded, phase critical")
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["(all)"][1:5] == ["350", "10", "97.12%", "CRITICAL"]
    assert rows["order_created"][1:7] == ["200", "8", "96.00%", "CRITICAL", "300ms", "WARNING"]
    assert rows["order_shipped"][1:4] == ["150", "2", "-"]  # no indicator yet: not judged
    assert "  queue backlog 12 ok" in lines
    # The alerts line is wider than the panel: wrapped between words (see the width tests).
    alerts = lines[lines.index("  queue backlog 12 ok") + 1 :]
    assert " ".join(line.strip() for line in alerts) == (
        "alerts: 3 fired, 1 resolved;"
        " firing now: CallbackLatencyHigh/warning x2, CallbackSuccessRateLow/critical"
    )


# -- fitting the terminal -----------------------------------------------------------------------

LONG_TYPE = "order_created_for_the_very_long_named_partner_integration"


def _busy() -> Snapshot:
    """A snapshot whose every line is as long as the demo makes them: three event types (one
    with a long name), a long phase text, database down, many alerts firing."""
    base = _snapshot()
    return replace(
        base,
        phase_text="receivers take ~3 s per request; 6,500 extra orders arrive spread over it",
        calls={**base.calls, LONG_TYPE: (123456, 99999)},
        backlog=123456,
        database_up=False,
        fired=12345,
        resolved=12340,
        firing=[
            "CallbackLatencyHigh/critical",
            "CallbackSuccessRateLow/critical[order_created]",
            "CallbackBacklogHigh/critical",
            f"CallbackSuccessRateLow/warning[{LONG_TYPE}]",
        ],
    )


@pytest.mark.parametrize("width", [79, 99, 159])
@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_no_panel_line_is_wider_than_the_terminal(width: int, colour: bool) -> None:
    lines = panel(_busy(), width, colour=colour)
    assert max(visible_len(line) for line in lines) <= width
    assert any(LONG_TYPE[:10] in line for line in lines)  # cut, not dropped
    assert all("\n" not in line for line in lines)


def test_panel_columns_stay_put_between_redraws() -> None:
    """States change from ok to CRITICAL; the numbers must not shift left and right."""
    calm = replace(_snapshot(), indicators=[])
    positions = []
    for snapshot in (calm, _snapshot()):
        header = panel(snapshot)[1]
        positions.append([header.index(word) for word in ("calls", "success", "avg", "p95")])
    assert positions[0] == positions[1]


def test_long_alert_lines_wrap_between_words_or_are_cut_with_an_ellipsis() -> None:
    out = io.StringIO()
    view = LiveView(out, live=True, colour=False, width=lambda: 80)
    summary = (
        f"Callback average latency 910 ms for event type {LONG_TYPE}{LONG_TYPE} (above 500 ms)"
    )
    event = AlertEvent("firing", "CallbackLatencyHigh", "critical", "order_created", summary)
    view.alert(event, 95.0)
    lines = out.getvalue().splitlines()
    assert len(lines) > 1
    assert max(len(line) for line in lines) <= 79
    words = alert_line(event, 95.0).split()
    for line in lines:
        for word in line.split():
            # every word whole, or a word longer than a line cut with an ellipsis
            assert word in words or (
                word.endswith("\u2026") and (LONG_TYPE * 2).startswith(word[:-1])
            )
    assert "910 ms" in out.getvalue()  # a number stays with its unit


def test_a_log_keeps_one_alert_on_one_line() -> None:
    out = io.StringIO()
    view = LiveView(out, live=False, width=lambda: 80)
    event = AlertEvent("resolved", "CallbackLatencyHigh", "warning", "", "x " * 80)
    view.alert(event, 5.0)
    assert out.getvalue().count("\n") == 1


class Terminal(io.StringIO):
    """What a terminal shows: it keeps the lines written and obeys the cursor moves the view
    sends (CSI n F: up n lines to the start; CSI J: erase below), one row per line."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.rows: list[str] = []
        self.cursor = 0

    def write(self, text: str) -> int:
        position = 0
        for match in re.finditer(r"\x1b\[(\d*)F|\x1b\[J|\n", text):
            self._put(text[position : match.start()])
            if match.group().endswith("F"):
                self.cursor = max(0, self.cursor - int(match.group(1) or 1))
            elif match.group() == "\x1b[J":
                del self.rows[self.cursor :]
            else:
                self.cursor += 1
            position = match.end()
        self._put(text[position:])
        return len(text)

    def _put(self, text: str) -> None:
        if not text:
            return
        assert visible_len(text) <= self.width, text
        while len(self.rows) <= self.cursor:
            self.rows.append("")
        self.rows[self.cursor] = text


def test_redraws_in_place_leaving_one_panel_under_the_notes() -> None:
    term = Terminal(80)
    view = LiveView(term, live=True, colour=True, width=lambda: 80)
    view.note("cbmon demo: scenario degraded, running for 2m")
    for second in range(30):
        snapshot = replace(_busy() if second % 2 else _snapshot(), elapsed=float(second))
        if second % 7 == 0:
            view.alert(AlertEvent("firing", "CallbackLatencyHigh", "warning", "", "x y"), second)
        view.update(snapshot)
    plain_rows = [plain(row) for row in term.rows]
    # exactly one panel: one clock line, one table header
    assert sum(bool(re.match(r"\d+:\d\d/2:00 ", row)) for row in plain_rows) == 1
    assert sum(row.startswith("  event type") for row in plain_rows) == 1
    assert plain_rows[0].startswith("cbmon demo")
    assert sum("alert FIRING" in row for row in plain_rows) == 5  # notes stay above
    assert plain_rows[-1].lstrip().startswith(("alerts:", "CallbackS", "CallbackB", "Callback"))
    assert plain_rows.index(next(r for r in plain_rows if r.startswith("0:29/2:00"))) > 5


def test_a_terminal_narrowed_since_the_draw_is_erased_by_its_rows() -> None:
    out = io.StringIO()
    widths = iter([120, 120, 60])
    view = LiveView(out, live=True, colour=False, width=lambda: next(widths))
    view.update(_snapshot())  # drawn at 119 columns
    drawn = out.getvalue().splitlines()
    view.note("later")  # the terminal is 60 wide now: long lines take two rows each
    up = re.search(r"\x1b\[(\d+)F", out.getvalue())
    assert up is not None
    assert int(up.group(1)) == sum(-(-len(line) // 60) or 1 for line in drawn)


def test_states_are_coloured_on_a_terminal_and_plain_elsewhere() -> None:
    coloured = "\n".join(panel(_snapshot(), colour=True))
    assert "\x1b[1;31mCRITICAL\x1b[0m" in coloured
    assert "\x1b[33mWARNING\x1b[0m" in coloured
    assert "\x1b[" not in "\n".join(panel(_snapshot(), colour=False))


def test_no_color_turns_the_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert LiveView(Tty(), live=True).colour is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert LiveView(Tty(), live=True).colour is False


def test_the_view_shows_rates_honestly_at_the_boundary() -> None:
    snapshot = replace(
        _snapshot(), indicators=[Indicator("success_rate", OVERALL, 598 / 601, Level.OK, 601)]
    )
    assert "99.501%" in status_line(snapshot)
    assert "99.501%" in panel(snapshot)[2]


# -- alert lines ----------------------------------------------------------------------------------


def test_an_escalation_is_one_line_saying_so() -> None:
    resolved = AlertEvent("resolved", "CallbackLatencyHigh", "warning", "", "Escalated to ...")
    firing = AlertEvent("firing", "CallbackLatencyHigh", "critical", "", "latency 910 ms")
    other = AlertEvent("firing", "CallbackSuccessRateLow", "warning", "", "rate 99.2%")
    (change, new) = changes([resolved, firing, other])
    assert alert_line(change, 61) == (
        "[1:01] alert ESCALATED CallbackLatencyHigh (warning -> critical): latency 910 ms"
    )
    assert alert_line(new, 61).startswith("[1:01] alert FIRING CallbackSuccessRateLow (warning)")
    eased = changes([replace(firing, status="resolved"), replace(resolved, status="firing")])
    assert alert_word(eased[0]) == "EASED"
    ended = AlertEvent("resolved", "CallbackLatencyHigh", "warning", "", "Resolved: latency 9 ms")
    assert alert_line(ended, 0).endswith(
        "alert RESOLVED CallbackLatencyHigh (warning): latency 9 ms"
    )


def _told() -> Snapshot:
    """A snapshot of a demo whose tables tell callbacks apart, in a bad moment."""
    indicators = [
        *_snapshot().indicators,
        Indicator("callback_success_rate", OVERALL, 0.9123, Level.CRITICAL, 300),
        Indicator("dead_letters", OVERALL, 27.0, Level.WARNING, 300),
        Indicator("end_to_end_p95", OVERALL, 7.25, Level.CRITICAL, 280),
    ]
    states = {"due": 12, "retry_scheduled": 30, "in_flight": 4, "stuck": 1, "dead": 27}
    return replace(
        _snapshot(),
        indicators=indicators,
        callbacks=CallbackTotals(delivered=1234, dead=27, duplicates=2, states=states),
    )


def test_panel_shows_callbacks_their_indicators_and_the_queue_by_state() -> None:
    lines = panel(_told())
    assert "  callbacks since the start: delivered 1234, dead 27, duplicates 2" in lines
    assert (
        "  last 30s: delivered 91.23% CRITICAL, dead 27 WARNING, e2e p95 7250ms CRITICAL" in lines
    )
    assert "  queue by state: 12 due, 30 retrying, 4 in flight, 1 stuck, 27 dead" in lines
    assert lines.index("  queue backlog 12 ok") > lines.index(
        "  queue by state: 12 due, 30 retrying, 4 in flight, 1 stuck, 27 dead"
    )
    assert "callbacks delivered 1234 dead 27 duplicates 2" in status_line(_told())
    # Without the lifecycle columns the panel is as before.
    assert not any("callbacks since" in line for line in panel(_snapshot()))


@pytest.mark.parametrize("width", [79, 99])
def test_the_callbacks_panel_fits_80_by_24(width: int) -> None:
    busy = replace(_busy(), indicators=_told().indicators, callbacks=_told().callbacks)
    lines = panel(busy, width, colour=True)
    assert max(visible_len(line) for line in lines) <= width
    assert len(lines) <= 14  # room for the notes and alerts above it on a 24-row terminal


def test_the_end_to_end_time_never_seems_to_sit_on_its_threshold() -> None:
    """Just under the 1 s objective is shown under it, not as the threshold itself."""
    told = _told()
    indicators = [
        i if i.slo != "end_to_end_p95" else Indicator(i.slo, i.event_type, 0.99996, Level.OK, 280)
        for i in told.indicators
    ]
    lines = panel(replace(told, indicators=indicators))
    (line,) = [line for line in lines if "e2e p95" in line]
    assert "e2e p95 999.96ms ok" in line
