"""``cbmon config``: validate a configuration file."""

from __future__ import annotations

from pathlib import Path

import click

from cbmon.cli.options import config_option
from cbmon.config import load_config
from cbmon.db.connect import describe
from cbmon.durations import format_duration
from cbmon.errors import ConfigError
from cbmon.slo import wording
from cbmon.slo.objectives import AVG_LATENCY, BACKLOG, SUCCESS_RATE


@click.group()
def config() -> None:
    """Configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@config_option
def check(file: Path | None, config_path: Path | None) -> None:
    """Validate FILE (or --config, or CBMON_CONFIG): prints a summary, or one line per
    problem and exits 2. FILE, when given, is the one checked."""
    file = file or config_path
    if file is None:
        raise ConfigError("no file to check: give FILE, --config FILE or CBMON_CONFIG")
    # Only the file: CBMON_* settings from the environment are not part of what it says.
    loaded = load_config(file, environ={})
    tables = loaded.tables
    baseline = loaded.baseline
    lines = [
        f"{file}: ok",
        f"  logs    {tables.logs.table_schema}.{tables.logs.table}",
        f"  errors  {tables.errors.table_schema}.{tables.errors.table}",
        f"  queue   {tables.queue.table_schema}.{tables.queue.table}",
        *(
            f"  {objective.label:<13} {wording.bounds(objective, baseline.limit(objective.slo))}"
            for objective in (SUCCESS_RATE, AVG_LATENCY, BACKLOG)
        ),
        f"  poll every {format_duration(loaded.file.poll_interval)}, "
        f"listen on {loaded.file.listen}",
    ]
    if loaded.primary_dsn is not None:
        # What a standby or a transaction pooler cannot give: the fence, the lock, LISTEN.
        lines.append(f"  primary {describe(loaded.primary_dsn)}: fence, leader lock, LISTEN")
    for target in loaded.fleet:  # each database of targets:, and what it sets apart
        logs = target.tables.logs
        lines.append(
            f"  database {target.database}: {describe(target.dsn or '')}, "
            f"{logs.table_schema}.{logs.table}, poll every "
            f"{format_duration(target.file.poll_interval)}"
        )
    click.echo("\n".join(lines))
