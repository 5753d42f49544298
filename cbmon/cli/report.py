"""``cbmon report``: how callbacks did over a period, from the command line.

Exit codes: 0 done; 1 the database failed; 2 bad usage or configuration; with ``--fail-on``,
3 when the worst verdict is a warning and 4 when it is critical.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cbmon.cli.options import (
    DURATION,
    OneLineCommand,
    build_config,
    config_option,
    dsn_option,
    format_option,
)
from cbmon.domain import Level
from cbmon.errors import ConfigError
from cbmon.report import FORMATS, build_report, renderer
from cbmon.report.period import PeriodRequest, check, parse_step, parse_time
from cbmon.report.progress import Progress
from cbmon.report.query import ReportRequest

FAIL_EXIT = {Level.WARNING: 3, Level.CRITICAL: 4}


@click.command(cls=OneLineCommand)
@dsn_option
@config_option
@click.option(
    "--since",
    type=DURATION,
    default=None,
    help="Report the period this long before --to (or now) [default: 24h].",
)
@click.option(
    "--from",
    "start",
    metavar="TIME",
    default=None,
    help="Start of the period, ISO 8601 (UTC unless it has an offset).",
)
@click.option(
    "--to",
    "end",
    metavar="TIME",
    default=None,
    help="End of the period (exclusive), ISO 8601 [default: now].",
)
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    metavar="NAME",
    help="Only this event type; repeat for several. NULL or empty ones are 'unknown'.",
)
@click.option(
    "--by",
    metavar="STEP",
    default=None,
    help="Also give the figures per step: hour, day, minute or a duration such as 5m (buckets "
    "start at whole steps in UTC) [default: none; html charts pick a step giving at least "
    "10 points].",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Also give the figures of the period of the same length just before.",
)
@format_option(list(FORMATS), "table", aliases={"md": "markdown"})
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report to FILE instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["warning", "critical"]),
    default=None,
    help="Exit 3 (warning) or 4 (critical) when the worst verdict reaches this level.",
)
@click.option(
    "--top",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="How many of the most frequent error messages to list.",
)
@click.option(
    "--statement-timeout",
    type=DURATION,
    default="10m",
    show_default=True,
    help="Longest any single report query may run on the server.",
)
def report(
    dsn: str | None,
    config_path: Path | None,
    since: float | None,
    start: str | None,
    end: str | None,
    event_types: tuple[str, ...],
    by: str | None,
    compare: bool,
    output_format: str,
    output: Path | None,
    fail_on: str | None,
    top: int,
    statement_timeout: float,
) -> None:
    """Calls, failures, success rate, latency percentiles and errors per event type over a
    period, and what became of the callbacks (delivered, dead, first try, tries, duplicates,
    queue wait and end to end), judged against the baseline; the queue now; the most frequent
    errors."""
    period = PeriodRequest(
        since=since,
        start=parse_time(start, "--from") if start is not None else None,
        end=parse_time(end, "--to") if end is not None else None,
    )
    check(period)
    if statement_timeout <= 0:
        raise ConfigError("--statement-timeout: must be above 0s")
    config = build_config(config_path, dsn)
    step = parse_step(by) if by is not None else None
    request = ReportRequest(
        period=period,
        event_types=tuple(dict.fromkeys(event_types)) or None,
        by=step if step is not None or output_format != "html" else "auto",
        top=top,
        compare=compare,
    )
    result = build_report(
        config, request, progress=Progress(sys.stderr), statement_timeout=statement_timeout
    )
    text = renderer(output_format)(result)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--output: cannot write {output}: {exc.strerror or exc}") from None
    worst = result.verdict
    if fail_on is not None and worst >= Level[fail_on.upper()]:
        # SystemExit, not click's Exit: in non-standalone mode click returns Exit's code
        # instead of exiting, and the console entry point would turn it into 0.
        sys.exit(FAIL_EXIT[worst])
