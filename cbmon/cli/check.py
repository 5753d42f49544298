"""``cbmon check``: judge the baseline once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

A monitoring agent reads any exit code it does not expect as a problem: a typo in the
command must come back as UNKNOWN (3), never as CRITICAL (2), so this command answers its
usage errors itself, in the plugin's own words, instead of the CLI's exit 2.
"""

from __future__ import annotations

import logging
import sys
import urllib.parse
from pathlib import Path
from typing import NoReturn

import click

from cbmon import secrets
from cbmon.check import (
    DEFAULT_TIMEOUT,
    FORMATS,
    CheckError,
    CheckResult,
    run_budget_check,
    run_check,
    to_json,
    to_nagios,
    to_table,
    unknown_json,
)
from cbmon.cli.options import (
    POSITIVE_DURATION,
    OneLineCommand,
    build_config,
    config_option,
    dsn_option,
    format_option,
    window_option,
)
from cbmon.durations import format_duration
from cbmon.errors import CbmonError
from cbmon.slo.budget import BUDGET_WARNING

log = logging.getLogger(__name__)
RENDER = {"table": to_table, "json": to_json, "nagios": to_nagios}


def unknown(message: str, output_format: str = "table") -> NoReturn:
    """Answer UNKNOWN: one status line (or a JSON object) on stdout, exit 3."""
    text = secrets.scrub(message)
    click.echo(unknown_json(text) if output_format == "json" else f"CBMON UNKNOWN - {text}")
    sys.exit(CheckError.exit_code)


class _PluginCommand(OneLineCommand):
    """Bad flags are UNKNOWN (3) too."""

    def usage_error(self, exc: click.UsageError) -> NoReturn:
        unknown(f"{exc.format_message()} (see cbmon check --help)")


@click.command(cls=_PluginCommand)
@dsn_option
@config_option
@window_option()
@format_option(list(FORMATS), "table", help_text="Output format; nagios adds performance data")
@click.option(
    "--timeout",
    type=POSITIVE_DURATION,
    default=DEFAULT_TIMEOUT,
    help="Longest the whole check may take; past it the answer is UNKNOWN (3) "
    f"[default: {format_duration(DEFAULT_TIMEOUT)}].",
)
@click.option(
    "--from-url",
    metavar="URL",
    default=None,
    help="Ask a running `cbmon serve` at URL (e.g. http://cbmon:9863) for its judgement "
    "instead of reading the database; its own window applies.",
)
@click.option(
    "--budget",
    is_flag=True,
    help="Judge the error budgets over their objectives' periods instead of the window: "
    f"WARNING below {int(BUDGET_WARNING * 100)}% left, CRITICAL when spent.",
)
def check(
    dsn: str | None,
    config_path: Path | None,
    window: float | None,
    output_format: str,
    timeout: float,
    from_url: str | None,
    budget: bool,
) -> None:
    """Evaluate success rate, latency and backlog over the window, straight from the database,
    and the callback mechanism inside it (NOTIFY queue, scheduler jobs, rate limiter, routes).

    Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    (the database cannot be read, the configuration or the command line is wrong). The
    output is the same wherever it goes: choose --format nagios for a monitoring agent.
    """
    try:
        if budget and window is not None:
            raise CheckError("--window cannot be used with --budget: each objective has its period")
        if from_url is not None:
            result = _from_url(from_url, window, timeout, budget)
        elif budget:
            result = run_budget_check(build_config(config_path, dsn), timeout)
        else:
            config = build_config(config_path, dsn)
            chosen = config.file.slo.window if window is None else window
            result = run_check(config, chosen, timeout)
    except CbmonError as exc:
        # Nagios reads anything the check cannot judge as UNKNOWN, bad configuration included.
        unknown(str(exc), output_format)
    except Exception as exc:  # a bug must not page as CRITICAL either: UNKNOWN, with its trace
        log.exception("cbmon check failed")
        unknown(f"internal error: {type(exc).__name__}: {exc}", output_format)
    click.echo(RENDER[output_format](result))
    sys.exit(result.exit_code)


def _from_url(url: str, window: float | None, timeout: float, budget: bool) -> CheckResult:
    from cbmon.web.client import check_from_url

    secrets.remember(urllib.parse.urlsplit(url).password)  # basic auth in the URL
    secrets.hide_from_process_title(sys.argv)
    if window is not None:
        raise CheckError("--window cannot be used with --from-url: the serve judges its own")
    return check_from_url(url, timeout, budget=budget)
