"""Options shared by every command, so one name always means one thing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from cbmon import secrets
from cbmon.config import DSN_ENV, Config, load_config, secrets_of
from cbmon.durations import format_duration, parse_duration
from cbmon.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

# Shown under the options of every command that takes a duration.
DURATIONS_NOTE = "Durations are written the Prometheus way: 500ms, 5s, 1m, 24h, 7d, 1h30m."


class Duration(click.ParamType[float, Any]):
    """A duration the Prometheus way (``500ms``, ``5s``, ``1m``, ``24h``), as seconds.

    ``positive``: zero is refused (a window or a timeout of nothing means nothing).
    """

    name = "duration"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if self.positive and seconds <= 0:
            self.fail(f"{value!r} is not above 0s", param, ctx)
        return seconds


DURATION = Duration()
POSITIVE_DURATION = Duration(positive=True)


class OneLineCommand(click.Command):
    """Bad flags become one ``cbmon: ...`` line (exit 2) instead of click's usage block."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            self.usage_error(exc)

    def usage_error(self, exc: click.UsageError) -> NoReturn:
        raise ConfigError(exc.format_message()) from None


class FormatChoice(click.Choice[str]):
    """A choice of output formats that also takes their short names (``md``)."""

    def __init__(self, choices: list[str], aliases: Mapping[str, str]) -> None:
        super().__init__(choices, case_sensitive=False)
        self.aliases = dict(aliases)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        name = str(value).lower()
        return super().convert(self.aliases.get(name, name), param, ctx)


def dsn_option(func: F) -> F:
    return click.option(
        "--dsn",
        metavar="DSN",
        default=None,
        help=f"libpq connection string or URI of the monitored database (or set {DSN_ENV}).",
    )(func)


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="CBMON_CONFIG",
        help="YAML configuration file (or set CBMON_CONFIG).",
    )(func)


def from_config(value: str, key: str) -> str:
    """A default in words: ``[default: 5m, or slo.window from the configuration]``."""
    return f"[default: {value}, or {key} from the configuration]"


def window_option(default: str = "5m") -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--window",
            type=POSITIVE_DURATION,
            default=None,
            help="Sliding window the indicators are judged over "
            + from_config(default, "slo.window")
            + ".",
        )(func)

    return decorate


def format_option(
    choices: list[str],
    default: str,
    aliases: Mapping[str, str] | None = None,
    help_text: str = "Output format",
) -> Callable[[F], F]:
    shorter = f" ({', '.join(f'{a} for {n}' for a, n in aliases.items())})" if aliases else ""

    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "output_format",
            type=FormatChoice(choices, aliases or {}),
            default=default,
            show_default=True,
            help=f"{help_text}{shorter}.",
        )(func)

    return decorate


def build_config(
    config_path: Path | None,
    dsn: str | None,
    overrides: Mapping[str, Any] | None = None,
    webhook_secret: str | None = None,
) -> Config:
    """Load the configuration the way every command does; errors name the key (exit 2)."""
    try:
        config = load_config(
            config_path, overrides=overrides, dsn=dsn, webhook_secret=webhook_secret
        )
        secrets.learn(secrets_of(config))
        return config
    finally:
        # A password typed on the command line stays out of `ps` from here on.
        secrets.hide_from_process_title(sys.argv)


def drop_none(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Flag overrides without the flags the user did not give."""
    result: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            inner = drop_none(value)
            if inner:
                result[key] = inner
        elif value is not None and value != ():
            result[key] = value
    return result


def as_duration(seconds: float | None) -> str | None:
    """Flags arrive parsed; hand them to the config as Prometheus-style text again."""
    return None if seconds is None else format_duration(seconds)
