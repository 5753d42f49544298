"""How ``cbmon report`` compares with PostgreSQL's own aggregate query over the same rows.

Builds (or reuses) ``--rows`` attempts in a schema of their own, generated inside the database,
then times the hand-written single aggregate query a DBA would run (calls, failures, average,
p50/p95/p99 and max latency per event type) against ``cbmon report --format json`` over the
same period, and measures the report's peak resident memory. Prints both and the ratio.

    .venv/bin/python bench/bench_report.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from cbmon.reference import schema

DSN = "postgresql://root@127.0.0.1:5432/test"
START, END = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
TIME_GOAL, MEMORY_GOAL_MB = 1.5, 300
EVENT_TYPES = (
    "order_created",
    "order_paid",
    "order_shipped",
    "refund_issued",
    "invoice_sent",
    "stock_low",
    "user_signup",
    "payment_failed",
)
# Separate statements: parameters bind to one statement at a time.
GENERATE = (
    "SELECT setseed(0.42)",
    """
    INSERT INTO callback_logs (event_type, status, execution_time, created_at)
    SELECT (%(types)s::text[])[1 + (i %% 8)],
           CASE WHEN random() < 0.004 THEN 'FAILED' ELSE 'COMPLETED' END,
           CASE WHEN random() < 0.005 THEN NULL
                ELSE round((random() * random() * 400)::numeric, 3)::float8 END,
           timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second' * 86400 / %(rows)s
    FROM generate_series(1, %(rows)s) AS i
    """,
    """
    INSERT INTO callback_errors (event_type, error_message, created_at)
    SELECT event_type, 'HTTP ' || (500 + id %% 4), created_at
    FROM callback_logs WHERE status <> 'COMPLETED'
    """,
    """
    INSERT INTO callback_queue (event_type, created_at)
    SELECT 'order_created', now() - i * interval '1 second' FROM generate_series(1, 250) AS i
    """,
    "CREATE TABLE bench_meta AS SELECT %(rows)s::bigint AS rows",
)
BASELINE = """
SELECT event_type,
       count(*),
       count(*) FILTER (WHERE status <> 'COMPLETED'),
       avg(execution_time),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY execution_time),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY execution_time),
       max(execution_time)
FROM callback_logs
WHERE created_at >= %s AND created_at < %s
GROUP BY event_type
"""


def build(dsn: str, name: str, rows: int, rebuild: bool) -> None:
    """Generate the rows unless a table of exactly that size is already there."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
        if not rebuild:
            try:
                found = conn.execute(
                    "SELECT (SELECT rows FROM bench_meta), (SELECT count(*) FROM callback_logs)"
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                found = None
            if found is not None and found[0] == found[1] == rows:
                print(f"reusing {rows:,} rows in schema {name}")
                return
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    schema.apply(dsn, schema=name, role=None)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
        params = {"types": list(EVENT_TYPES), "rows": rows}
        for statement in GENERATE:
            conn.execute(statement, params)
        conn.execute("VACUUM ANALYZE callback_logs")
        conn.execute("VACUUM ANALYZE callback_errors")
    print(f"generated {rows:,} rows in schema {name} in {time.monotonic() - started:.1f}s")


def time_baseline(dsn: str, name: str) -> tuple[float, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(name)))
        started = time.monotonic()
        rows = conn.execute(BASELINE, [START, END]).fetchall()
        return time.monotonic() - started, rows


def agree(rows: list[tuple[Any, ...]], data: dict[str, Any]) -> bool:
    """The report's per-type figures equal the plain query's (the generated data has no
    invalid durations, so both see the same values)."""
    report = {
        row["event_type"]: (
            row["calls"],
            row["failures"],
            row["p50_ms"],
            row["p95_ms"],
            row["p99_ms"],
            row["max_ms"],
        )
        for row in data["event_types"]
    }
    plain = {row[0]: (row[1], row[2], row[4], row[5], row[6], row[7]) for row in rows}
    return report == plain


def time_report(dsn: str, config: Path, extra: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Wall time, peak RSS in MB and the JSON of one ``cbmon report`` process."""
    cbmon = Path(sys.executable).with_name("cbmon")
    command = [
        str(cbmon),
        "report",
        "--dsn",
        dsn,
        "--config",
        str(config),
        "--from",
        START,
        "--to",
        END,
        "--format",
        "json",
        *extra,
    ]
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.returncode != 0:
            raise SystemExit(f"cbmon report failed ({process.returncode}): {stderr.strip()}")
        out.seek(0)
        data: dict[str, Any] = json.loads(out.read())
    # ru_maxrss is in KiB on Linux.
    return elapsed, usage.ru_maxrss / 1024, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("CBMON_TEST_DSN", DSN))
    parser.add_argument("--rows", type=int, default=10_000_000)
    # A schema of its own: other benchmarks append to theirs, which would change the rows.
    parser.add_argument("--schema", default="cbmon_bench_report")
    parser.add_argument("--rebuild", action="store_true", help="generate the rows again")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--by", choices=["hour", "day"], help="also time the report with --by")
    args = parser.parse_args()

    build(args.dsn, args.schema, args.rows, args.rebuild)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yml"
        config.write_text(
            "tables:\n"
            + "".join(f"  {t}: {{schema: {args.schema}}}\n" for t in ("logs", "errors", "queue")),
            encoding="utf-8",
        )
        time_baseline(args.dsn, args.schema)  # warm the cache and set hint bits first
        baselines, reports, peaks = [], [], []
        for _ in range(args.repeat):
            elapsed, rows = time_baseline(args.dsn, args.schema)
            baselines.append(elapsed)
            elapsed, peak, data = time_report(args.dsn, config, [])
            reports.append(elapsed)
            peaks.append(peak)
        by_figures = None
        if args.by:
            by_figures = time_report(args.dsn, config, ["--by", args.by])[:2]

    calls = data["overall"]["calls"]
    baseline, report, peak = min(baselines), min(reports), max(peaks)
    ratio = report / baseline
    print(f"rows in period            {calls:,}")
    print(f"figures agree             {'yes' if agree(rows, data) else 'NO'}")
    print(f"PostgreSQL aggregate      {baseline:.2f} s (best of {args.repeat})")
    print(f"cbmon report              {report:.2f} s (best of {args.repeat})")
    print(
        f"ratio                     {ratio:.2f}x  (goal < {TIME_GOAL}x: "
        f"{'met' if ratio < TIME_GOAL else 'MISSED'})"
    )
    print(
        f"cbmon report peak RSS     {peak:.0f} MB  (goal < {MEMORY_GOAL_MB} MB: "
        f"{'met' if peak < MEMORY_GOAL_MB else 'MISSED'})"
    )
    if by_figures is not None:
        print(
            f"cbmon report --by {args.by:<6}  {by_figures[0]:.2f} s, peak RSS "
            f"{by_figures[1]:.0f} MB"
        )


if __name__ == "__main__":
    main()
