"""Configuration: defaults, files, environment, flags, and one clear line per mistake."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cbmon.config import load_config
from cbmon.durations import format_duration, parse_duration
from cbmon.errors import ConfigError
from tests.support.processes import CBMON


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5),
        ("1m", 60),
        ("24h", 86400),
        ("1h30m", 5400),
        ("0", 0),
        ("2d", 172800),
        ("1w", 604800),
        ("1m500ms", 60.5),
    ],
)
def test_durations_are_written_the_prometheus_way(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5s", "5 s", "-1s", "1x", "s", "1s1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


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


def test_file_environment_and_flags_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "poll_interval: 10s\nthresholds:\n  success_rate: {normal: 99.9%, alert: '98%'}\n"
        "tables:\n  logs: {schema: app, table: attempts, success_statuses: [OK, DONE]}\n"
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


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("postgresql://u:s3cret@h/db\n")
    (tmp_path / "whsec").write_text("whsec_abc\n")
    path = tmp_path / "c.yml"
    path.write_text(
        f"database: {{dsn_file: {tmp_path / 'dsn'}}}\n"
        f"alerting: {{secret_file: {tmp_path / 'whsec'}}}\n"
    )
    config = load_config(path, environ={})
    assert config.dsn == "postgresql://u:s3cret@h/db"
    assert config.webhook_secret == "whsec_abc"
    assert "s3cret" not in repr(config)
    assert "whsec_abc" not in repr(config)


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
        ("alerting: {webhooks: [ftp://x]}\n", "alerting.webhooks.0: String should match"),
        ("- a list\n", "(top level): must be a mapping"),
        ("poll_interval: [\n", "line 2"),
    ],
)
def test_config_check_names_the_key_and_exits_2(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(path, environ={})
    assert message in str(caught.value)
    result = subprocess.run([*CBMON, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yml"
    path.write_text("thresholds:\n  avg_latency: {normal: 100ms, alert: 1s}\n")
    result = subprocess.run([*CBMON, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "avg latency   ok < 100ms, critical > 1s" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--poll-interval", "often"], "'often' is not a duration"),
        (["serve", "--listen", "bad"], "'bad' is not HOST:PORT"),
        (["serve"], "no database given"),
        (["config", "check", "/nonexistent.yml"], "cannot read"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_arguments_give_one_clear_line(args: list[str], needle: str) -> None:
    result = subprocess.run(
        [*CBMON, *args], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert needle in result.stderr


def test_password_never_appears_in_errors() -> None:
    result = subprocess.run(
        [*CBMON, "schema", "apply", "--dsn", "postgresql://u:hunter2@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "hunter2" not in result.stderr + result.stdout
    assert "cannot connect to u@127.0.0.1:1/db" in result.stderr
