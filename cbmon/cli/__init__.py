"""The ``cbmon`` command. Subcommands load lazily, so ``cbmon serve`` never imports pandas."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from cbmon import __version__
from cbmon.errors import CbmonError

# name -> "module:attribute"; each module holds one thin click command.
_COMMANDS = {
    "serve": "cbmon.cli.serve:serve",
    "check": "cbmon.cli.check:check",
    "report": "cbmon.cli.report:report",
    "demo": "cbmon.cli.demo:demo",
    "schema": "cbmon.cli.schema:schema",
    "config": "cbmon.cli.config:config",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cbmon")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    envvar="CBMON_LOG_LEVEL",
    help="How much cbmon logs to stderr.",
)
def cli(log_level: str) -> None:
    """Exact callback metrics, SLO alerts and reports for callback systems in PostgreSQL."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    """Console entry point: domain errors become one line on stderr and their exit code."""
    try:
        code = cli.main(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CbmonError as exc:
        click.echo(f"cbmon: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
