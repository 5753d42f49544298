"""How quickly cbmon's parts react. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_reaction.py --dsn postgresql://root@127.0.0.1/test

The tests check the order of these events; the seconds between them are measured here:
  1. a reference worker, idle with a 30 s poll interval: a queued row committed with its
     NOTIFY, to the row's delivery;
  2. two ``cbmon serve`` replicas polling every second: SIGKILL of the leader, and SIGSTOP
     (frozen, its lock session left open), to the alerts that fire re-sent by the survivor;
  3. ``cbmon demo --scenario backlog`` on the embedded PostgreSQL: start to the /metrics URL
     on screen, and SIGTERM to exit while the receivers stall.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from bench_serve import free_port, leads, start_serve, wait
from psycopg import sql

from cbmon.reference import schema
from cbmon.reference.worker import Worker, WorkerOptions


class Hook(http.server.ThreadingHTTPServer):
    """Answers 200 to every POST and notes when each arrived."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: list[float] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def wait(self, count: int, timeout: float = 60.0) -> float:
        """The moment (perf_counter) the ``count``-th POST arrived."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise SystemExit(f"timed out waiting for POST number {count}")
            return self.arrivals[count - 1]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.arrived:
            self.server.arrivals.append(time.perf_counter())
            self.server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def hook() -> Iterator[Hook]:
    server = Hook()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def own_schema(dsn: str) -> Iterator[str]:
    name = f"cbmon_bench_{secrets.token_hex(4)}"
    schema.apply(dsn, schema=name, role=None)
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def bench_worker_wake(dsn: str, runs: int = 5) -> None:
    latencies = []
    with own_schema(dsn) as name, hook() as target:
        options = WorkerOptions(default_url=target.url, poll_interval=30.0)
        worker = Worker(dsn, schema=name, options=options)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            worker.ready.wait(10)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
                for run in range(runs):
                    time.sleep(1)  # idle again, well inside its 30 s poll interval
                    started = time.perf_counter()
                    with conn.transaction():  # as the mechanism's trigger does it
                        conn.execute("INSERT INTO callback_queue (event_type) VALUES ('bench')")
                        conn.execute("NOTIFY callback_queue, 'bench'")
                    latencies.append(target.wait(run + 1) - started)
        finally:
            worker.stop.set()
            thread.join(10)
    print(
        f"idle worker (poll interval 30s) woken by NOTIFY, commit -> delivery ({runs} runs): "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


def bench_failover(dsn: str, stop: signal.Signals, runs: int = 3) -> None:
    """The leader gets ``stop`` (SIGKILL: it dies; SIGSTOP: it freezes, holding its lock
    session open until the server ends it)."""
    took = []
    for _ in range(runs):
        with own_schema(dsn) as name, hook() as target, tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "c.yml"
            tables = ", ".join(f"{t}: {{schema: {name}}}" for t in ("logs", "errors", "queue"))
            config.write_text(f"tables: {{{tables}}}\nslo: {{for: 0s, min_events: 10}}\n")
            ports = free_port(), free_port()
            # Replicas share a cluster secret, as deployed ones should (docs/alerting.md).
            env = {**os.environ, "CBMON_CLUSTER_SECRET": secrets.token_hex(16)}
            processes = [
                start_serve(dsn, config, port, "--webhook", target.url, env=env) for port in ports
            ]
            try:
                urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
                wait(lambda urls=urls: sum(leads(url) for url in urls) == 1)
                leader = next(i for i, url in enumerate(urls) if leads(url))
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
                    conn.execute(
                        "INSERT INTO callback_logs (event_type, status, execution_time) "
                        "SELECT 'pay', 'FAILED', 30 FROM generate_series(1, 50)"
                    )
                target.wait(2)  # overall and per event type
                sent = len(target.arrivals)
                killed = time.perf_counter()
                processes[leader].send_signal(stop)
                took.append(target.wait(sent + 1) - killed)
            finally:
                for process in processes:
                    process.send_signal(signal.SIGCONT)
                    process.terminate()
                    process.wait(10)
    what = "killed" if stop == signal.SIGKILL else "frozen (SIGSTOP)"
    print(
        f"leader {what} -> survivor re-sends what fires ({runs} runs, poll 1s): "
        f"median {statistics.median(took):.2f}s, max {max(took):.2f}s"
    )


def bench_demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "cbmon", "demo", "--no-live", "--scenario", "backlog"),
                *("--duration", "60s", "--listen", "127.0.0.1:0", "--data-dir", f"{tmp}/pgdata"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "CBMON_LOG_LEVEL": "warning"},
        )
        assert process.stdout is not None
        shown = None
        for line in process.stdout:
            if shown is None and re.search(r"metrics +http://\S+/metrics", line):
                shown = time.perf_counter() - started
            if "phase stalled" in line:
                break
        time.sleep(3)  # the workers are now waiting on stalled receivers
        stopping = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        stopped = time.perf_counter() - stopping
    print(
        f"cbmon demo on the embedded PostgreSQL: /metrics URL shown after {shown or 0:.1f}s; "
        f"SIGTERM with stalled receivers -> exit {process.returncode} after {stopped:.1f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn", default=os.environ.get("CBMON_TEST_DSN", "postgresql://root@127.0.0.1/test")
    )
    args = parser.parse_args()
    bench_worker_wake(args.dsn)
    bench_failover(args.dsn, signal.SIGKILL)
    bench_failover(args.dsn, signal.SIGSTOP)
    bench_demo()


if __name__ == "__main__":
    main()
