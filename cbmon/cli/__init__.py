"""The ``cbmon`` command. Subcommands load lazily, so ``cbmon serve`` never imports pandas.

Options of the group itself (``--log-level``, ``--log-format``) are accepted after the
subcommand too: every
command is given them as it loads (:func:`_adopt`), with the note on durations under the
options of every command that takes one.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from types import TracebackType

import click

from cbmon import __version__, secrets
from cbmon.cli import logs
from cbmon.cli.options import DURATIONS_NOTE, Duration
from cbmon.errors import CbmonError

# name -> "module:attribute"; each module holds one thin click command.
_COMMANDS = {
    "serve": "cbmon.cli.serve:serve",
    "check": "cbmon.cli.check:check",
    "report": "cbmon.cli.report:report",
    "demo": "cbmon.cli.demo:demo",
    "schema": "cbmon.cli.schema:schema",
    "config": "cbmon.cli.config:config",
    "rules": "cbmon.cli.rules:rules",
}


LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
LOG_FORMATS = click.Choice(list(logs.FORMATS), case_sensitive=False)
LOG_FORMAT_HELP = (
    "How each log line is written: text, or json (one JSON object per line, as the "
    "Prometheus exporters' --log.format=json)"
)


def _log_level_after(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--log-level`` given after the subcommand: the group set up logging already."""
    if value is not None:
        logging.getLogger().setLevel(value.upper())


def _log_format_after(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--log-format`` given after the subcommand: the group set up logging already."""
    if value is not None:
        logs.use_format(value)


def _group_options() -> list[click.Option]:
    """The group's options as every command takes them after its name too."""
    return [
        click.Option(
            ["--log-level"],
            type=LOG_LEVELS,
            default=None,
            expose_value=False,
            callback=_log_level_after,
            help="How much cbmon logs to stderr (here or before the command) "
            "[default: info, or CBMON_LOG_LEVEL].",
        ),
        click.Option(
            ["--log-format"],
            type=LOG_FORMATS,
            default=None,
            expose_value=False,
            callback=_log_format_after,
            help=f"{LOG_FORMAT_HELP}; here or before the command "
            "[default: text, or CBMON_LOG_FORMAT].",
        ),
    ]


def _adopt(command: click.Command) -> click.Command:
    """Give a command (and a group's commands) the group's options and the durations note."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _adopt(sub)
        return command
    names = {param.name for param in command.params}
    command.params.extend(option for option in _group_options() if option.name not in names)
    takes_durations = any(isinstance(param.type, Duration) for param in command.params)
    if takes_durations and command.epilog is None:
        command.epilog = DURATIONS_NOTE
    return command


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
        return _adopt(command)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=DURATIONS_NOTE,
)
@click.version_option(__version__, prog_name="cbmon")
@click.option(
    "--log-level",
    type=LOG_LEVELS,
    default="info",
    show_default=True,
    envvar="CBMON_LOG_LEVEL",
    help="How much cbmon logs to stderr; also accepted after the command.",
)
@click.option(
    "--log-format",
    type=LOG_FORMATS,
    default="text",
    show_default=True,
    envvar="CBMON_LOG_FORMAT",
    help=f"{LOG_FORMAT_HELP}; also accepted after the command.",
)
def cli(log_level: str, log_format: str) -> None:
    """Exact callback metrics, SLO alerts and reports for callback systems in PostgreSQL."""
    logs.configure(log_level, log_format)


def main() -> None:
    """Console entry point: domain errors become one line on stderr and their exit code."""
    sys.excepthook = _scrubbed_excepthook
    if any("\x00" in arg for arg in sys.argv[1:]):
        click.echo("cbmon: an argument holds a NUL character", err=True)
        sys.exit(2)
    try:
        # The name is cbmon however Python was started (`python -m cbmon`, a test runner's
        # `python -m pytest`): click would otherwise take it from the interpreter's command
        # line, and it also names the shell completion variable, _CBMON_COMPLETE.
        code = cli.main(prog_name="cbmon", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _last_words("Aborted.")
        sys.exit(130)
    except click.ClickException as exc:
        _last_words(_usage_line(exc))
        sys.exit(exc.exit_code)
    except CbmonError as exc:
        _last_words(f"cbmon: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _last_words(text: str) -> None:
    """Why the command stops, on stderr: one line, or one JSON record with ``--log-format
    json`` so that a log collector reads it like every line before it."""
    if logs.json_enabled():
        logging.getLogger("cbmon").error("%s", text.removeprefix("cbmon: "))
    else:
        click.echo(secrets.scrub(text), err=True)


def _scrubbed_excepthook(
    kind: type[BaseException], value: BaseException, trace: TracebackType | None
) -> None:
    """A bug's traceback is still printed, with every secret masked (in a JSON record with
    ``--log-format json``)."""
    if logs.json_enabled():
        logging.getLogger("cbmon").critical("unexpected error", exc_info=(kind, value, trace))
        return
    text = "".join(traceback.format_exception(kind, value, trace))
    sys.stderr.write(secrets.scrub(text))


def _usage_line(exc: click.ClickException) -> str:
    """Click's error as one line: the command and the message, and where to look for help."""
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        return f"{exc.ctx.command_path}: {exc.format_message()} (see --help)"
    return f"cbmon: {exc.format_message()}"
