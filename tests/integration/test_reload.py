"""Reloading the service as ``cbmon serve`` wires it, in this process: a reload reads the
configuration again, says what it does, is applied by the poll loop before its next poll,
even while the database is away, and a bad one is refused with one line."""

from __future__ import annotations

from cbmon.config import Config
from cbmon.errors import ConfigError
from cbmon.sidecar.service import Service
from tests.conftest import PgSchema
from tests.support.forward import forwarder
from tests.support.loop import polling
from tests.support.processes import scrape, wait_for, wait_for_scrape


class Loader:
    """What the file says now, as the test writes it; or the mistake in it."""

    def __init__(self, config: Config) -> None:
        self.config: Config | ConfigError = config

    def __call__(self) -> Config:
        if isinstance(self.config, ConfigError):
            raise self.config
        return self.config


def test_a_reload_while_the_database_is_away_applies_before_the_next_try(pg: PgSchema) -> None:
    """The loop waits an hour between tries (poll_interval 1h): a reload does not."""
    with forwarder(pg.dsn) as database:

        def config(for_: str) -> Config:
            return pg.config(
                dsn=database.dsn, listen="127.0.0.1:0", poll_interval="1h", slo={"for": for_}
            )

        loader = Loader(config("1m"))
        with polling(Service(config("1m"), reload_from=loader)) as service:
            assert service.server is not None
            metrics = f"{service.server.url}/metrics"
            wait_for_scrape(
                metrics, lambda m: m.get('cbmon_poll_errors_total{reason="connection"}', 0) >= 1
            )
            loader.config = config("0s")
            ok, said = service.reload("test")
            assert (ok, said) == (True, "slo.for changed; applied at the next poll")
            wait_for(lambda: service.config.file.slo.for_ == 0)
            assert service.evaluator.tracker.baseline.for_ == 0
            wait_for_scrape(metrics, lambda m: m["cbmon_polls_total"] >= 2)  # tried at once


def test_a_bad_reload_changes_nothing_and_says_why_in_one_line(pg: PgSchema) -> None:
    config = pg.config(listen="127.0.0.1:0", poll_interval="200ms")
    loader = Loader(config)
    with polling(Service(config, reload_from=loader)) as service:
        assert service.server is not None
        metrics = f"{service.server.url}/metrics"
        started = scrape(metrics)["cbmon_config_last_reload_success_timestamp_seconds"]
        loader.config = ConfigError("c.yml: slo.for: 'soon' is not a duration\nc.yml: listen: bad")
        assert service.reload("test") == (
            False,
            "c.yml: slo.for: 'soon' is not a duration; c.yml: listen: bad",
        )
        after = scrape(metrics)
        assert after["cbmon_config_last_reload_successful"] == 0
        assert after["cbmon_config_last_reload_success_timestamp_seconds"] == started
        assert service.config is config
        loader.config = config
        assert service.reload("test") == (True, "nothing that can change live changed")
        assert scrape(metrics)["cbmon_config_last_reload_successful"] == 1
