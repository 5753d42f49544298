"""``cbmon check``: judge the baseline once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path

import click

from cbmon import secrets
from cbmon.check import (
    DEFAULT_TIMEOUT,
    CheckError,
    CheckResult,
    run_check,
    to_json,
    to_table,
)
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
@click.option(
    "--from-url",
    metavar="URL",
    default=None,
    help="Ask a running `cbmon serve` at URL (e.g. http://cbmon:9863) for its judgement "
    "instead of reading the database; its own window applies.",
)
def check(
    dsn: str | None,
    config_path: Path | None,
    window: float | None,
    output_format: str,
    timeout: float,
    from_url: str | None,
) -> None:
    """Evaluate success rate, latency and backlog over the window, straight from the database.

    Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    (the database cannot be read or the configuration is wrong).
    """
    try:
        if from_url is not None:
            result = _from_url(from_url, window, timeout)
        else:
            config = build_config(config_path, dsn)
            result = run_check(config, window or config.file.slo.window, timeout)
    except CbmonError as exc:
        # Nagios reads anything the check cannot judge as UNKNOWN, bad configuration included.
        click.echo(f"CBMON UNKNOWN - {exc}")
        sys.exit(CheckError.exit_code)
    click.echo(to_json(result) if output_format == "json" else to_table(result))
    sys.exit(result.exit_code)


def _from_url(url: str, window: float | None, timeout: float) -> CheckResult:
    from cbmon.status_client import check_from_url

    secrets.remember(urllib.parse.urlsplit(url).password)  # basic auth in the URL
    secrets.hide_from_process_title(sys.argv)
    if window is not None:
        raise CheckError("--window cannot be used with --from-url: the serve judges its own")
    return check_from_url(url, timeout)
