"""``cbmon check``: judge the baseline once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cbmon.check import CheckError, run_check, to_json, to_table
from cbmon.cli.options import build_config, config_option, dsn_option, format_option, window_option
from cbmon.errors import CbmonError


@click.command()
@dsn_option
@config_option
@window_option()
@format_option(["table", "json"], "table")
def check(
    dsn: str | None, config_path: Path | None, window: float | None, output_format: str
) -> None:
    """Evaluate success rate, latency and backlog over the window, straight from the database.

    Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    (the database cannot be read or the configuration is wrong).
    """
    try:
        config = build_config(config_path, dsn)
        result = run_check(config, window or config.file.slo.window)
    except CbmonError as exc:
        # Nagios reads anything the check cannot judge as UNKNOWN, bad configuration included.
        click.echo(f"CBMON UNKNOWN - {exc}")
        sys.exit(CheckError.exit_code)
    click.echo(to_json(result) if output_format == "json" else to_table(result))
    sys.exit(result.exit_code)
