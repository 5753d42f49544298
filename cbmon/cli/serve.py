"""``cbmon serve``: export exact callback metrics, judge the baseline, send alert webhooks."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from cbmon.cli.options import (
    DURATION,
    as_duration,
    build_config,
    config_option,
    drop_none,
    dsn_option,
    from_config,
    window_option,
)
from cbmon.config import WEBHOOK_SECRET_ENV, Config
from cbmon.db.connect import describe
from cbmon.sidecar.fleet import Fleet
from cbmon.sidecar.service import Service

log = logging.getLogger("cbmon")


@click.command()
@dsn_option
@config_option
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default=None,
    help="Address for the status page, /metrics, /healthz and /readyz "
    + from_config("0.0.0.0:9863 (every interface)", "listen")
    + ".",
)
@click.option(
    "--poll-interval",
    type=DURATION,
    default=None,
    help="How often to read new rows " + from_config("5s", "poll_interval") + ".",
)
@window_option()
@click.option(
    "--for",
    "for_",
    type=DURATION,
    default=None,
    help="How long a state must hold before it fires " + from_config("1m", "slo.for") + ".",
)
@click.option(
    "--webhook",
    "webhooks",
    metavar="URL",
    multiple=True,
    help="Alert receiver (repeatable) " + from_config("none", "alerting.webhooks") + ".",
)
@click.option(
    "--web.config.file",
    "web_config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TLS and basic authentication for the endpoints, in the Prometheus exporter-toolkit "
    "format node_exporter reads " + from_config("plain HTTP", "web_config_file") + ".",
)
@click.option(
    "--alertmanager",
    "alertmanagers",
    metavar="URL",
    multiple=True,
    help="Alertmanager to post alerts to, e.g. http://alertmanager:9093 (repeatable) "
    + from_config("none", "alerting.alertmanagers")
    + ".",
)
@click.option(
    "--web.enable-lifecycle",
    "enable_lifecycle",
    is_flag=True,
    default=False,
    help="Also reload the configuration on POST /-/reload (or PUT), as Prometheus does; "
    "SIGHUP always reloads [default: off].",
)
@click.option(
    "--webhook-secret",
    metavar="SECRET",
    envvar=WEBHOOK_SECRET_ENV,
    show_envvar=True,
    default=None,
    help="Standard Webhooks signing secret (whsec_...); better from the environment.",
)
def serve(
    dsn: str | None,
    config_path: Path | None,
    listen: str | None,
    poll_interval: float | None,
    window: float | None,
    for_: float | None,
    web_config_file: Path | None,
    webhooks: tuple[str, ...],
    alertmanagers: tuple[str, ...],
    enable_lifecycle: bool,
    webhook_secret: str | None,
) -> None:
    """Poll the callback tables and serve Prometheus metrics until SIGTERM or Ctrl-C.

    SIGHUP reloads the configuration file and the secret files (flags keep their
    precedence): thresholds, the SLO window and `for`, and the receivers change at the next
    poll; an invalid file changes nothing.
    """
    overrides = drop_none(
        {
            "listen": listen,
            "web_config_file": None if web_config_file is None else str(web_config_file),
            "poll_interval": as_duration(poll_interval),
            "slo": {"window": as_duration(window), "for": as_duration(for_)},
            "alerting": {
                "webhooks": list(webhooks) or None,
                "alertmanagers": list(alertmanagers) or None,
            },
        }
    )

    def load() -> Config:
        return build_config(config_path, dsn, overrides, webhook_secret=webhook_secret)

    loaded = load()
    service: Service | Fleet
    if loaded.fleet:
        service = Fleet(loaded, reload_from=load, lifecycle=enable_lifecycle)
        polling = ", ".join(s.database for s in service.services)
        if loaded.dsn:
            log.warning("--dsn and CBMON_DSN are not used: the configuration lists targets")
    else:
        service = Service(loaded, reload_from=load, lifecycle=enable_lifecycle)
        polling = describe(service.dsn)
    config = service.config

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        service.stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        service.request_reload("SIGHUP")  # nothing else here: it runs in a signal handler

    signal.signal(signal.SIGHUP, reload)
    server = service.start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    receivers = len(config.file.alerting.webhooks)
    scheme = "https" if server.tls is not None else "http"
    log.info(
        "serving %s://%s/metrics; polling %s; %d alert receiver(s)%s",
        scheme,
        server.address,
        polling,
        receivers,
        ", signed" if receivers and config.webhook_secret else "",
    )
    try:
        service.run()
    finally:
        service.close()
    log.info("stopped")
