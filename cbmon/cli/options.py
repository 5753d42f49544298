"""Options shared by every command, so one name always means one thing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from cbmon import secrets
from cbmon.config import DSN_ENV, Config, load_config
from cbmon.durations import format_duration, parse_duration

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType[float, Any]):
    """A duration the Prometheus way (``500ms``, ``5s``, ``1m``, ``24h``), as seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


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


def window_option(default: str = "5m") -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--window",
            type=DURATION,
            default=None,
            help=f"Sliding window the indicators are judged over [default: slo.window, {default}].",
        )(func)

    return decorate


def format_option(choices: list[str], default: str) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "output_format",
            type=click.Choice(choices, case_sensitive=False),
            default=default,
            show_default=True,
            help="Output format.",
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
        return load_config(config_path, overrides=overrides, dsn=dsn, webhook_secret=webhook_secret)
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
