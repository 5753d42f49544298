"""``cbmon demo``: see cbmon at work on an embedded PostgreSQL with simulated callback traffic."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cbmon.cli.options import DURATION
from cbmon.demo.run import DEFAULT_LISTEN, DEFAULT_SCHEMA, DemoOptions, run_demo
from cbmon.demo.scenario import SCENARIOS


@click.command()
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="degraded",
    show_default=True,
    help="steady: healthy; degraded: slow and failing receivers, then recovery; "
    "backlog: stalled receivers and a queue past 5000; mechanism: a drained token bucket, a "
    "disabled route and a stuck listener inside the database; callbacks: receivers down "
    "past the retries (dead letters), slow receivers (end to end), a worker stopped "
    "mid-lease (a duplicate).",
)
@click.option(
    "--duration",
    type=DURATION,
    default=None,
    help="Stop after this long, e.g. 2m [default: run until Ctrl-C, repeating the scenario].",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default=None,
    help=f"Address for the status page and /metrics; port 0 picks a free one [default: "
    f"{DEFAULT_LISTEN}, or a free port when another program has it].",
)
@click.option(
    "--dsn",
    metavar="DSN",
    default=None,
    help="Run against this existing database instead, in --schema (CBMON_DSN is not used).",
)
@click.option(
    "--schema",
    default=DEFAULT_SCHEMA,
    show_default=True,
    help="Schema the demo recreates for its tables (dropped first if it exists).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CBMON_DEMO_DATA_DIR",
    show_envvar=True,
    default=None,
    help="Data directory of the embedded PostgreSQL, used by one demo at a time [default: "
    "pgdata under the cache directory, or a spare beside it when another demo has it].",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=8,
    show_default=True,
    help="Reference workers delivering callbacks.",
)
@click.option(
    "--live/--no-live",
    default=None,
    help="Redraw a panel in place [default: when the output is a terminal].",
)
def demo(
    scenario: str,
    duration: float | None,
    listen: str | None,
    dsn: str | None,
    schema: str,
    data_dir: Path | None,
    workers: int,
    live: bool | None,
) -> None:
    """Run a callback system and cbmon watching it: metrics, states, alerts, then a summary.

    Without --dsn it starts an embedded PostgreSQL (the pgserver package) and stops it on exit.
    """
    options = DemoOptions(
        scenario=scenario,
        duration=duration,
        listen=listen,
        dsn=dsn,
        schema=schema,
        data_dir=data_dir,
        workers=workers,
        live=live,
    )
    code = run_demo(options, sys.stdout)
    if code:
        sys.exit(code)
