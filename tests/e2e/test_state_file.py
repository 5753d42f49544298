"""A state file cbmon wrote, damaged while it was stopped, in each way a disk, a hand or
another version damages one: `cbmon serve` starts anyway, says in one line what it moved
aside and why, fires again what the database still shows, and saves a good file again."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from cbmon.delivery.statefile import parse
from tests.conftest import PgSchema
from tests.support.attempts import insert
from tests.support.processes import answers, free_port, running, serve_command, wait_for
from tests.support.receiver import Receiver, receiver

pytestmark = pytest.mark.slow


def damage(path: Path, kind: str) -> None:
    good = path.read_bytes()
    if kind == "not UTF-8":
        path.write_bytes(good[:40] + b"\xff\xfe\xfd" + good[40:])
    elif kind == "wrong shape":
        path.write_text(json.dumps({"version": 1, "tracks": [{"slo": "success_rate"}]}))
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "a directory":
        path.unlink()
        (path / "lost+found").mkdir(parents=True)


def firing_for_pay(hook: Receiver) -> int:
    return sum(
        alert["status"] == "firing" and alert["labels"].get("event_type") == "pay"
        for alert in hook.alerts()
    )


def fired_again(hook: Receiver, times: int) -> bool:
    return firing_for_pay(hook) == times


def test_a_damaged_state_file_never_stops_a_start(pg: PgSchema, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = pg.write_config(
        tmp_path / "c.yml",
        "slo: {window: 5m, for: 0s, min_events: 10}\n"
        f"alerting: {{repeat_interval: 1h, state_dir: {state}}}\n",
    )
    port = free_port()
    args = serve_command(pg.dsn, config, port, "--webhook", "HOOK")
    with receiver() as hook:
        args[args.index("HOOK")] = hook.url
        with running(args):
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
            insert(pg, "pay", ok=90, failed=10)
            wait_for(lambda: firing_for_pay(hook) == 1, timeout=30)
        [path] = state.glob("alerts-*.json")
        for fired, kind in enumerate(["not UTF-8", "wrong shape", "truncated", "a directory"], 2):
            damage(path, kind)
            log = tmp_path / f"{kind}.log"
            with running(args, log=log) as serve:
                wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"))
                # The breach is still in the window the database fills: it fires again.
                wait_for(partial(fired_again, hook, fired), timeout=30)
            assert serve.returncode == 0, kind
            text = log.read_text()
            assert "Traceback" not in text, kind
            [line] = [line for line in text.splitlines() if " is unusable (" in line]
            [aside] = [p for p in state.iterdir() if ".corrupt-" in p.name]
            assert f"alert state {path} is unusable (" in line, kind
            assert f"moved to {aside};" in line, kind
            assert parse(path.read_bytes())["tracks"], kind  # saved whole again
            if aside.is_dir():
                shutil.rmtree(aside)
            else:
                aside.unlink()
