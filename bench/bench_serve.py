"""Benchmark of the sidecar's costs. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_serve.py --dsn postgresql://root@127.0.0.1/test --rows 10000000

Measures, on a log table of ``--rows`` rows (built once in schema ``cbmon_bench`` and reused):
  1. an idle poll (no new rows): median and p99;
  2. consuming ``--new`` new rows: cbmon's rate against PostgreSQL's own aggregate over the
     same id range (the query a hand-written exporter would run);
  3. ``/metrics`` with 200 event types: p50 and p99 of 500 scrapes;
  4. resident memory of a ``cbmon serve`` process after it has polled those rows;
  5. the time from a breach committed in the database to the signed webhook arriving, with
     ``for: 0``: polled every second, then with a 5 s poll interval and the wake trigger
     (``cbmon schema apply --wake``), and to a real Alertmanager likewise;
  6. the database's CPU at 1000 rows/s, each its own transaction, on a private embedded
     PostgreSQL: without the trigger, with it and nobody listening, with cbmon listening.

  7. consuming a burst of attempts with their callbacks (outcomes, queue wait, targets)
     against PostgreSQL's own aggregate of the same figures (``lifecycle``);
  8. an idle poll while a transaction holds ``--invisible`` rows inserted and not committed,
     against one without them, and what reading them once costs (``invisible``; in a schema
     of its own, dropped after).
  9. a fleet of ``--databases`` databases of 20 event types each in one process: what a
     database's poll spends rendering ``/metrics`` (its own part) against rendering every
     database's, and what a scrape then spends merging the parts (``fleet``; schemas of their
     own, dropped after).

``--only breach,cost`` runs only those (names: polls, lifecycle, serve, breach, cost,
invisible, fleet).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg import sql

from cbmon.config import load_config
from cbmon.db.embedded import EmbeddedPostgres
from cbmon.domain import BUCKETS, TRIES, WAIT_BUCKETS
from cbmon.durations import parse_duration
from cbmon.ingest.poller import Poller
from cbmon.reference import schema

SCHEMA = "cbmon_bench"
EVENT_TYPES = 200


def build(dsn: str, rows: int) -> None:
    schema.apply(dsn, schema=SCHEMA, role=None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
        have = conn.execute("SELECT count(*) FROM callback_logs").fetchone()
        assert have is not None
        if have[0] >= rows:
            print(f"reusing {have[0]:,} rows in {SCHEMA}.callback_logs")
            return
        print(f"generating {rows - have[0]:,} rows ...", flush=True)
        started = time.monotonic()
        conn.execute("SET statement_timeout = 0")
        insert_rows(conn, rows - have[0])
        conn.execute("VACUUM ANALYZE callback_logs")
        print(f"  done in {time.monotonic() - started:.0f}s")


def insert_rows(conn: psycopg.Connection[Any], count: int) -> None:
    conn.execute(
        """
        INSERT INTO callback_logs (event_type, status, execution_time, created_at)
        SELECT 'event_' || (g %% %(types)s),
               CASE WHEN g %% 97 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
               CASE WHEN g %% 50 = 0 THEN NULL ELSE (g %% 700)::float8 END,
               now() - interval '1 hour'
        FROM generate_series(1, %(count)s) AS g
        """,
        {"types": EVENT_TYPES, "count": count},
    )


MINIMAL = """
    SELECT event_type, count(*), count(*) FILTER (WHERE status <> 'COMPLETED'),
           sum(execution_time), count(execution_time)
    FROM callback_logs WHERE id > %s AND id <= %s GROUP BY event_type
"""
ATTEMPT_FIGURES = f"""
    SELECT event_type, count(*),
           count(*) FILTER (WHERE status IS DISTINCT FROM 'COMPLETED'),
           count(*) FILTER (WHERE execution_time BETWEEN 0 AND 3600000),
           sum(execution_time) FILTER (WHERE execution_time BETWEEN 0 AND 3600000),
           count(*) FILTER (WHERE execution_time > 200 AND execution_time <= 3600000),
           {
    ", ".join(
        f"count(*) FILTER (WHERE execution_time BETWEEN 0 AND {bound * 1000:g})"
        for bound in BUCKETS
    )
}
    FROM callback_logs WHERE id > %s AND id <= %s GROUP BY event_type
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Trickle(threading.Thread):
    """Background load: ``rate`` rows per second in transactions of ten rows, as a busy
    callback worker writes them, until stopped."""

    def __init__(self, dsn: str, rate: int = 1000) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate = dsn, rate
        self.stopped = threading.Event()
        self.rows = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
            started = time.monotonic()
            while not self.stopped.is_set():
                with conn.transaction():
                    insert_rows(conn, 10)
                self.rows += 10
                ahead = self.rows / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    self.stopped.wait(ahead)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def bench_polls(dsn: str, new: int) -> None:
    config = load_config(
        overrides={"tables": {t: {"schema": SCHEMA} for t in ("logs", "errors", "queue")}},
        dsn=dsn,
        environ={},
    )
    poller = Poller(config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        poller.poll(conn)
        idle = []
        for _ in range(200):
            started = time.perf_counter()
            poller.poll(conn)
            idle.append((time.perf_counter() - started) * 1000)
        print(
            f"idle poll (no new rows):  median {statistics.median(idle):.2f} ms, "
            f"p99 {percentile(idle, 0.99):.2f} ms"
        )
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as reading:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
        conn.execute("SET statement_timeout = 0")
        low = poller.logs.high_water
        assert low is not None
        # The burst commits at once, with no VACUUM after it, while a worker keeps writing
        # 1000 rows/s: the way a backlog drains in production.
        with conn.transaction():
            insert_rows(conn, new)
        row = conn.execute("SELECT max(id) FROM callback_logs").fetchone()
        assert row is not None
        high = int(row[0])
        conn.execute(ATTEMPT_FIGURES, [low, high]).fetchall()  # the first reader sets hint bits
        trickle = Trickle(dsn)
        trickle.start()
        try:
            same, attempts, minimal = [], [], []
            for _ in range(3):
                same.append(timed(conn, LIFECYCLE_SAME, low, high))
                attempts.append(timed(conn, ATTEMPT_FIGURES, low, high))
                minimal.append(timed(conn, MINIMAL, low, high))
            started = time.perf_counter()
            polls = 0
            while poller.logs.high_water is None or poller.logs.high_water < high:
                polls += 1
                poller.poll(reading)
            ours = time.perf_counter() - started
            for _ in range(3):
                same.append(timed(conn, LIFECYCLE_SAME, low, high))
        finally:
            trickle.stop()
        count = high - low
        print(
            f"consuming a committed burst of {count:,} rows while 1000 rows/s arrive: "
            f"cbmon {ours:.3f}s ({polls} polls, {poller.logs.open_gap_ids} ids in open gaps)"
        )
        for name, seconds in (
            # The table has the lifecycle's columns (as the reference schema does), so cbmon
            # reads the callback figures too, and so does the fair comparison.
            ("same figures", statistics.median(same)),
            ("the attempt figures only", statistics.median(attempts)),
            ("minimal", statistics.median(minimal)),
        ):
            print(
                f"  PostgreSQL's own GROUP BY over the same ids, {name}: {seconds:.3f}s "
                f"(median); cbmon's time / its time = {ours / seconds:.2f}"
            )


def _lifecycle_same() -> str:
    """Every figure cbmon's read of a burst gives, per event type and target, as one would
    write it by hand: a join to the queue, FILTER, one NOT EXISTS for "delivered before"."""
    ok = "l.status = 'COMPLETED'"
    first = (
        f"{ok} AND NOT EXISTS (SELECT 1 FROM callback_logs o WHERE o.queue_id = l.queue_id "
        f"AND o.id < l.id AND o.status = 'COMPLETED')"
    )
    figures = [
        f"count(*) FILTER (WHERE NOT {ok})",
        "count(*) FILTER (WHERE l.execution_time BETWEEN 0 AND 60000)",
        "sum(l.execution_time) FILTER (WHERE l.execution_time BETWEEN 0 AND 60000)",
        "count(l.execution_time)",
        "count(*) FILTER (WHERE l.execution_time > 200 AND l.execution_time <= 60000)",
        *(f"count(*) FILTER (WHERE l.execution_time BETWEEN 0 AND {b * 1000})" for b in BUCKETS),
        "count(*) FILTER (WHERE d.first)",
        f"count(*) FILTER (WHERE {ok})",
        f"count(*) FILTER (WHERE NOT {ok} AND l.attempt >= 4)",
        f"sum(l.attempt) FILTER (WHERE d.first OR (NOT {ok} AND l.attempt >= 4))",
        *(
            f"count(*) FILTER (WHERE (d.first OR (NOT {ok} AND l.attempt >= 4)) "
            f"AND l.attempt <= {t})"
            for t in TRIES
        ),
        "count(*) FILTER (WHERE l.attempt = 1 AND d.queued >= 0)",
        "sum(d.queued) FILTER (WHERE l.attempt = 1 AND d.queued >= 0)",
        "count(*) FILTER (WHERE d.first AND d.queued >= 0)",
        "sum(d.queued) FILTER (WHERE d.first AND d.queued >= 0)",
        *(
            f"count(*) FILTER (WHERE {who} AND d.queued BETWEEN 0 AND {b})"
            for b in WAIT_BUCKETS
            for who in ("l.attempt = 1", "d.first")
        ),
        *(
            f"count(*) FILTER (WHERE NOT {ok} AND l.http_status BETWEEN {lo} AND {lo + 99})"
            for lo in (400, 500)
        ),
        f"count(*) FILTER (WHERE NOT {ok} AND l.http_status IS NULL)",
    ]
    return (
        "SELECT l.event_type, l.target, count(*), " + ", ".join(figures) + " FROM callback_logs l"
        " LEFT JOIN callback_queue q ON q.id = l.queue_id, LATERAL (SELECT "
        + first
        + " AS first, extract(epoch FROM l.created_at - q.created_at) AS queued OFFSET 0) d"
        " WHERE l.id > %s AND l.id <= %s GROUP BY 1, 2"
    )


LIFECYCLE_SAME = _lifecycle_same()


def idle_polls(poller: Poller, conn: psycopg.Connection[Any], count: int) -> list[float]:
    """Milliseconds of each of ``count`` polls."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        poller.poll(conn)
        times.append((time.perf_counter() - started) * 1000)
    return times


def bench_invisible(dsn: str, invisible: int) -> None:
    name = f"{SCHEMA}_invisible"
    schema.apply(dsn, schema=name, role=None)
    config = load_config(
        overrides={"tables": {t: {"schema": name} for t in ("logs", "errors", "queue")}},
        dsn=dsn,
        environ={},
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as bulk:
            bulk.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
            bulk.execute("SET statement_timeout = 0")
            bulk.commit()
            insert_rows(bulk, 1000)
            bulk.commit()
            poller = Poller(config)
            poller.poll(conn)
            without = idle_polls(poller, conn, 200)
            started = time.perf_counter()
            insert_rows(bulk, invisible)  # not committed
            loaded = time.perf_counter() - started
            started, polls = time.perf_counter(), 0
            while True:  # the new ids read once, then once more to fence them
                polls += 1
                if poller.poll(conn).caught_up and polls > 1:
                    break
            absorbed = time.perf_counter() - started
            with_them = idle_polls(poller, conn, 200)
            # The idle poll as it was before the sequence bounded it: the newest visible id
            # looked for through every invisible index entry.
            blind = Poller(config)
            blind.poll(conn)
            blind.logs.source = dataclasses.replace(blind.logs.source, sequence=None)
            blind.logs.high_water, blind.logs.gaps = poller.logs.high_water, []
            before = idle_polls(blind, conn, 5)
            bulk.rollback()
        print(
            f"idle poll, {invisible:,} rows inserted and not committed ({loaded:.1f}s to insert; "
            f"read once as gaps in {polls} polls, {absorbed:.2f}s):"
        )
        for label, times in (("without them", without), ("with them", with_them)):
            print(
                f"  {label:<13} median {statistics.median(times):.2f} ms, "
                f"p99 {percentile(times, 0.99):.2f} ms"
            )
        above = statistics.median(with_them) - statistics.median(without)
        print(
            f"  difference    median {above:.2f} ms (goal: at most 10 ms); "
            "without the sequence bounding the head: "
            f"median {statistics.median(before):.1f} ms"
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def bench_lifecycle(dsn: str, new: int) -> None:
    """A burst of attempts with their callbacks (a tenth retried once): cbmon's read of the
    lifecycle against PostgreSQL's own aggregate of the same figures."""
    config = load_config(
        overrides={"tables": {t: {"schema": SCHEMA} for t in ("logs", "errors", "queue")}},
        dsn=dsn,
        environ={},
    )
    poller = Poller(config)
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as reading:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
        conn.execute("SET statement_timeout = 0")
        poller.poll(reading)
        low = poller.logs.high_water
        assert low is not None
        callbacks = new * 10 // 11
        conn.execute(
            "INSERT INTO callback_queue (event_type, created_at, processed_at) "
            "SELECT 'event_' || (g %% 200), now() - interval '1 minute', now() "
            "FROM generate_series(1, %s) g",
            [callbacks],
        )
        first = conn.execute("SELECT max(id) FROM callback_queue").fetchone()
        assert first is not None
        top = int(first[0])
        conn.execute(
            """
            INSERT INTO callback_logs (event_type, status, execution_time, queue_id, attempt,
                                       http_status, target)
            SELECT 'event_' || (q %% 200), s, 40, q, a, CASE WHEN s = 'COMPLETED' THEN 200
                   ELSE 503 END, 'https://r' || (q %% 5) || '.test'
            FROM (SELECT %(top)s - g AS q, 1 AS a,
                         CASE WHEN g %% 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END AS s
                  FROM generate_series(0, %(n)s - 1) g
                  UNION ALL
                  SELECT %(top)s - g, 2, 'COMPLETED' FROM generate_series(0, %(n)s - 1) g
                  WHERE g %% 10 = 0) AS attempts
            ORDER BY q, a
            """,
            {"top": top, "n": callbacks},
        )
        row = conn.execute("SELECT max(id) FROM callback_logs").fetchone()
        assert row is not None
        high = int(row[0])
        conn.execute(LIFECYCLE_SAME, [low, high]).fetchall()  # hint bits
        theirs = statistics.median(timed(conn, LIFECYCLE_SAME, low, high) for _ in range(3))
        started = time.perf_counter()
        while poller.logs.high_water is None or poller.logs.high_water < high:
            poller.poll(reading)
        ours = time.perf_counter() - started
        idle = []
        for _ in range(100):
            begun = time.perf_counter()
            poller.poll(reading)
            idle.append((time.perf_counter() - begun) * 1000)
        print(
            f"lifecycle: a burst of {high - low:,} attempts of {callbacks:,} callbacks: cbmon "
            f"{ours:.3f}s, PostgreSQL's own aggregate of the same figures {theirs:.3f}s "
            f"(cbmon / it = {ours / theirs:.2f}); idle poll after it: median "
            f"{statistics.median(idle):.2f} ms"
        )


def timed(conn: psycopg.Connection[Any], query: str, low: int, high: int) -> float:
    started = time.perf_counter()
    conn.execute(query, [low, high]).fetchall()
    return time.perf_counter() - started


def bench_serve(dsn: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "c.yml"
        config.write_text(
            "tables: {"
            + ", ".join(f"{t}: {{schema: {SCHEMA}}}" for t in ("logs", "errors", "queue"))
            + "}\n"
        )
        port = free_port()
        process = start_serve(dsn, config, port)
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            wait(lambda: ok(url.replace("metrics", "readyz")))
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(SCHEMA)))
                insert_rows(conn, 100_000)  # every event type becomes a label
            wait(
                lambda: (
                    requests.get(url, timeout=5).text.count("cbmon_callback_attempts_total{")
                    >= EVENT_TYPES
                )
            )
            session = requests.Session()
            times = []
            trickle = Trickle(dsn)  # polls keep finding rows while scrapes arrive
            trickle.start()
            try:
                for _ in range(1000):
                    started = time.perf_counter()
                    session.get(url, timeout=5).raise_for_status()
                    times.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.005)
            finally:
                trickle.stop()
            size = len(session.get(url, timeout=5).content)
            print(
                f"/metrics with {EVENT_TYPES} event types ({size / 1024:.0f} KiB) "
                "while 1000 rows/s arrive: "
                f"p50 {percentile(times, 0.5):.1f} ms, p99 {percentile(times, 0.99):.1f} ms"
            )
            rss = rss_mib(process.pid)
            print(f"cbmon serve resident memory: {rss:.1f} MiB (goal <= 50)")
        finally:
            process.terminate()
            process.wait(10)


SECRET = "whsec_" + "QUJD" * 8


class Hook(http.server.ThreadingHTTPServer):
    """A webhook receiver that notes when the first notification arrives, checking its
    Standard Webhooks signature when it has a secret."""

    daemon_threads = True

    def __init__(self, secret: str | None = SECRET) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.secret = secret
        self.arrived = threading.Event()
        self.at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.secret is not None:
            from standardwebhooks import Webhook

            Webhook(self.server.secret).verify(body, dict(self.headers))  # raises if forged
        if not self.server.arrived.is_set():
            self.server.at = time.perf_counter()
            self.server.arrived.set()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def breach_once(
    dsn: str,
    name: str,
    poll_interval: str,
    *,
    wake: bool,
    receiver: list[str],
    hook: Hook,
    phase: float = 0.0,
    load: int = 0,
) -> float:
    """Seconds from a breach committed in schema ``name`` to ``hook`` receiving it, from
    cbmon (``receiver``: ``--webhook URL``) or from an Alertmanager cbmon posts to."""
    schema.apply(dsn, schema=name, role=None, wake=wake)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = serve_config(Path(tmp), name, "slo: {for: 0s, min_events: 10}")
            port = free_port()
            process = start_serve(
                dsn,
                config,
                port,
                *receiver,
                poll_interval=poll_interval,
                env={**os.environ, "CBMON_WEBHOOK_SECRET": SECRET},
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait(lambda: ok(f"{base}/readyz"))
                wait(lambda: listening_or_not(base, wake))
                steady = threading.Event()
                if load:  # healthy traffic all along: polls come at the floor's pace
                    threading.Thread(target=healthy, args=(dsn, name, load, steady)).start()
                # The first polls behind us, the breach lands anywhere in a poll interval.
                time.sleep(0.5 + phase * parse_duration(poll_interval))
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
                    conn.execute(
                        "INSERT INTO callback_logs (event_type, status, execution_time) "
                        "SELECT 'pay', 'FAILED', 30 FROM generate_series(1, 50)"
                    )
                    committed = time.perf_counter()  # autocommit: the statement has committed
                arrived = hook.arrived.wait(30)
                steady.set()
                if not arrived:
                    raise SystemExit("no notification within 30s")
                return hook.at - committed
            finally:
                process.terminate()
                process.wait(10)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def healthy(dsn: str, name: str, rate: int, stop: threading.Event) -> None:
    """Successful attempts, one per transaction, at ``rate`` a second until ``stop``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
        started, done = time.perf_counter(), 0
        while not stop.is_set():
            conn.execute(
                "INSERT INTO callback_logs (event_type, status, execution_time) "
                "VALUES ('steady', 'COMPLETED', 40)"
            )
            done += 1
            ahead = done / rate - (time.perf_counter() - started)
            if ahead > 0:
                stop.wait(ahead)


def serve_config(tmp: Path, name: str, extra: str) -> Path:
    """A configuration file for a serve watching schema ``name``, its state kept in ``tmp``."""
    config = tmp / "c.yml"
    tables = ", ".join(f"{t}: {{schema: {name}}}" for t in ("logs", "errors", "queue"))
    config.write_text(f"tables: {{{tables}}}\nalerting: {{state_dir: {tmp}}}\n{extra}\n")
    return config


def listening_or_not(base: str, wake: bool) -> bool:
    state = requests.get(f"{base}/api/v1/status", timeout=5).json()["database"]["wake"]
    return state == "notify" if wake else True


def bench_breach(dsn: str, runs: int = 5) -> None:
    cases = (("1s", False, 0), ("5s", False, 0), ("5s", True, 0), ("5s", True, 1000))
    for poll_interval, wake, load in cases:
        latencies = []
        for run in range(runs):
            with Hook() as hook:
                threading.Thread(target=hook.serve_forever, daemon=True).start()
                try:
                    latencies.append(
                        breach_once(
                            dsn,
                            f"{SCHEMA}_breach_{run}",
                            poll_interval,
                            wake=wake,
                            receiver=["--webhook", hook.url],
                            hook=hook,
                            phase=run / runs,
                            load=load,
                        )
                    )
                finally:
                    hook.shutdown()
        how = "woken by the trigger" if wake else "no trigger"
        how += f", {load} healthy rows/s meanwhile" if load else ", idle otherwise"
        print(
            f"breach committed -> signed webhook received ({runs} runs, poll {poll_interval}, "
            f"{how}, for 0s): median {statistics.median(latencies):.3f}s, "
            f"max {max(latencies):.3f}s"
        )
    bench_alertmanager(dsn, runs)


def bench_alertmanager(dsn: str, runs: int) -> None:
    """The same breach to a real Alertmanager: the moment its API lists the alert, and the
    moment it delivers it to its own webhook receiver (group_wait 0s)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        print("breach committed -> Alertmanager: skipped (no prometheus-alertmanager)")
        return
    listed, delivered = [], []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp, Hook(secret=None) as hook:
            threading.Thread(target=hook.serve_forever, daemon=True).start()
            port = free_port()
            am = f"http://127.0.0.1:{port}"
            config = Path(tmp) / "alertmanager.yml"
            config.write_text(
                json.dumps(
                    {
                        "route": {
                            "receiver": "hook",
                            "group_by": ["alertname"],
                            "group_wait": "0s",
                            "group_interval": "1s",
                        },
                        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url}]}],
                    }
                )
            )
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ]
            )
            seen: list[float] = []
            watching = threading.Event()

            def watch(
                am: str = am, seen: list[float] = seen, watching: threading.Event = watching
            ) -> None:
                session = requests.Session()
                while not watching.is_set():
                    try:
                        if session.get(f"{am}/api/v2/alerts", timeout=2).json():
                            seen.append(time.perf_counter())
                            return
                    except (requests.RequestException, ValueError):
                        pass
                    time.sleep(0.002)

            try:
                wait(lambda am=am: ok(f"{am}/-/ready"))
                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                took = breach_once(
                    dsn,
                    f"{SCHEMA}_am_{run}",
                    "5s",
                    wake=True,
                    receiver=["--alertmanager", am],
                    hook=hook,
                    phase=run / runs,
                )
                delivered.append(took)
                watching.set()
                watcher.join(5)
                if seen:
                    listed.append(took - (hook.at - seen[0]))
            finally:
                watching.set()
                process.terminate()
                process.wait(10)
                hook.shutdown()
    if listed:
        print(
            f"breach committed -> listed by Alertmanager ({len(listed)} runs, poll 5s, woken by "
            f"the trigger): median {statistics.median(listed):.3f}s, max {max(listed):.3f}s"
        )
    print(
        f"breach committed -> delivered by Alertmanager, group_wait 0s ({runs} runs): "
        f"median {statistics.median(delivered):.3f}s, max {max(delivered):.3f}s"
    )


def cluster_cpu(data_dir: Path) -> float:
    """CPU seconds used so far by a PostgreSQL cluster: the postmaster, its live backends,
    and the backends that have ended (the postmaster's reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def bench_cost(seconds: float = 20.0, rate: int = 1000) -> None:
    """The database's CPU while callbacks are logged at ``rate`` rows/s, one row per
    transaction (the most notifications the trigger can cause), on a private cluster."""
    data_dir = Path(tempfile.mkdtemp(prefix="cbmon-bench-cost-")) / "pgdata"
    cases = (
        ("no trigger, cbmon polling every 5s", False, False, "5s"),
        ("trigger, nobody listening", True, False, "5s"),
        ("trigger, cbmon listening (polls at most every 200ms)", True, True, "5s"),
        ("for scale: no trigger, cbmon polling every 200ms", False, False, "200ms"),
    )
    try:
        with EmbeddedPostgres(data_dir) as server:
            base = None
            for label, trigger, listen, interval in cases:
                cpu, polls, commit = cost_once(
                    server.dsn, data_dir, trigger, listen, interval, seconds, rate
                )
                base = cpu if base is None else base
                print(
                    f"database at {rate} rows/s, {label}: {cpu * 100:.1f}% of a core "
                    f"({(cpu - base) * 100:+.1f} points), cbmon {polls:.1f} polls/s, "
                    f"commit p50 {statistics.median(commit) * 1000:.2f} ms "
                    f"p99 {percentile(commit, 0.99) * 1000:.2f} ms"
                )
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def cost_once(
    dsn: str,
    data_dir: Path,
    trigger: bool,
    listen: bool,
    interval: str,
    seconds: float,
    rate: int,
) -> tuple[float, float, list[float]]:
    """(CPU cores used, cbmon's polls per second, commit latencies) for one case."""
    name = f"{SCHEMA}_cost"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    schema.apply(dsn, schema=name, role=None, wake=trigger)
    with tempfile.TemporaryDirectory() as tmp:
        config = serve_config(Path(tmp), name, f"wake: {{listen: {str(listen).lower()}}}")
        port = free_port()
        process = start_serve(dsn, config, port, poll_interval=interval)
        try:
            metrics = f"http://127.0.0.1:{port}/metrics"
            wait(lambda: ok(metrics.replace("metrics", "readyz")))
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
                write(conn, rate, 3.0, [])  # warm up: backends, caches, cbmon's pace
                cpu, polls = cluster_cpu(data_dir), scraped(metrics, "cbmon_polls_total")
                commits: list[float] = []
                write(conn, rate, seconds, commits)
                used = cluster_cpu(data_dir) - cpu
                polled = scraped(metrics, "cbmon_polls_total") - polls
        finally:
            process.terminate()
            process.wait(10)
    return used / seconds, polled / seconds, commits


def write(conn: psycopg.Connection[Any], rate: int, seconds: float, commits: list[float]) -> None:
    """``rate`` single-row transactions per second for ``seconds``, each timed."""
    started = time.perf_counter()
    done = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        ahead = done / rate - elapsed
        if ahead > 0:
            time.sleep(ahead)
        began = time.perf_counter()
        conn.execute(
            "INSERT INTO callback_logs (event_type, status, execution_time) "
            "VALUES ('pay', 'COMPLETED', 40)"
        )
        commits.append(time.perf_counter() - began)
        done += 1


def scraped(url: str, name: str) -> float:
    for line in requests.get(url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise SystemExit(f"{name} not in {url}")


def start_serve(
    dsn: str,
    config: Path,
    port: int,
    *extra: str,
    env: dict[str, str] | None = None,
    poll_interval: str = "1s",
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cbmon",
            "--log-level",
            "warning",
            "serve",
            "--dsn",
            dsn,
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--poll-interval",
            poll_interval,
            *extra,
        ],
        env=env,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leads(url: str) -> bool:
    try:
        return b"cbmon_leader 1.0" in requests.get(url, timeout=2).content
    except requests.RequestException:
        return False


def ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.1)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_fleet(dsn: str, databases: int, repeat: int = 30) -> None:
    """Rendering ``/metrics`` in a fleet: per poll, one database's part against them all."""
    import yaml
    from prometheus_client.exposition import choose_encoder

    from cbmon.sidecar.fleet import Fleet
    from cbmon.web.exposition import by_database

    names = [f"cbmon_bench_fleet_{i}" for i in range(databases)]
    print(f"\nfleet: {databases} databases of 20 event types in one process", flush=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            schema.apply(dsn, schema=name, role=None)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.callback_logs (event_type, status, execution_time) "
                    "SELECT 'event_' || (g % 20), CASE WHEN g % 97 = 0 THEN 'FAILED' "
                    "ELSE 'COMPLETED' END, (g % 700)::float8 FROM generate_series(1, 2000) g"
                ).format(sql.Identifier(name))
            )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fleet.yml"
            config = {
                "listen": "127.0.0.1:0",
                "poll_interval": "1h",  # polled once at start; the renders are timed here
                "wake": {"listen": False},
                "mechanism": {"enabled": False},
                "alerting": {"state_dir": tmp},
                "targets": [
                    {
                        "name": f"db{i}",
                        "dsn": dsn,
                        "tables": {t: {"schema": name} for t in ("logs", "errors", "queue")},
                    }
                    for i, name in enumerate(names)
                ],
            }
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            fleet = Fleet(load_config(path, environ={}))
            fleet.start()
            thread = threading.Thread(target=fleet.run, daemon=True)
            thread.start()
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not all(
                    s.store.last_poll_timestamp for s in fleet.services
                ):
                    time.sleep(0.2)
                accept = "text/plain"
                encoder, _ = choose_encoder(accept)
                body, _ = fleet.exposition.render(accept)
                every = by_database({s.database: s.polled for s in fleet.services})
                whole, part, merge = [], [], []
                for i in range(repeat):
                    started = time.perf_counter()
                    encoder(every)
                    whole.append(time.perf_counter() - started)
                    one = fleet.services[i % databases].database
                    started = time.perf_counter()
                    fleet.exposition.refresh(one)
                    part.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    fleet.exposition.render(accept)
                    merge.append(time.perf_counter() - started)
            finally:
                fleet.stop()
                thread.join(timeout=15)
                fleet.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    ms = 1000 * statistics.median(whole), 1000 * statistics.median(part)
    print(f"  /metrics: {len(body) / 1024:.0f} KiB, {samples:,} samples")
    print(f"  a poll rendering every database (before): median {ms[0]:.1f} ms")
    print(f"  a poll rendering its own database (now):  median {ms[1]:.1f} ms")
    scrape = 1000 * statistics.median(merge)
    print(f"  a scrape after a poll (merge and live):   median {scrape:.1f} ms")
    polls = databases / 5.0  # every database polled every 5 s, the default
    print(
        f"  at the default 5 s poll: {polls * ms[0] / 10:.1f} % of a core before, "
        f"{polls * ms[1] / 10:.2f} % now"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default=os.environ.get("CBMON_TEST_DSN", "postgresql://root@127.0.0.1/test")
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=1_000_000)
    parser.add_argument("--invisible", type=int, default=5_000_000)
    parser.add_argument("--databases", type=int, default=50)
    parser.add_argument("--only", default="polls,lifecycle,serve,breach,cost,invisible")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only & {"polls", "lifecycle", "serve"}:
        build(args.dsn, args.rows)
    if "polls" in only:
        bench_polls(args.dsn, args.new)
    if "lifecycle" in only:
        bench_lifecycle(args.dsn, args.new)
    if "serve" in only:
        bench_serve(args.dsn)
    if "breach" in only:
        bench_breach(args.dsn)
    if "cost" in only:
        bench_cost()
    if "invisible" in only:
        bench_invisible(args.dsn, args.invisible)
    if "fleet" in only:
        bench_fleet(args.dsn, args.databases)


if __name__ == "__main__":
    main()
