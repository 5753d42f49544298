"""The demo's live view: the status line and the panel, from a snapshot of plain values."""

from __future__ import annotations

from cbmon.demo.view import Snapshot, panel, status_line
from cbmon.domain import Level
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
    assert lines[-2] == "  queue backlog 12 ok"
    assert lines[-1] == (
        "  alerts: 3 fired, 1 resolved;"
        " firing now: CallbackLatencyHigh/warning x2, CallbackSuccessRateLow/critical"
    )
