"""Real ``cbmon serve`` processes in production topologies: replicas on a primary and on its
hot standby, replicas behind a real pgbouncer, and a failover to a standby that had not
received the last commits, reached through a multi-host DSN."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import conninfo

from cbmon.reference import schema
from tests.conftest import Replicated
from tests.support.cluster import Cluster, Pgbouncer
from tests.support.processes import (
    free_port,
    poll_errors,
    running,
    scrape_or_empty,
    serve_command,
    wait_for,
    wait_for_polls,
    wait_for_scrape,
)
from tests.support.receiver import receiver

pytestmark = [pytest.mark.slow, pytest.mark.standby]

BREACH = (
    "INSERT INTO callback_logs (event_type, status, execution_time) "
    "SELECT 'pay', CASE WHEN g <= 10 THEN 'FAILED' ELSE 'COMPLETED' END, 40 "
    "FROM generate_series(1, 100) g"
)
SLO = "slo: {window: 1m, for: 0s, min_events: 10}\nalerting: {repeat_interval: 1h}\n"
PAY = 'cbmon_callback_attempts_total{event_type="pay"}'


def _config(pair: Replicated, path: Path, primary: bool) -> Path:
    extra = f"database: {{primary_dsn: '{pair.primary.dsn()}'}}\n" if primary else ""
    return pair.pg.write_config(path, SLO + extra)


def _status(port: int) -> dict[str, object]:
    document: dict[str, object] = requests.get(
        f"http://127.0.0.1:{port}/api/v1/status", timeout=5
    ).json()
    return document


def test_replicas_on_the_primary_and_on_its_standby_send_each_alert_once(
    replicated: Replicated, tmp_path: Path
) -> None:
    with_primary = _config(replicated, tmp_path / "standby.yml", primary=True)
    without = _config(replicated, tmp_path / "alone.yml", primary=False)
    plain = _config(replicated, tmp_path / "primary.yml", primary=False)
    ports = free_port(), free_port(), free_port()
    urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    with receiver() as hook:
        commands = [
            serve_command(dsn, config, port, "--webhook", hook.url, poll_interval="250ms")
            for dsn, config, port in (
                (replicated.primary.dsn(), plain, ports[0]),
                (replicated.standby_dsn(), with_primary, ports[1]),
                (replicated.standby_dsn(), without, ports[2]),
            )
        ]
        logs = [tmp_path / f"serve-{index}.log" for index in range(3)]
        with (
            running(commands[0], log=logs[0]) as first,
            running(commands[1], log=logs[1]),
            running(commands[2], log=logs[2]),
        ):
            leaders = wait_for(
                lambda: (
                    values
                    if sorted(values := [scrape_or_empty(u).get("cbmon_leader", -1) for u in urls])
                    == [0, 0, 1]
                    else None
                ),
                timeout=30,
            )
            assert leaders[2] == 0  # the standby's replica without the primary never leads
            for url in urls:  # counting starts at the tail: every replica has polled once
                wait_for_scrape(url, lambda m: m.get("cbmon_database_up") == 1)
            replicated.pg.conn.execute(BREACH)
            for url in urls:  # every replica counts every row, the standby's included
                wait_for_scrape(url, lambda m: m.get(PAY) == 100, timeout=30)
            hook.wait(2)  # overall and per event type
            for url in urls:
                wait_for_polls(url, 4)
            assert len(hook.requests) == 2, "an alert was sent by more than one replica"
            ids = [request.headers["webhook-id"] for request in hook.requests]
            assert len(set(ids)) == 2
            alone = _status(ports[2])
            assert alone["database"]["fence"] == "none"  # type: ignore[index]
            assert alone["database"]["exact"] is False  # type: ignore[index]
            assert "hot standby" in alone["leader"]["refusal"]  # type: ignore[index]
            page = requests.get(f"http://127.0.0.1:{ports[2]}/", timeout=5).text
            assert "NOT EXACT" in page
            assert (
                scrape_or_empty(urls[2])[
                    'cbmon_reader_assumption_ok{check="standby_fence",table="logs"}'
                ]
                == 0
            )
            if leaders[0] == 1:  # the primary's replica sends: kill it, the standby's takes over
                first.send_signal(signal.SIGKILL)
                wait_for(lambda: scrape_or_empty(urls[1]).get("cbmon_leader") == 1, timeout=20)
                requests_now = hook.wait(4)
                assert {a["status"] for r in requests_now[2:] for a in r.json["alerts"]} == {
                    "firing"
                }
                assert scrape_or_empty(urls[2]).get("cbmon_leader") == 0


@pytest.mark.pooler
def test_through_pgbouncer_in_transaction_mode_one_sender_and_no_flapping(
    replicated: Replicated, poolers: dict[str, Pgbouncer], tmp_path: Path
) -> None:
    """Replicas through transaction pooling: the lock on the primary (database.primary_dsn),
    or none; polls never fail on prepared statements; the wake mode says what is true."""
    pooled = poolers["transaction"].dsn()
    with_primary = _config(replicated, tmp_path / "direct.yml", primary=True)
    without = _config(replicated, tmp_path / "pooled.yml", primary=False)
    ports = free_port(), free_port(), free_port()
    urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    with receiver() as hook:
        commands = [
            serve_command(pooled, config, port, "--webhook", hook.url, poll_interval="200ms")
            for config, port in zip((with_primary, with_primary, without), ports, strict=True)
        ]
        with running(commands[0]), running(commands[1]), running(commands[2]):
            wait_for(
                lambda: (
                    sorted(scrape_or_empty(u).get("cbmon_leader", -1) for u in urls) == [0, 0, 1]
                ),
                timeout=30,
            )
            for url in urls:
                wait_for_scrape(url, lambda m: m.get("cbmon_database_up") == 1)
            replicated.pg.conn.execute(BREACH)
            hook.wait(2)
            for url in urls:
                after = wait_for_polls(url, 25)  # well past psycopg's prepare threshold
                assert poll_errors(after) == 0
                assert after["cbmon_database_up"] == 1
                assert after[PAY] == 100
            assert len(hook.requests) == 2
            leaders = [scrape_or_empty(u).get("cbmon_leader") for u in urls]
            assert leaders[2] == 0  # no primary_dsn: it refuses rather than lead on the pooler
            pooled_only = _status(ports[2])
            assert pooled_only["database"]["wake"] == "poll"  # type: ignore[index]
            assert pooled_only["database"]["pooler"] == "transaction"  # type: ignore[index]
            assert "transaction mode" in pooled_only["leader"]["refusal"]  # type: ignore[index]
            assert _status(ports[0])["database"]["wake"] != "poll"  # type: ignore[index]


def test_a_failover_that_lost_the_last_commits_counts_the_new_history_once(
    lab_root: Path, tmp_path: Path
) -> None:
    old = Cluster(lab_root, "old").init().start()
    new = old.standby("new").start()
    name = "cbmon_failover"
    schema.apply(old.dsn(), schema=name, role=None)
    config = tmp_path / "c.yml"
    tables = "".join(f"  {t}: {{schema: {name}}}\n" for t in ("logs", "errors", "queue"))
    config.write_text(f"tables:\n{tables}", encoding="utf-8")
    both = conninfo.make_conninfo(
        host="127.0.0.1,127.0.0.1",
        port=f"{old.port},{new.port}",
        dbname="postgres",
        user="root",
        target_session_attrs="primary",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "serve.log"

    def insert(cluster: Cluster, event_type: str, count: int) -> None:
        with psycopg.connect(cluster.dsn(options=f"-c search_path={name}"), autocommit=True) as c:
            c.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "SELECT %s, 'COMPLETED', 30 FROM generate_series(1, %s)",
                (event_type, count),
            )

    def attempts(event_type: str) -> float | None:
        return scrape_or_empty(url).get(
            f'cbmon_callback_attempts_total{{event_type="{event_type}"}}'
        )

    with running(serve_command(both, config, port, poll_interval="200ms"), log=log):
        wait_for(lambda: scrape_or_empty(url).get("cbmon_database_up") == 1, timeout=30)
        insert(old, "replicated", 100)
        new.wait_replayed(old)
        wait_for(lambda: attempts("replicated") == 100, timeout=30)
        new.stop()  # the standby falls behind: the next commits never reach it
        insert(old, "lost", 40)
        wait_for(lambda: attempts("lost") == 40, timeout=30)
        old.kill()
        new.start()
        new.promote()
        insert(new, "after", 30)  # its sequence hands out some of the lost rows' ids again
        metrics = wait_for_scrape(
            url, lambda m: m.get('cbmon_callback_attempts_total{event_type="after"}') == 30, 60
        )
        assert metrics['cbmon_reader_resets_total{reason="failover",table="logs"}'] == 1
        insert(new, "after", 10)
        wait_for(lambda: attempts("after") == 40, timeout=30)
        settled = wait_for_polls(url, 5)
        assert settled['cbmon_callback_attempts_total{event_type="after"}'] == 40
        assert settled['cbmon_callback_attempts_total{event_type="replicated"}'] == 100
        assert settled['cbmon_callback_attempts_total{event_type="lost"}'] == 40  # never back
    text = log.read_text(errors="replace")
    assert text.count("(reset of the logs table: failover)") == 1
    assert "Traceback" not in text
    new.stop()
