"""``cbmon demo`` in a real terminal: tmux at 80x24, as the README's first command meets it.

The screen and its scrollback are captured with wrapped lines joined (``capture-pane -J``),
so a line the terminal had to wrap shows up longer than 80 columns, and a redraw that moved
the cursor too few lines shows up as a second panel.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import require_binary
from tests.support.processes import CBMON, wait_for

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 80, 24
CLOCK = re.compile(r"^\d+:\d\d/\d+:\d\d  scenario ")  # the panel's first line
ALERT = re.compile(
    r"^\[\d+:\d\d\] alert (FIRING|RESOLVED|ESCALATED|EASED) Callback\w+ "
    r"\((warning|critical)( -> (warning|critical))?\)( \[\w+\])?: "
    r"(Callback success rate [\d.]+%|Callback average latency [\d.]+ ms"
    r"|Callback attempts slower than \d+ ms: [\d.]+%|Callbacks delivered [\d.]+%"
    r"|\d+ callbacks ran out of retries"
    r"|Callbacks took [\d.]+ m?s from queued to delivered \(p95\)) "
    r"for (all event types|event type \w+) "
    r"\((was (warning|critical): )?(below|above|at or below|at or above) [\d.]+( ms| s|%)?\)$"
)


@dataclass
class Tmux:
    """A tmux server of the test's own (its own socket), holding one 80x24 session."""

    socket: str
    tmux: str

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def screen(
        self, *, history: bool = False, escapes: bool = False, session: str = "demo"
    ) -> list[str]:
        args = ["capture-pane", "-p", "-J", "-t", session]
        args += ["-S", "-"] if history else []
        args += ["-e"] if escapes else []
        return self.run(*args).rstrip("\n").split("\n")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    path = require_binary("tmux")
    server = Tmux(f"cbmon-test-{secrets.token_hex(4)}", path)
    yield server
    subprocess.run([path, "-L", server.socket, "kill-server"], capture_output=True, check=False)


def _start(tmux: Tmux, command: list[str], env: dict[str, str], session: str = "demo") -> None:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    line = f"env {exports} {shlex.join(command)}; echo DEMO-EXIT=$?; sleep 600"
    tmux.run("new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT), line)


def _demo(dsn: str, schema: str, scenario: str, duration: str) -> list[str]:
    return [
        *CBMON, "demo", "--dsn", dsn, "--schema", schema, "--scenario", scenario,
        "--duration", duration, "--listen", "127.0.0.1:0", "--workers", "4",
    ]  # fmt: skip


def _terminal_env(**extra: str) -> dict[str, str]:
    return {"TERM": "xterm-256color", "LANG": "C.UTF-8", "PYTHONPATH": os.getcwd(), **extra}


def _panels(lines: list[str]) -> int:
    return sum(bool(CLOCK.match(line)) for line in lines)


def _too_wide(lines: list[str]) -> list[str]:
    return [line for line in lines if len(line) > WIDTH]


def test_the_demo_fits_80_columns_and_redraws_one_panel_in_place(
    tmux: Tmux, pg_dsn: str, demo_schema: str
) -> None:
    command = _demo(pg_dsn, demo_schema, "degraded", "60s")
    _start(tmux, command, _terminal_env(CBMON_LOG_LEVEL="warning"))
    seen_panel = False
    deadline = time.monotonic() + 100
    while time.monotonic() < deadline:
        screen = tmux.screen()
        assert _too_wide(screen) == [], "\n".join(screen)
        assert _panels(screen) <= 1, "\n".join(screen)  # never two copies on the screen
        seen_panel = seen_panel or _panels(screen) == 1
        if any(line.startswith("DEMO-EXIT=") for line in screen):
            break
        time.sleep(0.7)
    history = tmux.screen(history=True)
    text = "\n".join(history)
    assert "DEMO-EXIT=0" in text, text
    assert seen_panel
    assert _too_wide(history) == [], text
    # One panel in the whole scrollback: every redraw replaced the one before.
    assert _panels(history) == 1, text
    assert re.search(r"^  status     http://127\.0\.0\.1:\d+/ ", text, re.M), text
    assert "alert FIRING CallbackLatencyHigh" in text
    assert "Summary (cbmon report over the run" in text
    # Alert lines wrapped by design continue indented; joined again, each reads whole.
    joined = re.sub(r"\n {4}(?=\S)", " ", text)
    alerts = [line for line in joined.splitlines() if re.match(r"\[\d+:\d\d\] alert ", line)]
    assert len(alerts) >= 4, joined
    for line in alerts:
        assert ALERT.match(line), line
    assert any(" ESCALATED " in line for line in alerts), joined


def test_colour_on_the_terminal_and_none_with_no_color(
    tmux: Tmux, pg_dsn: str, demo_schema: str
) -> None:
    command = _demo(pg_dsn, demo_schema, "steady", "8s")
    env = _terminal_env()
    _start(tmux, command, env)
    wait_for(lambda: "DEMO-EXIT=" in "\n".join(tmux.screen(history=True)), timeout=40, every=0.5)
    coloured = "\n".join(tmux.screen(history=True, escapes=True))
    assert re.search(r"\x1b\[[0-9;]*32m *ok", coloured), coloured  # ok in green
    _start(tmux, command, {**env, "NO_COLOR": "1"}, session="plain")

    def plain_done() -> bool:
        return "DEMO-EXIT=" in "\n".join(tmux.screen(history=True, session="plain"))

    wait_for(plain_done, timeout=40, every=0.5)
    plain = "\n".join(tmux.screen(history=True, escapes=True, session="plain"))
    assert "\x1b[32m" not in plain
    assert "DEMO-EXIT=0" in plain


def test_the_callbacks_scenario_shows_dead_letters_end_to_end_and_a_duplicate(
    tmux: Tmux, pg_dsn: str, demo_schema: str
) -> None:
    """Receivers down past the retries fire the dead-letter alert, slow ones the end-to-end
    one, and the worker stopped mid-lease leaves a duplicate: all on the 80x24 panel."""
    command = _demo(pg_dsn, demo_schema, "callbacks", "60s")
    _start(tmux, command, _terminal_env(CBMON_LOG_LEVEL="warning"))
    duplicates = re.compile(
        r"^  callbacks since the start: delivered \d+, dead (\d+), duplicates (\d+)$"
    )
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 110
    while time.monotonic() < deadline:
        screen = tmux.screen()
        assert _too_wide(screen) == [], "\n".join(screen)
        assert _panels(screen) <= 1, "\n".join(screen)
        seen += [(int(m[1]), int(m[2])) for line in screen if (m := duplicates.match(line))]
        if any(line.startswith("DEMO-EXIT=") for line in screen):
            break
        time.sleep(0.7)
    history = tmux.screen(history=True)
    text = "\n".join(history)
    assert "DEMO-EXIT=0" in text, text
    assert _too_wide(history) == [], text
    assert _panels(history) == 1, text
    joined = re.sub(r"\n {4}(?=\S)", " ", text)
    alerts = [line for line in joined.splitlines() if re.match(r"\[\d+:\d\d\] alert ", line)]
    for line in alerts:
        assert ALERT.match(line), line
    assert any(" FIRING CallbackDeadLetters " in line for line in alerts), joined
    assert any(" CallbackEndToEndSlow " in line for line in alerts), joined
    assert "cbmon-demo-worker-1 stops after delivering callback" in joined
    assert "cbmon-demo-worker-1 is back" in joined
    assert seen
    assert max(dead for dead, _ in seen) > 0
    assert max(duplicate for _, duplicate in seen) >= 1, seen
    summary = re.search(r"  callbacks: \d+, delivered \d+, dead (\d+), duplicates (\d+);", joined)
    assert summary is not None, joined
    assert int(summary[2]) >= 1
