"""Configuration: defaults, a file, the environment and flags, in that order, and one line
naming the key for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbmon.config import Config, load_config, parse_listen, secrets_of
from cbmon.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_reference_schema_and_the_baseline() -> None:
    config = load_config(environ={})
    assert config.tables.logs.table == "callback_logs"
    assert config.tables.logs.success_statuses == ("COMPLETED",)
    assert config.thresholds.success_rate.normal == 0.995
    assert config.thresholds.success_rate.alert == 0.99
    assert config.thresholds.avg_latency.normal == 0.15
    assert config.thresholds.avg_latency.alert == 0.5
    assert (config.thresholds.backlog.normal, config.thresholds.backlog.alert) == (1000, 5000)
    assert config.file.slo.window == 300
    assert config.file.slo.for_ == 60
    assert config.dsn is None
    assert config.webhook_secret is None


def test_file_environment_and_flags_in_that_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yml",
        "poll_interval: 10s\nthresholds:\n  success_rate: {normal: 99.9%, alert: '98%'}\n"
        "tables:\n  logs: {schema: app, table: attempts, success_statuses: [OK, DONE]}\n",
    )
    config = load_config(
        path, overrides={"poll_interval": "2s"}, environ={"CBMON_DSN": "postgresql://e/db"}
    )
    assert config.file.poll_interval == 2
    assert config.thresholds.success_rate.normal == pytest.approx(0.999)
    assert config.thresholds.success_rate.alert == pytest.approx(0.98)
    assert config.tables.logs.table_schema == "app"
    assert config.tables.logs.success_statuses == ("OK", "DONE")
    assert config.dsn == "postgresql://e/db"
    flagged = load_config(path, dsn="postgresql://flag/db", environ={"CBMON_DSN": "x"})
    assert flagged.dsn == "postgresql://flag/db"


def test_flags_override_one_key_and_keep_its_neighbours(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yml", "slo: {window: 10m, for: 2m}\n")
    config = load_config(path, overrides={"slo": {"for": "30s"}}, environ={})
    assert (config.file.slo.window, config.file.slo.for_) == (600, 30)


FILE_SECRET = "whsec_ZmlsZTAwMDAwMDAwMDAwMDAwMDAwMDAw"
ENV_SECRET = "whsec_ZW52MDAwMDAwMDAwMDAwMDAwMDAwMDAw"
FLAG_SECRET = "whsec_ZmxhZzAwMDAwMDAwMDAwMDAwMDAwMDAw"


def with_secret_files(folder: Path, dsn: str, secret: str) -> Path:
    """A configuration file pointing at a DSN file and a webhook secret file holding these."""
    write(folder / "dsn", f"{dsn}\n")
    write(folder / "whsec", f"{secret}\n")
    return write(
        folder / "c.yml",
        f"database: {{dsn_file: {folder / 'dsn'}}}\n"
        f"alerting: {{secret_file: {folder / 'whsec'}}}\n",
    )


def test_secrets_come_from_files(tmp_path: Path) -> None:
    path = with_secret_files(tmp_path, "postgresql://u:s3cret@h/db", FILE_SECRET)
    config = load_config(path, environ={})
    assert config.dsn == "postgresql://u:s3cret@h/db"
    assert config.webhook_secret == FILE_SECRET
    assert "s3cret" not in repr(config)
    assert FILE_SECRET not in repr(config)


def test_the_environment_and_flags_win_over_secret_files(tmp_path: Path) -> None:
    path = with_secret_files(tmp_path, "postgresql://file/db", FILE_SECRET)
    environ = {"CBMON_DSN": "postgresql://env/db", "CBMON_WEBHOOK_SECRET": ENV_SECRET}
    from_env = load_config(path, environ=environ)
    assert (from_env.dsn, from_env.webhook_secret) == ("postgresql://env/db", ENV_SECRET)
    flagged = load_config(
        path, dsn="postgresql://flag/db", webhook_secret=FLAG_SECRET, environ=environ
    )
    assert (flagged.dsn, flagged.webhook_secret) == ("postgresql://flag/db", FLAG_SECRET)


def test_an_unreadable_secret_file_names_its_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    path = write(tmp_path / "c.yml", f"alerting: {{secret_file: {missing}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert (
        str(caught.value)
        == f"alerting.secret_file: cannot read {missing}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("not a certificate\n", "{path} holds no PEM certificate that can be read"),
    ],
)
def test_a_ca_file_that_cannot_be_used_is_one_line_at_load(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_text(content)
    path = write(tmp_path / "c.yml", f"alerting: {{ca_file: {ca}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == "alerting.ca_file: " + problem.format(path=ca)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("poll_interval: 5\n", "poll_interval: 5 has no unit"),
        ("poll_interval: fast\n", "poll_interval: 'fast' is not a duration"),
        (
            "thresholds:\n  success_rate: {normal: 0.98, alert: 0.99}\n",
            "thresholds.success_rate: normal (0.98) must not be below alert (0.99)",
        ),
        (
            "thresholds:\n  success_rate: {normal: 120%}\n",
            "thresholds.success_rate.normal: '120%' is outside 0..1",
        ),
        (
            "thresholds:\n  avg_latency: {normal: 1s, alert: 500ms}\n",
            "thresholds.avg_latency: normal (1s) must not be above alert (500ms)",
        ),
        ("thresholds:\n  backlog: {normal: -1}\n", "thresholds.backlog.normal: Input should be"),
        ("tables:\n  logs: {tabel: x}\n", "tables.logs.tabel: unknown key"),
        ("slo: {for: soon}\n", "slo.for: 'soon' is not a duration"),
        ("listen: nowhere\n", "'nowhere' is not HOST:PORT"),
        (
            "alerting: {webhooks: [ftp://x]}\n",
            "alerting.webhooks.0: must be an http:// or https:// URL",
        ),
        ("reader: {gap_grace: 5s}\n", "reader.gap_grace: no longer used"),
        ("- a list\n", "(top level): must be a mapping"),
        ("poll_interval: [\n", "line 2"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = write(tmp_path / "bad.yml", yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    shown = str(caught.value)
    assert shown.startswith(f"{path}:")
    assert message in shown
    assert "\n" not in shown
    assert caught.value.exit_code == 2


def test_several_mistakes_are_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yml", "poll_interval: 5\nslo: {window: soon}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: poll_interval: ")
    assert lines[1].startswith(f"{path}: slo.window: ")


def test_a_flag_is_checked_by_the_rules_of_its_key() -> None:
    with pytest.raises(ConfigError, match=r"slo\.window: 'soon' is not a duration"):
        load_config(overrides={"slo": {"window": "soon"}}, environ={})


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, environ={})
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "empty.yml", ""), environ={}).file == (
        load_config(environ={}).file
    )


def test_no_database_names_every_way_to_give_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={}).require_dsn()
    assert str(caught.value) == (
        "no database given: pass --dsn, set CBMON_DSN, or set database.dsn_file"
    )


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9863", ("127.0.0.1", 9863)),
        (":9863", ("0.0.0.0", 9863)),
        ("[::1]:0", ("::1", 0)),
        ("metrics.local:80", ("metrics.local", 80)),
    ],
)
def test_listen_is_host_and_port(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["9863", "::1:9863", "host:", "host:70000", "host:port"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|outside 0\.\.65535"):
        parse_listen(text)


# -- a fleet: targets ---------------------------------------------------------------------


def _fleet_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_of_a_target_but_name_and_dsn_defaults_to_the_top_level(
    tmp_path: Path,
) -> None:
    path = _fleet_file(
        tmp_path,
        "poll_interval: 2s\n"
        "tables: {logs: {schema: app}}\n"
        "thresholds: {backlog: {normal: 10, alert: 20}}\n"
        "targets:\n"
        "  - {name: eu, dsn: 'postgresql://cbmon:pw@db-eu:5433/app',"
        " thresholds: {backlog: {alert: 30}}}\n"
        "  - {name: us, dsn: 'postgresql://db-us/app', poll_interval: 1s}\n",
    )
    config = load_config(path, environ={})
    eu, us = config.fleet
    assert (eu.database, us.database) == ("eu", "us")
    assert (eu.dsn, us.dsn) == ("postgresql://cbmon:pw@db-eu:5433/app", "postgresql://db-us/app")
    # a nested key overrides only itself: the rest of thresholds is the top level's
    assert (eu.thresholds.backlog.normal, eu.thresholds.backlog.alert) == (10, 30)
    assert (us.thresholds.backlog.normal, us.thresholds.backlog.alert) == (10, 20)
    assert (eu.file.poll_interval, us.file.poll_interval) == (2.0, 1.0)
    assert eu.tables.logs.table_schema == us.tables.logs.table_schema == "app"
    assert "pw" not in repr(config)


def test_flags_override_every_target(tmp_path: Path) -> None:
    path = _fleet_file(tmp_path, "targets:\n  - {name: a, dsn: 'dbname=a', slo: {window: 10m}}\n")
    (target,) = load_config(path, overrides={"slo": {"window": "1m"}}, environ={}).fleet
    assert target.file.slo.window == 60.0


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{name: a, dsn: 'dbname=a', listen: ':1'}", "targets.0 (a): listen: one process"),
        ("{name: a}", "targets.0 (a): dsn: every target needs a dsn"),
        ("{name: 'a b', dsn: 'dbname=a'}", "targets.0.name: 'a b' is not a database name"),
        ("{name: a, dsn: 'dbname=a', tresholds: {}}", "targets.0 (a): tresholds: unknown key"),
        (
            "{name: a, dsn: 'dbname=a', slo: {window: 5}}",
            "targets.0 (a): slo.window: 5 has no unit",
        ),
    ],
)
def test_a_wrong_target_is_one_line_naming_it(tmp_path: Path, target: str, message: str) -> None:
    path = _fleet_file(tmp_path, f"targets:\n  - {target}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)


def test_two_targets_cannot_share_a_name(tmp_path: Path) -> None:
    path = _fleet_file(
        tmp_path, "targets:\n  - {name: a, dsn: 'dbname=a'}\n  - {name: a, dsn: 'dbname=b'}\n"
    )
    with pytest.raises(ConfigError, match=r"targets.1 \(a\): name: another target"):
        load_config(path, environ={})


def test_a_target_dsn_is_masked_like_the_top_level_one(tmp_path: Path) -> None:
    path = _fleet_file(tmp_path, "targets:\n  - {name: a, dsn: 'postgresql://u:s3cret@h/db'}\n")
    assert "postgresql://u:s3cret@h/db" in secrets_of(load_config(path, environ={})).dsns


@pytest.mark.parametrize(
    ("dsn", "label"),
    [
        ("postgresql://cbmon:pw@db.example:6432/app", "db.example:6432/app"),
        ("host=db dbname=app user=cbmon password=pw", "db:5432/app"),
        ("host=/var/run/postgresql dbname=app", "localhost:5432/app"),
        ("host=a,b port=5433,5434 dbname=app", "a:5433/app"),
    ],
)
def test_the_database_label_is_host_port_and_dbname_without_secrets(dsn: str, label: str) -> None:
    assert Config(dsn=dsn).database == label


def test_database_name_is_the_label_when_set() -> None:
    config = load_config(overrides={"database": {"name": "orders-eu"}}, dsn="dbname=x", environ={})
    assert config.database == "orders-eu"


def test_a_one_shot_command_on_a_fleet_asks_which_database(tmp_path: Path) -> None:
    path = _fleet_file(
        tmp_path, "targets:\n  - {name: a, dsn: 'dbname=a'}\n  - {name: b, dsn: 'dbname=b'}\n"
    )
    with pytest.raises(ConfigError, match=r"several databases \(a, b\): pass --dsn for one"):
        load_config(path, environ={}).require_dsn()
