"""Benchmark of the sidecar's costs. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_serve.py --dsn postgresql://root@127.0.0.1/test --rows 10000000

Measures, on a log table of ``--rows`` rows (built once in schema ``cbmon_bench`` and reused):
  1. an idle poll (no new rows): median and p99;
  2. consuming ``--new`` new rows: cbmon's rate against PostgreSQL's own aggregate over the
     same id range (the query a hand-written exporter would run);
  3. ``/metrics`` with 200 event types: p50 and p99 of 500 scrapes;
  4. resident memory of a ``cbmon serve`` process after it has polled those rows;
  5. the time from a breach committed in the database to the signed webhook arriving, with
     ``for: 0`` and a 1 s poll interval.
"""

from __future__ import annotations

import argparse
import http.server
import os
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
from cbmon.domain import BUCKETS
from cbmon.reference import schema
from cbmon.sidecar.poller import Poller

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
SAME_FIGURES = f"""
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
        conn.execute(SAME_FIGURES, [low, high]).fetchall()  # the first reader sets hint bits
        trickle = Trickle(dsn)
        trickle.start()
        try:
            same, minimal = [], []
            for _ in range(3):
                same.append(timed(conn, SAME_FIGURES, low, high))
                minimal.append(timed(conn, MINIMAL, low, high))
            started = time.perf_counter()
            polls = 0
            while poller.logs.high_water is None or poller.logs.high_water < high:
                polls += 1
                poller.poll(reading)
            ours = time.perf_counter() - started
            for _ in range(3):
                same.append(timed(conn, SAME_FIGURES, low, high))
        finally:
            trickle.stop()
        count = high - low
        print(
            f"consuming a committed burst of {count:,} rows while 1000 rows/s arrive: "
            f"cbmon {ours:.3f}s ({polls} polls, {poller.logs.open_gap_ids} ids in open gaps)"
        )
        for name, seconds in (
            ("same figures", statistics.median(same)),
            ("minimal", statistics.median(minimal)),
        ):
            print(
                f"  PostgreSQL's own GROUP BY over the same ids, {name}: {seconds:.3f}s "
                f"(median); cbmon's time / its time = {ours / seconds:.2f}"
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


def bench_breach(dsn: str, runs: int = 5) -> None:
    latencies = []
    for run in range(runs):
        name = f"{SCHEMA}_breach_{run}"
        schema.apply(dsn, schema=name, role=None)
        arrived = threading.Event()

        class Hook(http.server.BaseHTTPRequestHandler):
            signal = arrived

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.signal.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "c.yml"
            tables = ", ".join(f"{t}: {{schema: {name}}}" for t in ("logs", "errors", "queue"))
            config.write_text(f"tables: {{{tables}}}\nslo: {{for: 0s, min_events: 10}}\n")
            port = free_port()
            process = start_serve(
                dsn,
                config,
                port,
                "--webhook",
                f"http://127.0.0.1:{hook.server_address[1]}/",
                env={**os.environ, "CBMON_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8},
            )
            try:
                metrics = f"http://127.0.0.1:{port}/metrics"
                wait(lambda url=metrics: leads(url))
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
                    started = time.perf_counter()
                    conn.execute(
                        "INSERT INTO callback_logs (event_type, status, execution_time) "
                        "SELECT 'pay', 'FAILED', 30 FROM generate_series(1, 50)"
                    )
                arrived.wait(10)
                latencies.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait(10)
                hook.shutdown()
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    print(
        f"breach committed -> signed webhook received ({runs} runs, poll 1s, for 0s): "
        f"median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s "
        "(goal < poll interval + 1s = 2s)"
    )


def start_serve(
    dsn: str, config: Path, port: int, *extra: str, env: dict[str, str] | None = None
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
            "1s",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default=os.environ.get("CBMON_TEST_DSN", "postgresql://root@127.0.0.1/test")
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=1_000_000)
    args = parser.parse_args()
    build(args.dsn, args.rows)
    bench_polls(args.dsn, args.new)
    bench_serve(args.dsn)
    bench_breach(args.dsn)


if __name__ == "__main__":
    main()
