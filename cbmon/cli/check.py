"""``cbmon check``: judge the baseline once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cbmon.check import DEFAULT_TIMEOUT, CheckError, run_check, to_json, to_table
from cbmon.cli.options import (
    DURATION,
    build_config,
    config_option,
    dsn_option,
    format_option,
    window_option,
)
from cbmon.errors import CbmonError


@click.command()
@dsn_option
@config_option
@window_option()
@format_option(["table", "json"], "table")
@click.option(
    "--timeout",
    type=DURATION,
    default=DEFAULT_TIMEOUT,
    show_default="10s",
    help="Longest the whole check may take; past it the answer is UNKNOWN (3).",
)
def check(
    dsn: str | None,
    config_path: Path | None,
    window: float | None,
    output_format: str,
    timeout: float,
) -> None:
    """Evaluate success rate, latency and backlog over the window, straight from the database.

    Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    (the database cannot be read or the configuration is wrong).
    """
    try:
        config = build_config(config_path, dsn)
        result = run_check(config, window or config.file.slo.window, timeout)
    except CbmonError as exc:
        # Nagios reads anything the check cannot judge as UNKNOWN, bad configuration included.
        click.echo(f"CBMON UNKNOWN - {exc}")
        sys.exit(CheckError.exit_code)
    click.echo(to_json(result) if output_format == "json" else to_table(result))
    sys.exit(result.exit_code)
