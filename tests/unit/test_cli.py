"""The ``cbmon`` command as a user meets it: through the console entry point, in process, with
what lands on stdout and stderr and the exit code."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from cbmon import __version__
from cbmon.cli import cli, main
from cbmon.cli.options import Duration
from cbmon.demo.scenario import SCENARIOS


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


Cbmon = Callable[..., Ran]


@pytest.fixture
def cbmon(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cbmon:
    """``cbmon ARGS...`` through ``main()``, where errors become one line and an exit code,
    in an environment without any of cbmon's variables."""
    for name in list(os.environ):
        if name.startswith("CBMON_"):
            monkeypatch.delenv(name)

    def run(*args: str) -> Ran:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["cbmon", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        code = exited.value.code
        return Ran(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


def one_line(err: str) -> str:
    """The single line a user should see for a mistake they can fix, never a traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- cbmon config check ---------------------------------------------------------------------


def test_config_check_summarises_a_good_file(cbmon: Cbmon, tmp_path: Path) -> None:
    path = tmp_path / "good.yml"
    path.write_text("thresholds:\n  avg_latency: {normal: 100ms, alert: 1s}\n")
    ran = cbmon("config", "check", str(path))
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.splitlines()[0] == f"{path}: ok"
    assert "  avg latency   ok < 100 ms, critical > 1000 ms" in ran.out.splitlines()
    assert "  success rate  ok > 99.50%, critical < 99.00%" in ran.out.splitlines()


def test_config_check_lists_each_database_of_a_fleet(cbmon: Cbmon, tmp_path: Path) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(
        "targets:\n"
        "  - {name: eu, dsn: 'postgresql://cbmon:pw@db-eu/app'}\n"
        "  - {name: us, dsn: 'postgresql://db-us/app', poll_interval: 1s}\n"
    )
    ran = cbmon("config", "check", str(path))
    assert (ran.code, ran.err) == (0, "")
    lines = ran.out.splitlines()
    assert "  database eu: cbmon@db-eu/app, public.callback_logs, poll every 5s" in lines
    assert "  database us: db-us/app, public.callback_logs, poll every 1s" in lines
    assert "pw" not in ran.out


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("poll_interval: 5\n", "poll_interval: 5 has no unit"),
        ("tables:\n  logs: {tabel: x}\n", "tables.logs.tabel: unknown key"),
        ("poll_interval: [\n", "line 2"),
    ],
)
def test_config_check_names_the_key_in_one_line_and_exits_2(
    cbmon: Cbmon, tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml_text)
    ran = cbmon("config", "check", str(path))
    assert (ran.code, ran.out) == (2, "")
    line = one_line(ran.err)
    assert line.startswith(f"cbmon: {path}:")
    assert message in line


# -- mistakes on the command line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--listen", "bad"], "'bad' is not HOST:PORT"),
        (["serve"], "no database given"),
        (["config", "check", "/nonexistent.yml"], "cannot read"),
    ],
)
def test_configuration_mistakes_are_one_line_and_exit_2(
    cbmon: Cbmon, args: list[str], needle: str
) -> None:
    ran = cbmon(*args)
    assert ran.code == 2
    line = one_line(ran.err)
    assert line.startswith("cbmon: ")
    assert needle in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--poll-interval", "often"], "'often' is not a duration"),
        (["nosuchcommand"], "No such command"),
        (["demo", "--scenario", "calm"], "'calm' is not one of"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(cbmon: Cbmon, args: list[str], needle: str) -> None:
    ran = cbmon(*args)
    assert ran.code == 2
    (line,) = ran.err.splitlines()  # the command, what is wrong, and where to look
    assert line.startswith("cbmon")
    assert needle in line
    assert line.endswith("(see --help)")


def test_password_never_appears_in_errors(cbmon: Cbmon) -> None:
    ran = cbmon("schema", "apply", "--dsn", "postgresql://u:hunter2@127.0.0.1:1/db")
    assert ran.code == 1
    assert "hunter2" not in ran.err + ran.out
    assert one_line(ran.err).startswith("cbmon: cannot connect to u@127.0.0.1:1/db")


def test_check_reports_a_bad_configuration_as_nagios_unknown(cbmon: Cbmon, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("slo: {window: soon}\n")
    ran = cbmon("check", "--config", str(path), "--dsn", "postgresql://127.0.0.1:1/db")
    assert ran.code == 3
    assert ran.out == f"CBMON UNKNOWN - {path}: slo.window: 'soon' is not a duration; " + (
        "write it the Prometheus way, e.g. 500ms, 5s, 1m, 24h\n"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--window", "5"], "'5' is not a duration"),
        (["--window", "0s"], "'0s' is not above 0s"),
        (["--timeout", "0s"], "'0s' is not above 0s"),
        (["--format", "csv"], "'csv' is not one of"),
        (["--no-such-option"], "No such option"),
        (["--log-level", "loud"], "'loud' is not one of"),
        (["extra-argument"], "unexpected extra argument"),
    ],
)
def test_check_usage_mistakes_are_nagios_unknown_not_critical(
    cbmon: Cbmon, args: list[str], needle: str
) -> None:
    """A typo in a Nagios command must not page anyone as CRITICAL (2): it is UNKNOWN (3)."""
    ran = cbmon("check", "--dsn", "postgresql://127.0.0.1:1/db", *args)
    assert ran.code == 3, ran
    (line,) = ran.out.splitlines()
    assert line.startswith("CBMON UNKNOWN - ")
    assert needle in line
    assert "Traceback" not in ran.err


def test_check_unknown_in_json_is_json(cbmon: Cbmon) -> None:
    ran = cbmon("check", "--dsn", "postgresql://127.0.0.1:1/db", "--format", "json")
    assert ran.code == 3
    data = json.loads(ran.out)
    assert (data["status"], data["exit_code"]) == ("unknown", 3)
    assert data["message"].startswith("cannot connect")


def test_log_level_is_accepted_on_either_side_of_the_command(
    cbmon: Cbmon, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.WARNING)  # put back after the test
    before = cbmon("--log-level", "debug", "serve", "--listen", "bad")
    root.setLevel(logging.WARNING)
    after = cbmon("serve", "--log-level", "debug", "--listen", "bad")
    assert root.level == logging.DEBUG
    root.setLevel(logging.WARNING)
    nested = cbmon("config", "check", "--log-level", "error", "/nonexistent.yml")
    assert root.level == logging.ERROR
    assert before.code == after.code == nested.code == 2
    assert "'bad' is not HOST:PORT" in after.err
    assert "cannot read" in nested.err


def test_defaults_are_said_in_words(cbmon: Cbmon) -> None:
    text = " ".join(cbmon("serve", "--help").out.split())
    assert "[default: 0.0.0.0:9863 (every interface), or listen from the configuration]" in text
    assert "[default: 5m, or slo.window from the configuration]" in text
    assert "[default: listen" not in text


def test_config_check_takes_the_file_from_config_or_the_environment(
    cbmon: Cbmon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.yml"
    path.write_text("poll_interval: 2s\n")
    by_option = cbmon("config", "check", "--config", str(path))
    assert (by_option.code, by_option.out.splitlines()[0]) == (0, f"{path}: ok")
    monkeypatch.setenv("CBMON_CONFIG", str(path))
    by_env = cbmon("config", "check")
    assert (by_env.code, by_env.out) == (0, by_option.out)
    other = tmp_path / "other.yml"
    other.write_text("poll_interval: [\n")
    explicit = cbmon("config", "check", str(other))  # FILE wins over the environment
    assert explicit.code == 2
    assert str(other) in explicit.err
    monkeypatch.delenv("CBMON_CONFIG")
    nothing = cbmon("config", "check")
    assert nothing.code == 2
    assert one_line(nothing.err) == (
        "cbmon: no file to check: give FILE, --config FILE or CBMON_CONFIG"
    )


# -- help and version -----------------------------------------------------------------------


def command_paths() -> list[list[str]]:
    """Every command and subcommand, as the words a user types."""
    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, [*path, name])

    walk(cli, [])
    return paths


def command_at(path: list[str]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return command


def test_every_command_is_listed() -> None:
    assert sorted(" ".join(path) for path in command_paths()) == [
        "",
        "check",
        "config",
        "config check",
        "demo",
        "report",
        "rules",
        "schema",
        "schema apply",
        "schema audit",
        "schema print",
        "serve",
    ]


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "cbmon")
def test_every_command_and_option_is_documented(cbmon: Cbmon, path: list[str]) -> None:
    command = command_at(path)
    assert command.help, "no help text"
    undocumented = [
        option.name
        for option in command.params
        if isinstance(option, click.Option) and not option.hidden and not option.help
    ]
    assert undocumented == []
    ran = cbmon(*path, "--help")
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.startswith(f"Usage: cbmon {' '.join(path)}".rstrip())
    summary = command.help.split("\n\n")[0]
    assert " ".join(summary.split()) in " ".join(ran.out.split())  # as click wraps it


def test_version(cbmon: Cbmon) -> None:
    ran = cbmon("--version")
    assert (ran.code, ran.out) == (0, f"cbmon, version {__version__}\n")


def test_serve_help_does_not_import_pandas() -> None:
    # Only a fresh interpreter shows what a command imports; this process has imported it all.
    code = (
        "import sys\n"
        "sys.argv = ['cbmon', 'serve', '--help']\n"
        "from cbmon.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'pandas' in sys.modules, file=sys.stderr)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.startswith("Usage: cbmon serve")
    assert ran.stderr == "0 False\n"


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "cbmon")
def test_help_explains_durations_wherever_one_is_taken(cbmon: Cbmon, path: list[str]) -> None:
    command = command_at(path)
    ran = cbmon(*path, "--help")
    takes = any(isinstance(param.type, Duration) for param in command.params)
    said = "Durations are written the Prometheus way: 500ms, 5s, 1m, 24h" in ran.out
    assert said == (takes or path == []), ran.out


def test_demo_help_says_what_each_scenario_does(cbmon: Cbmon) -> None:
    words = " ".join(cbmon("demo", "--help").out.split())
    for name in SCENARIOS:
        assert f"{name}: " in words, name
