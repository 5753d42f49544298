"""Alerts are never lost, never silenced: each fault a user met, injected into real processes.

A real `cbmon serve` (one or two replicas), a real webhook receiver on 127.0.0.1, a real
PostgreSQL; the faults are the real ones: a backend terminated, a process restarted,
SIGSTOPped or killed, a lock squatted, a network path frozen, the database restarted.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from cbmon.delivery.leader import lock_key, split_key
from tests.conftest import PgSchema
from tests.support.processes import (
    CBMON,
    free_port,
    poll_errors,
    running,
    scrape_or_empty,
    serve_command,
    wait_for,
)
from tests.support.proxy import freezable_proxy
from tests.support.receiver import Receiver, Request, receiver

pytestmark = pytest.mark.slow

SECRET = "cluster-secret-for-tests"


def write_config(pg: PgSchema, path: Path, extra: str = "") -> Path:
    return pg.write_config(
        path,
        "slo: {window: 1m, for: 0s, min_events: 10}\n"
        f"alerting: {{repeat_interval: 1h, state_dir: {path.parent / 'state'}}}\n"
        "database: {statement_timeout: 2s, connect_timeout: 2s}\n" + extra,
    )


def serve(dsn: str, config: Path, port: int, hook: Receiver, poll: str = "250ms") -> list[str]:
    return serve_command(dsn, config, port, "--webhook", hook.url, poll_interval=poll)


def breach(pg: PgSchema) -> None:
    """95 % success over the window: CallbackSuccessRateLow, critical, overall and for pay."""
    insert(pg, ok=95, failed=5)


def recover(pg: PgSchema) -> None:
    insert(pg, ok=20_000, failed=0)


def insert(pg: PgSchema, ok: int, failed: int) -> None:
    pg.conn.execute(
        "INSERT INTO callback_logs (event_type, status, execution_time) "
        "SELECT 'pay', CASE WHEN g <= %s THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
        "FROM generate_series(1, %s) g",
        [failed, ok + failed],
    )


def statuses(requests: list[Request]) -> list[tuple[str, str]]:
    """(status, event type or "all") of every alert in every request, in order."""
    return [
        (alert["status"], alert["labels"].get("event_type", "all"))
        for request in requests
        for alert in request.json["alerts"]
    ]


def wait_for_status(hook: Receiver, status: str, timeout: float = 30) -> list[Request]:
    """Wait until the receiver has got an alert with ``status`` for every event type."""

    def got() -> list[Request] | None:
        with hook.lock:
            requests = list(hook.requests)
        seen = {scope for s, scope in statuses(requests) if s == status}
        return requests if seen >= {"all", "pay"} else None

    return wait_for(got, timeout=timeout)


def leader_of(url: str) -> bool:
    return scrape_or_empty(url).get("cbmon_leader") == 1


def polls(url: str) -> float:
    return scrape_or_empty(url).get("cbmon_polls_total", 0.0)


def after_polls(url: str, count: int) -> None:
    """Wait until ``url``'s replica has polled ``count`` more times."""
    start = polls(url)
    wait_for(lambda: polls(url) >= start + count, timeout=30)


@contextmanager
def cluster_env() -> Iterator[dict[str, str]]:
    yield {"CBMON_CLUSTER_SECRET": SECRET}


def our_key(pg: PgSchema) -> int:
    """The key every replica of the tests' cluster derives: the database as the server names
    it, whatever address a replica reaches it by."""
    row = pg.conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return lock_key(SECRET, "cbmon", str(row[0]), pg.name, "callback_logs")


# 1 ------------------------------------------------------------------------------------------
def test_resolved_is_delivered_when_the_leader_session_dies_as_the_alert_resolves(
    pg: PgSchema, tmp_path: Path
) -> None:
    config = write_config(pg, tmp_path / "c.yml")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        receiver() as hook,
        cluster_env() as env,
        running(serve(pg.dsn, config, port, hook, poll="1s"), env=env, log=tmp_path / "s.log"),
    ):
        wait_for(lambda: leader_of(url))
        breach(pg)
        wait_for_status(hook, "firing")
        after_polls(url, 1)  # just after a poll: the next one is a second away
        pg.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'cbmon leader%%' AND datname = current_database()"
        )
        recover(pg)  # the poll that resolves finds the lock session dead
        requests = wait_for_status(hook, "resolved")
    assert {status for status, _ in statuses(requests)[-2:]} == {"resolved"}


# 2 ------------------------------------------------------------------------------------------
def test_resolved_is_delivered_after_a_restart(pg: PgSchema, tmp_path: Path) -> None:
    config = write_config(pg, tmp_path / "c.yml")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with receiver() as hook, cluster_env() as env:
        with running(serve(pg.dsn, config, port, hook), env=env) as first:
            wait_for(lambda: leader_of(url))
            breach(pg)
            wait_for_status(hook, "firing")
            first.send_signal(signal.SIGKILL)  # a crash: nothing is said on the way out
            first.wait()
        recover(pg)  # the state recovers while cbmon is down
        log = tmp_path / "second.log"
        with running(serve(pg.dsn, config, port, hook), env=env, log=log):
            requests = wait_for_status(hook, "resolved")
    assert "restored" in log.read_text()
    assert [s for s, _ in statuses(requests) if s == "resolved"]


# 3 ------------------------------------------------------------------------------------------
def test_a_session_without_the_secret_cannot_silence_the_replicas(
    pg: PgSchema, tmp_path: Path
) -> None:
    """The key 0.1 used (the table alone) is held by a stranger: nothing changes."""
    config = write_config(pg, tmp_path / "c.yml")
    text = "\x00".join(("cbmon-leader", pg.name, "callback_logs")).encode()
    old_key = int.from_bytes(hashlib.sha256(text).digest()[:8], "big", signed=True)
    with psycopg.connect(pg.dsn, autocommit=True, application_name="squatter") as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s)", [old_key])
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        with (
            receiver() as hook,
            cluster_env() as env,
            running(serve(pg.dsn, config, port, hook), env=env),
        ):
            wait_for(lambda: leader_of(url))
            breach(pg)
            wait_for_status(hook, "firing")


def test_a_foreign_holder_of_the_lock_is_named_and_counted(pg: PgSchema, tmp_path: Path) -> None:
    config = write_config(pg, tmp_path / "c.yml")
    with psycopg.connect(pg.dsn, autocommit=True, application_name="squatter") as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s)", [our_key(pg)])
        pid = squatter.info.backend_pid
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        log = tmp_path / "s.log"
        with (
            receiver() as hook,
            cluster_env() as env,
            running(serve(pg.dsn, config, port, hook), env=env, log=log),
        ):
            wait_for(lambda: scrape_or_empty(url).get("cbmon_leader_lock_foreign") == 1)
            assert scrape_or_empty(url)["cbmon_leader"] == 0
        text = log.read_text()
    assert f"pid {pid} (squatter)" in text
    assert "not a cbmon replica" in text
    assert split_key(our_key(pg))  # the key pg_locks shows is the one named


# 4 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["sigstop", "frozen network"])
def test_a_frozen_leader_hands_over_and_what_fires_is_delivered(
    pg: PgSchema, tmp_path: Path, fault: str
) -> None:
    config = write_config(pg, tmp_path / "c.yml")
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}/metrics" for p in ports]
    with (
        receiver() as hook,
        cluster_env() as env,
        freezable_proxy() as proxy,
    ):
        # The first replica reaches the database through a path that can be frozen.
        via_proxy = pg.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert via_proxy != pg.dsn
        first_dsn = via_proxy if fault == "frozen network" else pg.dsn
        with running(serve(first_dsn, config, ports[0], hook), env=env) as first:
            wait_for(lambda: leader_of(urls[0]))
            with running(serve(pg.dsn, config, ports[1], hook), env=env):
                wait_for(lambda: polls(urls[1]) > 2)
                breach(pg)
                wait_for_status(hook, "firing")
                with hook.lock:
                    before = len(hook.requests)
                if fault == "sigstop":
                    first.send_signal(signal.SIGSTOP)
                else:
                    proxy.freeze()
                try:
                    # Goal: within 3 poll intervals + 5 s (the timeout is 2 polls + 2 s here).
                    wait_for(lambda: leader_of(urls[1]), timeout=3 * 0.25 + 5 + 5)

                    # The new leader sends what fires, for both scopes, in requests of their own.
                    def fresh_firing() -> list[tuple[str, str]] | None:
                        with hook.lock:
                            fresh = statuses(hook.requests[before:])
                        both = {("firing", "pay"), ("firing", "all")} <= set(fresh)
                        return fresh if both else None

                    fresh = wait_for(fresh_firing, timeout=10)
                finally:
                    first.send_signal(signal.SIGCONT)
                    proxy.thaw()
    assert {status for status, _ in fresh} == {"firing"}


# 5 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("alerting: {timeout: 0s}", "alerting.timeout"),
        ("alerting: {repeat_interval: 0s}", "alerting.repeat_interval"),
        ("slo: {window: 0s}", "slo.window"),
        ("database: {statement_timeout: 0s}", "database.statement_timeout"),
        ("alerting: {webhooks: ['http://127.0.0.1:99999/hook?token=abc']}", "alerting.webhooks"),
    ],
)
def test_values_that_would_disable_alerting_are_refused_by_check_and_serve(
    pg: PgSchema, tmp_path: Path, line: str, key: str
) -> None:
    config = tmp_path / "c.yml"
    config.write_text(line + "\n")
    checked = subprocess.run(
        [*CBMON, "config", "check", str(config)], capture_output=True, text=True, timeout=30
    )
    served = subprocess.run(
        [*CBMON, "serve", "--dsn", pg.dsn, "--config", str(config), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for result in (checked, served):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        (_message,) = [line for line in result.stderr.splitlines() if key in line]
        assert "token=abc" not in result.stderr


# 6 ------------------------------------------------------------------------------------------
def test_a_database_restart_resends_nothing_under_a_new_id(tmp_path: Path) -> None:
    from cbmon.db.embedded import EmbeddedPostgres
    from cbmon.reference import schema

    with EmbeddedPostgres(tmp_path / "pgdata") as db:
        schema.apply(db.dsn, schema="public", role=None)
        conn = psycopg.connect(db.dsn, autocommit=True)
        config = tmp_path / "c.yml"
        config.write_text(
            "slo: {window: 1m, for: 0s, min_events: 10}\n"
            f"alerting: {{repeat_interval: 1h, state_dir: {tmp_path / 'state'}}}\n"
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        with receiver() as hook, cluster_env() as env:
            with running(serve(db.dsn, config, port, hook), env=env, log=tmp_path / "s.log"):
                wait_for(lambda: leader_of(url))
                conn.execute(
                    "INSERT INTO callback_logs (event_type, status, execution_time) "
                    "SELECT 'pay', CASE WHEN g <= 5 THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
                    "FROM generate_series(1, 100) g"
                )
                first = hook.wait(2)
                ids = {r.headers["webhook-id"] for r in first}
                conn.close()
                db.restart(mode="fast")
                conn = psycopg.connect(db.dsn, autocommit=True)
                wait_for(lambda: poll_errors(scrape_or_empty(url)) >= 1)
                wait_for(lambda: leader_of(url))  # the lock is taken again: a takeover
                after_polls(url, 4)
                with hook.lock:
                    later = list(hook.requests[len(first) :])
            conn.close()
    assert {r.headers["webhook-id"] for r in later} <= ids


# bounded waits ------------------------------------------------------------------------------
def test_a_frozen_database_path_marks_the_database_down_and_sigterm_still_stops_serve(
    pg: PgSchema, tmp_path: Path
) -> None:
    config = write_config(pg, tmp_path / "c.yml")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with freezable_proxy() as proxy, receiver() as hook, cluster_env() as env:
        dsn = pg.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        log = tmp_path / "s.log"
        with running(serve(dsn, config, port, hook), env=env, log=log) as process:
            wait_for(lambda: scrape_or_empty(url).get("cbmon_database_up") == 1)
            proxy.freeze()
            # The longest path to "down": a poll ends just before the freeze, the leadership
            # check after it waits out its bound (the connect timeout, 2 s), and the next poll
            # its own (the statement timeout, 2 s, and the poll's grace, 2 s); 6.25 s in all.
            # The rest is headroom for a loaded machine; cbmon's log says which bound fired.
            try:
                wait_for(lambda: scrape_or_empty(url).get("cbmon_database_up") == 0, timeout=15)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; serve said:\n{log.read_text()}") from None
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def test_check_answers_unknown_within_its_timeout_when_the_path_freezes(
    pg: PgSchema, tmp_path: Path
) -> None:
    config = write_config(pg, tmp_path / "c.yml", "database: {connect_timeout: 1m}\n")
    with freezable_proxy() as proxy:
        dsn = pg.dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert subprocess.run(
            [*CBMON, "check", "--dsn", dsn, "--config", str(config)], capture_output=True
        ).returncode in (0, 1, 2)
        proxy.freeze()
        result = subprocess.run(
            [*CBMON, "check", "--dsn", dsn, "--config", str(config), "--timeout", "3s"],
            capture_output=True,
            text=True,
            timeout=15,  # the test's own bound; the check must answer well before
        )
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("CBMON UNKNOWN - ")
