"""``cbmon serve``: export exact callback metrics and judge the baseline."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from cbmon.cli.options import DURATION, build_config, config_option, drop_none, dsn_option
from cbmon.db import describe
from cbmon.service import Service

log = logging.getLogger("cbmon")


@click.command()
@dsn_option
@config_option
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default=None,
    help="Address for /metrics, /healthz and /readyz [default: listen, 0.0.0.0:9863].",
)
@click.option(
    "--poll-interval",
    type=DURATION,
    default=None,
    help="How often to read new rows [default: poll_interval, 5s].",
)
def serve(
    dsn: str | None,
    config_path: Path | None,
    listen: str | None,
    poll_interval: float | None,
) -> None:
    """Poll the callback tables and serve Prometheus metrics until SIGTERM or Ctrl-C."""
    overrides = drop_none({"listen": listen, "poll_interval": _as_duration(poll_interval)})
    config = build_config(config_path, dsn, overrides)
    service = Service(config)
    server = service.start_server()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        service.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving %s/metrics; polling %s", server.url, describe(service.dsn))
    try:
        service.run()
    finally:
        service.close()
    log.info("stopped")


def _as_duration(seconds: float | None) -> str | None:
    """Flags arrive parsed; hand them to the config as the same Prometheus-style text."""
    if seconds is None:
        return None
    from cbmon.durations import format_duration

    return format_duration(seconds)
